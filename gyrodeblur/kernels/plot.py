"""Pictures of blur kernels for humans: each kernel drawn as a streak over the frame."""

from __future__ import annotations

import cv2
import numpy as np

from gyrodeblur.footage import float_image


def draw_kernels(traj: np.ndarray, image: np.ndarray | None = None,
                 spacing: int | None = None, gain: float | None = None) -> np.ndarray:
    """Draw the kernels of a grid of pixels as streaks over a dimmed frame: the path that a
    point light at each grid point leaves in the blurred frame, as the eye sees blur.

    A light at ``p`` in the reference sharp image is seen at time ``t_i`` at the pixel ``q``
    with ``q + traj[i](q) = p``, about ``p - traj[i](p)``: each streak joins
    ``p - gain * traj[i](p)`` for ``i = 0..T-1``, blue at the start of the exposure to yellow
    at its end, with a white dot at ``p``. Kernels of a few pixels are invisible at full
    size, so ``gain`` defaults to what makes the longest streak about 80% of the grid spacing
    (shrinking long streaks so that they do not overlap). A box at the bottom left, where the
    grid stops, gives the gain, the longest blur (the length of the path) and the colours'
    meaning.

    Args:
        traj: ``(T, 2, H, W)`` trajectory.
        image: ``(H, W, 3)`` RGB background (float in ``[0, 1]``, or uint8 or uint16) of the
            size of ``traj``; grey when ``None``.
        spacing: grid step in pixels (default: 1/24 of the longer side, at least 16).
        gain: streak magnification (default: automatic, see above).

    Returns:
        ``(H, W, 3)`` uint8 RGB picture.

    Example:
        >>> pic = draw_kernels(np.zeros((5, 2, 64, 96), np.float32))
        >>> pic.shape, pic.dtype
        ((64, 96, 3), dtype('uint8'))
    """
    traj = np.asarray(traj)
    if traj.ndim != 4 or traj.shape[1] != 2:
        raise ValueError(f"traj must be (T, 2, H, W), got shape {traj.shape}")
    T, _, height, width = traj.shape
    if image is None:
        canvas = np.full((height, width, 3), 60, np.uint8)
    else:
        image = float_image(image)
        if image.shape[:2] != (height, width):
            raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} under kernels of "
                             f"{width}x{height}: give them one size")
        canvas = (np.clip(image * 255 + 0.5, 0, 255) * 0.45).astype(np.uint8)
    canvas = np.ascontiguousarray(canvas)
    if spacing is not None and not spacing >= 1:
        raise ValueError(f"spacing is a grid step in pixels, 1 or more; got {spacing}")
    step = round(spacing) if spacing else max(16, max(height, width) // 24)
    ys = np.arange(step // 2, height, step)
    xs = np.arange(step // 2, width, step)
    streaks = traj[:, :, ys[:, None], xs[None, :]]  # (T, 2, ny, nx)
    # Pixels without a ray through the lens model (NaN kernels) get no streak.
    drawn = np.isfinite(streaks).all(axis=(0, 1))
    longest = float(np.abs(streaks[..., drawn]).max(initial=0.0)) * 2
    if gain is None:
        gain = float(np.clip(0.8 * step / longest, 0.02, 50.0)) if longest > 0 else 1.0
    # The length of the path, not of its chord: a blur that turns back is no shorter.
    path = np.hypot(*np.diff(traj, axis=0).transpose(1, 0, 2, 3)).sum(axis=0)
    blur = float(np.nanmax(path, initial=0.0))
    box_h, box_w = _legend(canvas, [f"max blur {blur:.1f} px, streaks x{gain:.2g}",
                                    "a light's path: blue at the start, yellow at the end, "
                                    "white dot at mid-exposure"])
    colours = [(int(40 + 215 * s), int(120 + 100 * s), int(255 * (1 - s)))
               for s in np.linspace(0, 1, max(T - 1, 1))]
    shift = 4  # sub-pixel drawing: coordinates in 1/16 px
    legend = canvas[height - box_h:, :box_w].copy()
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            if not drawn[iy, ix] or (y >= height - box_h and x < box_w):
                continue
            pts = np.stack([x - gain * streaks[:, 0, iy, ix], y - gain * streaks[:, 1, iy, ix]], 1)
            pts = np.round(pts * (1 << shift)).astype(np.int32)
            for i in range(T - 1):
                cv2.line(canvas, tuple(pts[i]), tuple(pts[i + 1]), colours[i], 2, cv2.LINE_AA,
                         shift)
            cv2.circle(canvas, (int(x), int(y)), 1, (255, 255, 255), -1, cv2.LINE_AA)
    canvas[height - box_h:, :box_w] = legend  # streaks reaching down stay off the legend
    return canvas


def _legend(canvas: np.ndarray, lines: list[str]) -> tuple[int, int]:
    """Write ``lines`` on a black box at the bottom left of ``canvas``, readable on large
    frames and never wider than the picture (portrait frames): wrapped at a legible size
    where that covers at most a quarter of its height; on small pictures the first line alone
    (the numbers), wrapped at that size where it fits, else in one row, smaller.
    Returns the box's height and width."""
    height, width = canvas.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    wanted = max(0.4, height / 1400)

    def row_height(scale: float) -> int:
        return cv2.getTextSize("Ag", font, scale, 1)[0][1] + max(4, round(8 * scale))

    for shown in (lines, lines[:1]):
        rows: list[str] = []
        for word in ", ".join(shown).split(" "):
            longer = f"{rows[-1]} {word}" if rows else word
            if rows and cv2.getTextSize(longer, font, wanted, 1)[0][0] <= width - 16:
                rows[-1] = longer
            else:
                rows.append(word)
        if len(rows) * row_height(wanted) + 8 <= height / 4:
            break
    else:
        rows = lines[:1]
    widest = max(cv2.getTextSize(r, font, 1.0, 1)[0][0] for r in rows)
    scale = min(wanted, (width - 16) / widest)
    line_height = row_height(scale)
    box_h = len(rows) * line_height + 8
    box_w = min(width, 16 + max(cv2.getTextSize(r, font, scale, 1)[0][0] for r in rows))
    canvas[height - box_h:, :box_w] = 0
    for i, row in enumerate(rows):
        cv2.putText(canvas, row, (8, height - box_h + (i + 1) * line_height), font, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return box_h, box_w
