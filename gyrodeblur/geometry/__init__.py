"""Geometry: gyro logs, camera models and rotations (the lowest layer)."""
