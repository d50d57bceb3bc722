"""Pipelines: whole jobs built from the lower layers (kernels of a clip, ...)."""
