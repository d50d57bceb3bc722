"""Fit the shipped hand-shake model to the real gyro traces and write its JSON.

Usage: ``python scripts/fit_shake_model.py /work/shared/data/gyro [out.json]`` (default output
``gyrodeblur/data/shake_model.json``). Every ``<name>.csv`` with a JSON sidecar and at least
10 s of data is used; axes are taken to OpenCV camera axes where the source says how:

* GyroVD real: ``diag(1, -1, -1)`` (GyroDVD ``inference_GyroVDReal.py``, ``R_imu_cam``);
* gyro-video-stabilization: its code swaps x and y ("gyro x is camera y"); the signs are
  those of an Android rear camera with 90 degree sensor orientation (landscape frames):
  camera ``(x, y, z) = (-y, -x, -z)`` of the device;
* GyroDeblurNet: its code rotates about camera x, y, z by the (negated) wx, wy, wz, so the
  axes are the camera's up to signs, which do not change a spectrum;
* InertialScale D1-D3: raw device axes, no rotation given: pooled over axes.

The DeepGyro sample (0.22 s) is too short and left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gyrodeblur.geometry.gyro import GyroLog, read_gyro
from gyrodeblur.synthesis.motion import fit_shake_model

MIN_DURATION_S = 10.0
IMU_TO_CAMERA = {
    "gyrodvd_real": np.diag([1.0, -1.0, -1.0]),
    "gyrovidstab": np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]),
    "gyrodeblurnet": np.eye(3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gyro_dir", type=Path, help="folder of <name>.csv + <name>.json traces")
    parser.add_argument("out", type=Path, nargs="?",
                        default=Path(__file__).resolve().parents[1] / "gyrodeblur" / "data"
                        / "shake_model.json")
    args = parser.parse_args()

    logs = []
    for sidecar in sorted(args.gyro_dir.glob("*.json")):
        log = read_gyro(sidecar.with_suffix(".csv"))
        if log.t[-1] - log.t[0] < MIN_DURATION_S:
            print(f"skip {sidecar.stem}: {log.t[-1] - log.t[0]:.2f} s")
            continue
        axes = next((r for key, r in IMU_TO_CAMERA.items() if sidecar.stem.startswith(key)),
                    None)
        logs.append(GyroLog(log.t, log.w, sidecar.stem, imu_to_camera=axes))
        rate = 1.0 / np.median(np.diff(log.t))
        print(f"use  {sidecar.stem}: {rate:.1f} Hz, {log.t[-1]:.1f} s, "
              f"{'pooled axes' if axes is None else 'camera axes'}")
    model = fit_shake_model(logs)
    model.save(args.out)
    band = model.freqs[np.argmax(model.psd[1:], axis=0) + 1]
    print(json.dumps({"out": str(args.out), "rms_rad_s": model.rms.round(4).tolist(),
                      "peak_hz": band.round(2).tolist()}))


if __name__ == "__main__":
    main()
