import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gyrodeblur.errors import InputError
from gyrodeblur.synthesis.clips import export_clip
from gyrodeblur.synthesis.datasets import ClipFolderDataset, SyntheticDataset
from gyrodeblur.synthesis.images import ImageBank
from gyrodeblur.synthesis.sampler import ClipSampler, SamplerSettings
from gyrodeblur.synthesis.sensor_errors import SensorErrorRanges

BANK = ImageBank(dead_leaves=2, dead_leaves_size=96)
NO_ERRORS = SensorErrorRanges(delay=0.0, bias=0.0, scale=0.0, noise=0.0, readout=0.0)


def dataset(frames=1, seed=0, errors=None):
    settings = SamplerSettings(width=40, height=32, frames=frames, samples=5,
                               errors=errors or SensorErrorRanges())
    return SyntheticDataset(ClipSampler(BANK, settings, seed), length=6)


def test_image_samples_have_documented_shapes():
    sample = dataset()[0]
    assert sample["blurred"].shape == sample["sharp"].shape == (3, 32, 40)
    assert sample["rot"].shape == sample["rot_true"].shape == (5, 2, 32, 40)
    assert sample["blurred"].dtype == torch.float32
    assert float(sample["tran"].abs().max()) == 0.0  # no flow for a single image


def test_deterministic_per_seed_and_index_and_worker_safe():
    ds = dataset(frames=2)
    direct = [ds[i]["blurred"] for i in range(4)]
    assert torch.equal(ds[2]["blurred"], direct[2])
    assert not torch.equal(dataset(frames=2, seed=1)[2]["blurred"], direct[2])
    loader = DataLoader(torch.utils.data.Subset(ds, range(4)), batch_size=1, num_workers=2)
    for i, batch in enumerate(loader):
        assert torch.equal(batch["blurred"][0], direct[i])


def test_without_sensor_errors_the_observed_rotation_is_the_truth():
    sample = dataset(frames=3, errors=NO_ERRORS)[1]
    torch.testing.assert_close(sample["rot"], sample["rot_true"], atol=1e-5, rtol=0)


def test_sensor_errors_change_what_the_network_sees_not_the_blur():
    clean, noisy = dataset(errors=NO_ERRORS)[3], dataset()[3]
    assert torch.equal(clean["blurred"], noisy["blurred"])
    assert not torch.allclose(clean["rot"], noisy["rot"], atol=1e-4)


def test_clip_folders_load_like_synthetic_samples(tmp_path):
    ds = dataset(frames=3, errors=NO_ERRORS)
    export_clip(ds.sampler.sample(0), tmp_path / "clip")
    folder = ClipFolderDataset(tmp_path, frames=3, samples=5)
    assert len(folder) == 1
    sample, synthetic = folder[0], ds[0]
    # PNG stores 8 bits: equal to the synthetic sample to quantisation.
    torch.testing.assert_close(sample["blurred"], synthetic["blurred"], atol=0.5 / 255 + 1e-6,
                               rtol=0)
    torch.testing.assert_close(sample["rot"], synthetic["rot"], atol=1e-4, rtol=0)
    assert sample["sharp"].shape == sample["blurred"].shape == (3, 3, 32, 40)
    for beyond in (-1, 1):  # as a sequence: iteration and DataLoaders stop at IndexError
        with pytest.raises(IndexError):
            folder[beyond]


def test_clip_folders_skip_hidden_unfinished_clips(tmp_path):
    ds = dataset(frames=3, errors=NO_ERRORS)
    export_clip(ds.sampler.sample(0), tmp_path / "clip_000000")
    # What a killed `synth clips` leaves: a hidden partial copy, here without camera.json.
    shutil.copytree(tmp_path / "clip_000000", tmp_path / ".clip_000001.part")
    (tmp_path / ".clip_000001.part" / "camera.json").unlink()
    folder = ClipFolderDataset(tmp_path, frames=3, samples=5)
    assert [clip.path.name for clip in folder.clips] == ["clip_000000"]


def test_single_frames_of_clip_folders_get_the_translation_of_their_neighbours(tmp_path):
    ds = dataset(frames=3, errors=NO_ERRORS)
    export_clip(ds.sampler.sample(0), tmp_path / "clip")
    frames = ClipFolderDataset(tmp_path, frames=1, samples=5)
    window = ClipFolderDataset(tmp_path, frames=3, samples=5)[0]
    assert len(frames) == 3
    middle = frames[1]  # the same neighbours as the window's middle frame
    assert middle["tran"].abs().max() > 0.01  # measured, not the zeros of a lone frame
    torch.testing.assert_close(middle["tran"], window["tran"][1], atol=1e-6, rtol=0)
    torch.testing.assert_close(middle["blurred"], window["blurred"][1], atol=0, rtol=0)
    for frames in (4, 5):  # longer than the clip
        with pytest.raises(InputError, match=f"no clip has {frames} frames"):
            ClipFolderDataset(tmp_path, frames=frames)


