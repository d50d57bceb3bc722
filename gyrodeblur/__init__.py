"""gyrodeblur: camera motion from gyroscopes to per-pixel blur kernels and sharp pictures.

Layers, lowest first: ``geometry`` (gyro logs, camera, rotations) -> ``kernels`` (per-pixel
blur trajectories) -> ``cli``. Lower layers never import higher ones.
"""

__version__ = "0.1.0"
