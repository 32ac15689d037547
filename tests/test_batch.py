"""`hdr batch`: grouping a shuffled shoot folder, resuming, failures, reports."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from hdrcli.batch import plan
from hdrcli.io.hdr import read_hdr
from tests.conftest import textured_scene
from tests.test_cli import hdr

T0 = datetime(2026, 5, 1, 10, 0, 0)


def shoot(path: Path, radiance: np.ndarray, t: float, when: datetime, camera=("hdrcli", "TestCam")) -> None:
    pixels = np.clip(radiance * t * 40, 0, 1) ** (1 / 2.2)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = camera
    sub = exif.get_ifd(0x8769)
    r = Fraction(t).limit_denominator(10000)
    sub[0x829A] = IFDRational(r.numerator, r.denominator)
    sub[0x829D] = IFDRational(8, 1)
    sub[0x8827] = 100
    sub[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    sub[0x9291] = f"{when.microsecond // 1000:03d}"
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(path, quality=92, exif=exif.tobytes())


@pytest.fixture
def shoot_folder(tmp_path) -> Path:
    folder = tmp_path / "shoot"
    folder.mkdir()
    scene = textured_scene(48, 64, seed=3, stops=8)
    frames = [
        # bracket 1: quick hand-held bracket
        ("k7.jpg", 1 / 200, T0), ("b2.jpg", 1 / 50, T0 + timedelta(seconds=0.4)), ("x9.jpg", 1 / 12.5, T0 + timedelta(seconds=0.8)),
        # bracket 2: long exposures; starts are 2.5 s and 6 s apart but gaps after each frame's end are 1.5 s
        ("n1.jpg", 1.0, T0 + timedelta(minutes=5)), ("c4.jpg", 4.0, T0 + timedelta(minutes=5, seconds=2.5)),
        ("a3.jpg", 15.0, T0 + timedelta(minutes=5, seconds=8)),
        # brackets 3 and 4: the same settings twice, back to back
        ("r1.jpg", 1 / 100, T0 + timedelta(minutes=10)), ("r2.jpg", 1 / 25, T0 + timedelta(minutes=10, seconds=0.3)),
        ("r3.jpg", 1 / 6, T0 + timedelta(minutes=10, seconds=0.6)), ("r4.jpg", 1 / 100, T0 + timedelta(minutes=10, seconds=1.0)),
        ("r5.jpg", 1 / 25, T0 + timedelta(minutes=10, seconds=1.3)), ("r6.jpg", 1 / 6, T0 + timedelta(minutes=10, seconds=1.6)),
    ]
    for name, t, when in frames:
        shoot(folder / name, scene, t, when)
    # bracket 5: two cameras interleaved
    shoot(folder / "m1.jpg", scene, 1 / 100, T0 + timedelta(minutes=20), camera=("Canon", "A"))
    shoot(folder / "m2.jpg", scene, 1 / 25, T0 + timedelta(minutes=20, seconds=0.5), camera=("Nikon", "B"))
    # a frame without EXIF
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(folder / "noexif.png")
    return folder


def test_grouping(shoot_folder, tmp_path):
    scan = plan(shoot_folder, tmp_path / "out")
    names = [[s.path.name for s in g.shots] for g in scan.groups]
    assert names == [
        ["k7.jpg", "b2.jpg", "x9.jpg"],
        ["n1.jpg", "c4.jpg", "a3.jpg"],
        ["r1.jpg", "r2.jpg", "r3.jpg"],
        ["r4.jpg", "r5.jpg", "r6.jpg"],
        ["m1.jpg", "m2.jpg"],
    ]
    assert scan.groups[4].problem.startswith("mixes cameras")
    assert [p.name for p, _ in scan.unusable] == ["noexif.png"]
    assert scan.groups[0].output.name == "k7-x9.exr"
    by_count = plan(shoot_folder, tmp_path / "out", count=3, template="{index}")
    assert [len(g.shots) for g in by_count.groups] == [3, 3, 3, 3, 2]


def test_batch_run_resume_and_failures(shoot_folder, tmp_path):
    out = tmp_path / "out"
    r = hdr("batch", shoot_folder, "-o", out, "--dry-run")
    assert r.returncode == 0 and "5 groups" in r.stdout and not out.exists()
    # A corrupt frame inside a group: that group fails, the others finish.
    data = (shoot_folder / "r5.jpg").read_bytes()
    (shoot_folder / "r5.jpg").write_bytes(data[: len(data) - 300])
    r = hdr("batch", shoot_folder, "-o", out, "--jobs", "2", "--align", "none", "--no-preview")
    assert r.returncode == 1  # some group failed
    report = json.loads((out / "hdr-batch-report.json").read_text())
    status = {row["group"]: row["status"] for row in report if row["group"] is not None}
    assert status == {1: "done", 2: "done", 3: "done", 4: "failed", 5: "failed"}
    failed = next(row for row in report if row["group"] == 4)
    assert "r5.jpg" in failed["error"] and "truncated" in failed["error"]
    assert any(row["status"] == "not grouped" and row["frames"][0].endswith("noexif.png") for row in report)
    assert sorted(p.name for p in out.glob("*.exr")) == ["k7-x9.exr", "n1-a3.exr", "r1-r3.exr"]
    # Interrupted run: one output missing; --skip-existing redoes only that group.
    (out / "n1-a3.exr").unlink()
    before = (out / "k7-x9.exr").stat().st_mtime_ns
    r = hdr("batch", shoot_folder, "-o", out, "--skip-existing", "--align", "none", "--no-preview")
    report = json.loads((out / "hdr-batch-report.json").read_text())
    status = {row["group"]: row["status"] for row in report if row["group"] is not None}
    assert status[1].startswith("skipped") and status[2] == "done" and status[3].startswith("skipped")
    assert (out / "k7-x9.exr").stat().st_mtime_ns == before and (out / "n1-a3.exr").exists()


def test_batch_crop(tmp_path, example_bracket):
    """--crop reaches every group's fuse: the hand-held example bracket comes out cropped."""
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    for path in example_bracket:
        (shoot / path.name).write_bytes(path.read_bytes())
    r = hdr("batch", shoot, "-o", tmp_path / "out", "--crop", "--no-preview")
    assert r.returncode == 0, r.stderr
    (output,) = (tmp_path / "out").glob("*.exr")
    height, width = read_hdr(output).shape[:2]
    assert height < 480 and width < 720 and height * width > 0.9 * 480 * 720


def test_batch_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    r = hdr("batch", tmp_path / "empty", "-o", tmp_path / "out")
    assert r.returncode == 1 and "no images" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "plain").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "plain" / "a.png")
    r = hdr("batch", tmp_path / "plain", "-o", tmp_path / "out")
    assert r.returncode == 1 and "no recognisable brackets" in r.stderr