def test_first_estimate_restores_whole_frames_before_the_crop():
    seen = []

    def mirror(frame, kernel):  # depends on the whole frame and on its kernel
        seen.append((frame.shape, kernel.shape))
        return frame[::-1, ::-1] + kernel.mean()

    sampler = dataset().sampler
    whole = SyntheticDataset(sampler, 6, first_estimate=mirror)[2]
    cropped = SyntheticDataset(sampler, 6, crop=16, first_estimate=mirror)[2]
    assert seen == [((32, 40, 3), (5, 2, 32, 40))] * 2
    want = whole["blurred"].flip(1, 2) + (whole["rot"] + whole["tran"]).mean()
    torch.testing.assert_close(whole["estimate"], want)
    y, x = next((y, x) for y in range(17) for x in range(25)
                if torch.equal(whole["blurred"][:, y:y + 16, x:x + 16], cropped["blurred"]))
    assert torch.equal(cropped["estimate"], whole["estimate"][:, y:y + 16, x:x + 16])


def test_clip_folder_problems_name_the_clip_or_file(tmp_path):
    import json
    import shutil

    ds = dataset(frames=3, errors=NO_ERRORS)
    export_clip(ds.sampler.sample(0), tmp_path / "a" / "clip")
    clip = tmp_path / "a" / "clip"
    # A frame more or less in sharp/ would pair every frame after it with another's truth.
    # Named alike, the file without its partner is named, also where the counts agree.
    shutil.copy(clip / "sharp" / "000003.png", clip / "sharp" / "000004.png")
    with pytest.raises(InputError, match=r"clip/sharp/000004\.png: no frame of that name in "
                                         r"blurred/"):
        ClipFolderDataset(tmp_path / "a", frames=1, samples=5)
    (clip / "sharp" / "000002.png").rename(clip / "sharp" / "000009.png")
    (clip / "sharp" / "000004.png").unlink()
    with pytest.raises(InputError, match=r"clip/sharp/000009\.png: no frame of that name in "
                                         r"blurred/"):
        ClipFolderDataset(tmp_path / "a", frames=1, samples=5)
    for n in (1, 3, 9):  # named otherwise: paired in frame order, so counted
        (clip / "sharp" / f"{n:06d}.png").rename(clip / "sharp" / f"gt_{n}.png")
    shutil.copy(clip / "sharp" / "gt_3.png", clip / "sharp" / "gt_4.png")
    with pytest.raises(InputError, match=r"clip/sharp: 4 frames where blurred/ has 3"):
        ClipFolderDataset(tmp_path / "a", frames=1, samples=5)
    (clip / "sharp" / "gt_4.png").unlink()
    for n, old in ((1, 1), (2, 9), (3, 3)):
        (clip / "sharp" / f"gt_{old}.png").rename(clip / "sharp" / f"{n:06d}.png")
    # The camera of another aspect ratio, and a gyro that stops before the frames.
    camera = json.loads((clip / "camera.json").read_text())
    (clip / "camera.json").write_text(json.dumps({**camera, "width": 60}))
    with pytest.raises(InputError, match=r"clip/camera\.json: does not fit blurred/: "):
        ClipFolderDataset(tmp_path / "a", frames=1, samples=5)[0]
    (clip / "camera.json").write_text(json.dumps(camera))
    lines = (clip / "gyro.csv").read_text().splitlines()
    (clip / "gyro.csv").write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(InputError, match=r"clip/gyro\.csv: gyro covers .* but the frames need"):
        ClipFolderDataset(tmp_path / "a", frames=1, samples=5)[0]


def test_scoring_every_frame_refuses_clips_shorter_than_the_window(tmp_path):
    # Left out, the clip would make the score incomparable with other window lengths.
    export_clip(dataset(frames=2, errors=NO_ERRORS).sampler.sample(0), tmp_path / "short")
    message = r"short: 2 consecutive frames \(1\.\.2\), fewer than the 3 of a window"
    with pytest.raises(InputError, match=message):
        ClipFolderDataset(tmp_path, frames=3, samples=5, per_frame=True)


