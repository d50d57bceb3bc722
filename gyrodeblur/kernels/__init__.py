"""Per-pixel blur kernels from rotations and optical flow."""
