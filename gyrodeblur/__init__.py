"""gyrodeblur: camera motion from gyroscopes to per-pixel blur kernels and sharp pictures.

Layers, lowest first: ``geometry`` (gyro logs, camera, rotations) -> ``kernels`` (per-pixel
blur trajectories) -> ``cli``. Lower layers never import higher ones.
"""

__version__ = "0.1.0"

import os as _os

# numba's default OpenMP threading layer aborts in processes forked after it ran (PyTorch
# DataLoader workers); the workqueue layer is fork-safe. A user's own choice wins.
_os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