def test_windows_of_clip_folders_hold_consecutive_frames(tmp_path):
    export_clip(dataset(frames=5, errors=NO_ERRORS).sampler.sample(0), tmp_path / "clip")
    rows = (tmp_path / "clip" / "frames.csv").read_text().splitlines()
    # Frame 3 left out of the frames CSV: windows of 2 are 1-2 and 4-5, never 2-4.
    (tmp_path / "clip" / "frames.csv").write_text("\n".join(rows[:3] + rows[4:]) + "\n")
    assert ClipFolderDataset(tmp_path, frames=2, samples=5).index == [(0, 1, None), (0, 4, None)]
    scored = ClipFolderDataset(tmp_path, frames=2, samples=5, per_frame=True).index
    assert scored == [(0, 1, 0), (0, 1, 1), (0, 4, 0), (0, 4, 1)]
    with pytest.raises(InputError, match=r"clip: 2 consecutive frames \(1\.\.2\), fewer than"):
        ClipFolderDataset(tmp_path, frames=3, samples=5, per_frame=True)


@pytest.mark.parametrize(("options", "message"), [
    ({"flow": "raft"}, "flow 'raft': choose one of"),
    ({"crop": 40}, r"crop 40 is larger than the frames \(32x24\)"),
    ({"crop": -5}, r"^crop -5: a whole number of pixels, at least 1, or None$"),
    ({"crop": 20.0}, r"^crop 20.0: a whole number of pixels, at least 1, or None$"),
    ({"crop": True}, r"^crop True: a whole number of pixels, at least 1, or None$"),
    ({"length": -1}, r"^length -1: a whole number of samples, 0 or more$"),
])
def test_synthetic_dataset_settings_are_checked_when_it_is_made(options, message):
    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=64),
                          SamplerSettings(width=32, height=24))
    with pytest.raises(ValueError, match=message):
        SyntheticDataset(sampler, **{"length": 2, **options})


def test_a_sampler_refuses_a_seed_numpy_cannot_take():
    with pytest.raises(ValueError, match=r"^seed -1: a whole number, 0 or more$"):
        ClipSampler(BANK, SamplerSettings(width=32, height=24), seed=-1)


def test_an_index_beyond_the_samples_says_how_many_there_are(tmp_path):
    ds = dataset()
    for index in (-1, 6):
        with pytest.raises(IndexError, match=rf"^sample {index} of 6 \(0 to 5\)$"):
            ds[index]
    assert torch.equal(ds[torch.tensor(1)]["blurred"], ds[1]["blurred"])  # a sampler's index
    export_clip(dataset(frames=2).sampler.sample(0), tmp_path / "a")
    folder = ClipFolderDataset(tmp_path, frames=1, samples=5)
    with pytest.raises(IndexError, match=r"^sample 2 of 2 \(0 to 1\)$"):
        folder[2]
    with pytest.raises(ValueError, match=r"^crop 0: a whole number of pixels, at least 1, "
                                         r"or None$"):
        ClipFolderDataset(tmp_path, frames=1, samples=5, crop=0)


def test_a_synthetic_dataset_takes_a_flow_function_as_its_name():
    from gyrodeblur.kernels.flow import farneback_flow

    sampler = ClipSampler(ImageBank(dead_leaves=1, dead_leaves_size=64),
                          SamplerSettings(width=32, height=24, frames=2))
    named, plugged = (SyntheticDataset(sampler, 1, flow=flow)[0]
                      for flow in ("farneback", farneback_flow))
    torch.testing.assert_close(plugged["tran"], named["tran"], rtol=0, atol=0)


