"""Speed of ``hdr expand``'s two single-image backends on the same real photos, in one run.

    python bench/expand_speed.py [--rounds 2] [--threads 0] [--runtimes torch,onnx]

For each photo of ../shared/data/single (1024x768), twostage and stack run in turns on each
runtime (CPU, whole image, as ``hdr expand`` runs them; ONNX Runtime: the whole-photo
exports): the seconds of the network and the composition (``expand_photo``), no file I/O,
no imports or session start-up (the first round opens them); the best of ``--rounds`` per
photo. Printed: mean seconds per backend and runtime and the stack / twostage ratio (the
issue's bound: stack at most 4x twostage).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hdrcli.io.frames import read_frame
from hdrcli.runtime import make_runner
from hdrcli.training.camera import SHARED_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--runtimes", default="torch", help="comma-separated: torch, onnx")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    photos = sorted((SHARED_DATA / "single").glob("img_*.png"))
    if not photos:
        raise SystemExit(f"no photos under {SHARED_DATA / 'single'}")
    runners = {f"{name}@{runtime}": make_runner(name, runtime, device="cpu")
               for runtime in args.runtimes.split(",") for name in ("twostage", "stack")}
    best: dict[str, list[float]] = {name: [] for name in runners}
    for path in photos:
        image = read_frame(path).pixels
        times = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                t0 = time.perf_counter()
                runner.expand_photo(image)
                times[name].append(time.perf_counter() - t0)
        for name in runners:
            best[name].append(min(times[name]))
        print(f"{path.name} {image.shape[1]}x{image.shape[0]}: "
              + ", ".join(f"{n} {min(t):.2f} s" for n, t in times.items()), flush=True)
    mean = {name: float(np.mean(t)) for name, t in best.items()}
    for runtime in args.runtimes.split(","):
        two, stack = mean[f"twostage@{runtime}"], mean[f"stack@{runtime}"]
        print(f"mean ({runtime}): twostage {two:.2f} s, stack {stack:.2f} s, stack / twostage {stack / two:.2f}x")


if __name__ == "__main__":
    main()
