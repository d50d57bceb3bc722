"""gyrodeblur: camera motion from gyroscopes to per-pixel blur kernels and sharp pictures.

Layers, lowest first: ``geometry`` (gyro logs, camera, rotations) and ``footage`` (frames,
timing, video) -> ``kernels`` (per-pixel blur trajectories, optical flow, gyro-video sync) ->
``synthesis`` (blur, motion, sensor errors, clips, datasets) -> ``models`` (networks,
classical deconvolution) -> ``pipelines`` (kernels, synth, train, evaluate, deblur, export,
demo) -> ``cli``. Lower layers never import higher ones; import the modules themselves, e.g.
``from gyrodeblur.kernels.rotation import camera_orientation, rotation_trajectories``.
"""

__version__ = "0.1.0"

import os as _os

# numba's default OpenMP threading layer aborts in processes forked after it ran (PyTorch
# DataLoader workers); the workqueue layer is fork-safe. A user's own choice wins.
_os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