def test_clip_folders_take_a_gcsv_readout_and_orientation_as_kernels_does(tmp_path):
    import json

    ds = dataset(frames=3, errors=NO_ERRORS)
    export_clip(ds.sampler.sample(0), tmp_path / "clip")
    expected = ClipFolderDataset(tmp_path, frames=3, samples=5)[0]["rot"]
    clip = tmp_path / "clip"
    camera = json.loads((clip / "camera.json").read_text())
    rows = np.loadtxt(clip / "gyro.csv", delimiter=",", skiprows=1)
    # The readout only in the gcsv (ms over the frame's rows), its axes those of OpenCV (yxz).
    gcsv_ms = camera["readout_time"] * camera["height"] / (camera["height"] - 1) * 1e3
    lines = ["GYROFLOW IMU LOG", "version,1.3", "orientation,yxz", "tscale,1", "gscale,1",
             f"frame_readout_time,{gcsv_ms!r}", "t,gx,gy,gz"]
    lines += [",".join(repr(float(v)) for v in row) for row in rows]
    (clip / "gyro.csv").write_text("\n".join(lines) + "\n")
    (clip / "camera.json").write_text(json.dumps(camera | {"readout_time": 0.0}))
    assert rows[0, 0] == 0  # a gcsv's clock starts at its first sample: the same times
    got = ClipFolderDataset(tmp_path, frames=3, samples=5)[0]["rot"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_a_first_estimate_that_cannot_take_a_frame_and_its_kernel_is_refused_at_once(tmp_path):
    from gyrodeblur.pipelines.deblur import make_restorer

    sampler = dataset().sampler
    export_clip(sampler.sample(0), tmp_path / "clip")
    for wrong in (make_restorer("classic"), lambda frames, rot, tran: frames[0]):
        with pytest.raises(TypeError, match=r"first_estimate must be called as \(blurred, "
                                            r"traj\) -> image.*missing a required argument"):
            SyntheticDataset(sampler, 2, first_estimate=wrong)
        with pytest.raises(TypeError, match="first_estimate must be called as"):
            ClipFolderDataset(tmp_path, first_estimate=wrong)


def test_scoring_every_frame_fills_windows_at_a_clips_ends_as_deblur_video_does(tmp_path):
    export_clip(dataset(frames=4, errors=NO_ERRORS).sampler.sample(0), tmp_path / "clip")
    scored = ClipFolderDataset(tmp_path, frames=3, samples=5, per_frame=True)
    first, second, last = scored[0], scored[1], scored[3]
    # Windows 1 1 2, 1 2 3, ..., 3 4 4 (deblur video's), each centred on its frame.
    assert all(int(s["centre"]) == 1 for s in (first, second, last))
    for key in ("blurred", "sharp", "rot", "tran"):
        torch.testing.assert_close(first[key][0], first[key][1], rtol=0, atol=0)
        torch.testing.assert_close(first[key][1:], second[key][:2], rtol=0, atol=0)
        torch.testing.assert_close(last[key][1], last[key][2], rtol=0, atol=0)
    assert not torch.equal(first["blurred"][1], first["blurred"][2])


def test_crops_change_with_the_epoch_and_come_back_with_it(tmp_path):
    export_clip(dataset(frames=2).sampler.sample(0), tmp_path / "a")
    for ds in (dataset(), ClipFolderDataset(tmp_path, frames=1, samples=5)):
        whole = [ds[i]["blurred"] for i in range(2)]
        ds.crop = 12
        first = [ds[i]["blurred"] for i in range(2)]
        assert all(torch.equal(ds[i]["blurred"], first[i]) for i in range(2))  # reproducible
        ds.set_epoch(3)
        later = [ds[i]["blurred"] for i in range(2)]
        assert any(not torch.equal(a, b) for a, b in zip(first, later, strict=True))
        for crop, full in zip(later, whole, strict=True):  # a window of the same sample
            h, w = full.shape[-2:]
            assert any(torch.equal(full[:, y:y + 12, x:x + 12], crop)
                       for y in range(h - 11) for x in range(w - 11))
        ds.set_epoch(0)
        assert all(torch.equal(ds[i]["blurred"], first[i]) for i in range(2))
        with pytest.raises(ValueError, match=r"^epoch -1: a whole number, 0 or more$"):
            ds.set_epoch(-1)


def test_clip_folder_windows_integrate_only_the_gyro_around_their_frames(tmp_path, monkeypatch):
    import gyrodeblur.kernels.rotation as rotation

    ds = dataset(frames=3, errors=NO_ERRORS)
    export_clip(ds.sampler.sample(0), tmp_path / "clip")
    expected = ClipFolderDataset(tmp_path, frames=3, samples=5)[0]["rot"]
    # The device's whole log instead of the clip's: a quarter of an hour more at 1 kHz.
    gyro = tmp_path / "clip" / "gyro.csv"
    t = np.loadtxt(gyro, delimiter=",", skiprows=1, usecols=0)
    more = t[-1] + np.arange(1, 1_000_001) * 1e-3
    with gyro.open("a") as file:
        np.savetxt(file, np.column_stack([more, np.zeros((len(more), 3))]), delimiter=",")
    integrated = []
    integrate = rotation.integrate
    monkeypatch.setattr(rotation, "integrate", lambda t, w: integrated.append(len(t)) or
                        integrate(t, w))
    got = ClipFolderDataset(tmp_path, frames=3, samples=5)[0]["rot"]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert integrated and max(integrated) < len(t) + 2000  # the clip's span and a margin
