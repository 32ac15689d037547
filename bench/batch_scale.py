"""Throughput of `hdr batch --jobs N` on generated brackets (issue 14: --jobs 2 >= 1.7x --jobs 1).

    python bench/batch_scale.py [--brackets 8] [--size 1500x1000] [--jobs 1,2] [--repeats 2] [--engine local]
                                [--threads N]

Writes a shoot folder of N deterministic 3-frame JPEG brackets with EXIF (capture times 5
minutes apart, 1/200, 1/50, 1/12.5 s), then runs the real CLI, `hdr batch DIR -o OUT
--jobs J` (default backend and alignment, fresh OUT each time), for every J in turn,
`--repeats` rounds interleaved (1, 2, 1, 2, ...) so slow phases of a shared machine hit
both. Printed per J: wall seconds of each run, the best, brackets per minute, the
speed-up over the first J, and the threads each job got (cores // jobs, from the
process's CPU affinity). The wall time includes starting the workers (their imports),
as a user sees it. ``--threads N`` gives every job N threads instead (``hdr batch
--threads``), so that the jobs differ only in how many run at once: how the throughput
scales with the jobs, apart from what a job's own threads already gain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np

T0 = datetime(2026, 5, 1, 10, 0, 0)


def make_shoot(folder: Path, brackets: int, width: int, height: int) -> None:
    """``brackets`` 3-frame brackets of one textured scene shifted per bracket, as JPEGs with EXIF."""
    import cv2
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    rng = np.random.default_rng(0)
    field = np.zeros((height, width), np.float32)
    for sigma, weight in ((height / 10, 1.0), (height / 40, 0.5), (2.0, 0.25)):
        noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
        field += weight * noise / noise.std()
    field = (field - field.min()) / (field.max() - field.min())
    radiance = (2.0 ** (10 * field - 10))[..., None] * np.float32([1.0, 0.92, 0.8])
    for b in range(brackets):
        scene = np.roll(radiance, b * width // brackets, axis=1)
        for i, t in enumerate((1 / 200, 1 / 50, 1 / 12.5)):
            pixels = np.clip(scene * t * 40, 0, 1) ** (1 / 2.2)
            exif = Image.Exif()
            exif[0x010F], exif[0x0110] = "hdrcli", "BenchCam"
            sub = exif.get_ifd(0x8769)
            r = Fraction(t).limit_denominator(10000)
            sub[0x829A] = IFDRational(r.numerator, r.denominator)
            sub[0x829D] = IFDRational(8, 1)
            sub[0x8827] = 100
            sub[0x9003] = (T0 + timedelta(minutes=5 * b, seconds=0.5 * i)).strftime("%Y:%m:%d %H:%M:%S")
            Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(
                folder / f"b{b:02d}_{i}.jpg", quality=92, exif=exif.tobytes())


def run(folder: Path, out: Path, jobs: int, engine: str, threads: int | None = None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    extra = ["--threads", str(threads)] if threads else []
    r = subprocess.run([sys.executable, "-m", "hdrcli.cli", "batch", str(folder), "-o", str(out), "--jobs", str(jobs),
                        "--engine", engine, *extra], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"hdr batch --jobs {jobs} failed:\n{r.stderr[-2000:]}")
    report = json.loads((out / "hdr-batch-report.json").read_text())
    assert all(row["status"] == "done" for row in report), report
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brackets", type=int, default=8)
    parser.add_argument("--size", default="1500x1000")
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engine", default="local")
    parser.add_argument("--threads", type=int, default=None, help="threads of every job (default: cores // jobs)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    jobs_list = [int(j) for j in args.jobs.split(",")]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hdrcli.batch import cores_available, threads_per_job

    cores = cores_available()
    with tempfile.TemporaryDirectory(prefix="hdr-batch-scale-") as tmp:
        folder = Path(tmp) / "shoot"
        folder.mkdir()
        make_shoot(folder, args.brackets, width, height)
        times: dict[int, list[float]] = {j: [] for j in jobs_list}
        for _ in range(args.repeats):
            for jobs in jobs_list:
                times[jobs].append(run(folder, Path(tmp) / "out", jobs, args.engine, args.threads))
                print(f"  --jobs {jobs}: {times[jobs][-1]:.1f} s", file=sys.stderr, flush=True)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"{args.brackets} brackets of 3 x {width}x{height}, engine {args.engine}, {cores} cores available, "
          f"load average at the end {load:.1f}")
    print(f"{'jobs':>4} {'threads/job':>11} {'runs (s)':>20} {'best s':>7} {'brackets/min':>12} {'speed-up':>8}")
    base = min(times[jobs_list[0]])
    for jobs in jobs_list:
        best = min(times[jobs])
        runs = ", ".join(f"{t:.1f}" for t in times[jobs])
        print(f"{jobs:>4} {args.threads or threads_per_job(jobs, cores):>11} {runs:>20} {best:>7.1f} {60 * args.brackets / best:>12.1f} "
              f"{base / best:>7.2f}x")


if __name__ == "__main__":
    main()
