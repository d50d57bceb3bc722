"""DeepGyro's blur field ``(U, V)`` derived from a trajectory (CONVENTIONS)."""

from __future__ import annotations

import numpy as np


def blur_field(traj: np.ndarray) -> np.ndarray:
    """``(U, V) = traj[T-1] - traj[0]``, sign-flipped so that ``U >= 0``.

    The blur is undirected, so the field is made unique: where ``U < 0`` both components flip,
    and where ``U == 0`` the sign makes ``V >= 0``.

    Args:
        traj: ``(T, 2, H, W)`` trajectory (rotation, translation or their sum).

    Returns:
        ``(2, H, W)`` float32.

    Example:
        >>> traj = np.zeros((3, 2, 1, 2), np.float32)
        >>> traj[-1, :, 0, 0] = (-2.0, 1.0); traj[-1, :, 0, 1] = (0.0, -3.0)
        >>> blur_field(traj)[:, 0].tolist()
        [[2.0, 0.0], [-1.0, 3.0]]
    """
    traj = np.asarray(traj)
    if traj.ndim != 4 or traj.shape[1] != 2 or not len(traj):
        raise ValueError(f"traj must be (T, 2, H, W) with T >= 1, got shape {traj.shape}")
    d = traj[-1] - traj[0]
    flip = (d[0] < 0) | ((d[0] == 0) & (d[1] < 0))
    return (np.where(flip[None], -d, d) + 0.0).astype(np.float32)  # + 0.0 turns -0.0 into 0.0
