"""Where `hdr fuse` spends its time and memory: per-stage seconds, CPU and peak RSS.

Cases (each in a fresh child process, files to files, as `hdr fuse` runs them):

* ``debevec-12mp``: the default backend on ../shared/data/brackets/iphone_handheld
  (3 x 4032x3024 hand-held JPEGs, default ECC alignment, EXR + preview);
* ``debevec-1.5mp``: the same bracket downsized to 1414x1060 (written once to a temporary
  folder, exposures given from the originals' EXIF);
* ``lffnet-12mp`` / ``lffnet-1.5mp``: the default learned backend on the same frames;
* ``debevec-24mp`` / ``lffnet-24mp``: the same bracket upsized to 24 MP (5657x4243, bicubic,
  JPEG quality 95): a full-frame camera's size;
* ``BACKEND@RUNTIME-SIZE`` (``lffnet@onnx-1.5mp``, ``dfgnet@auto-12mp``): a learned backend on
  another runtime (default torch).

Printed per case: the stages of FuseResult.timings (read, exif, model load, align,
calibrate, merge or network, EXR write, preview), wall and CPU seconds of the whole job
and the child's peak RSS (its VmHWM: its own memory map only). ``--profile`` adds the top
functions by own time (cProfile) for each case. Other jobs on the machine make wall
times noisy; CPU seconds and ratios within one run are steadier.

    python bench/profile_fuse.py [--cases debevec-12mp,lffnet-1.5mp] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hdrcli.training.camera import SHARED_DATA

FOLDER = SHARED_DATA / "brackets" / "iphone_handheld"
CASES = ("debevec-1.5mp", "debevec-12mp", "lffnet-1.5mp", "lffnet-12mp", "debevec-24mp", "lffnet-24mp")


def resized_bracket(folder: Path, megapixels: float) -> tuple[list[Path], list[float]]:
    """The iphone bracket resized to ``megapixels`` (JPEG quality 95) and its EXIF exposure times."""
    import cv2

    from hdrcli.exposure import exif_exposures
    from hdrcli.io.frames import read_frames

    sources = sorted(FOLDER.glob("*.jpeg"))
    frames = read_frames(sources)
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        h, w = frame.pixels.shape[:2]
        scale = (megapixels * 1e6 / (h * w)) ** 0.5
        resized = cv2.resize(frame.pixels, (round(w * scale), round(h * scale)),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        path = folder / frame.name
        cv2.imwrite(str(path), cv2.cvtColor(np.clip(resized * 255 + 0.5, 0, 255).astype("uint8"), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
        del resized
    return paths, [float(t) for t in exif_exposures(frames)]


def child(case: str, threads: int | None, profile: bool, inputs: list[str], exposures: list[float] | None) -> dict:
    from hdrcli.pipeline import fuse

    backend, _, runtime = case.split("-")[0].partition("@")
    with tempfile.TemporaryDirectory() as out:
        job = lambda: fuse(inputs, Path(out) / "out.exr", backend=backend, exposures=exposures,  # noqa: E731
                           threads=threads, device="cpu", runtime=runtime or "torch")
        t0, c0 = time.perf_counter(), time.process_time()
        if profile:
            import cProfile
            import io
            import pstats

            prof = cProfile.Profile()
            result, _ = prof.runcall(job)
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
            print(text.getvalue(), file=sys.stderr)
        else:
            result, _ = job()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"timings": result.timings, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM (Linux) belongs to the process's own memory map;
    getrusage's maxrss also keeps the parent's peak at fork (a parent that made the 24 MP
    bracket passed its 1.3 GB on to every later case)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--exposures", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        exposures = json.loads(args.exposures) if args.exposures else None
        print(json.dumps(child(args.child, args.threads, args.profile, json.loads(args.inputs), exposures)))
        return
    if not FOLDER.is_dir():
        sys.exit(f"{FOLDER} is absent: this benchmark needs ../shared/data")
    from hdrcli.pipeline import STAGES

    with tempfile.TemporaryDirectory() as tmp:
        resized: dict[str, tuple[list[Path], list[float]]] = {}
        rows = []
        for case in args.cases.split(","):
            size = case.split("-")[1]
            if size == "12mp":
                inputs, exposures = [str(p) for p in sorted(FOLDER.glob("*.jpeg"))], None
            else:
                if size not in resized:
                    resized[size] = resized_bracket(Path(tmp) / size, float(size.removesuffix("mp")))
                inputs, exposures = [str(p) for p in resized[size][0]], resized[size][1]
            command = [sys.executable, __file__, "--child", case, "--inputs", json.dumps(inputs)]
            command += ["--exposures", json.dumps(exposures)] if exposures else []
            command += ["--threads", str(args.threads)] if args.threads else []
            command += ["--profile"] if args.profile else []
            out = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            if args.profile or out.returncode != 0:
                print(f"--- {case}\n{out.stderr}", file=sys.stderr)
            if out.returncode != 0:
                continue
            rows.append((case, json.loads(out.stdout.strip().splitlines()[-1])))
    keys = [(k, label) for k, label in STAGES if any(k in r["timings"] for _, r in rows)]
    print("| case | " + " | ".join(label for _, label in keys) + " | wall s | CPU s | peak RSS MB |")
    print("|---|" + "---|" * (len(keys) + 3))
    for case, r in rows:
        cells = [f"{r['timings'][k]:.2f}" if k in r["timings"] else "-" for k, _ in keys]
        print(f"| {case} | " + " | ".join(cells) + f" | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
