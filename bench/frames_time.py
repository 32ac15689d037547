"""Fuse time against the number of frames (issue 12: time grows at most linearly).

    python bench/frames_time.py [--backends debevec,lffnet] [--repeat 2]

Memorial (512 x 768, tripod, no alignment): sub-brackets of N = 2, 3, 5, 7, 9 and 16
consecutive exposures around memorial07, each fused ``--repeat`` times in this process
(best time kept; the model is loaded once beforehand). Prints seconds and seconds per
frame: linear growth keeps the last column flat or falling.
"""

from __future__ import annotations

import argparse
import time

from hdrcli.pipeline import fuse_bracket, load_bracket
from hdrcli.training.camera import SHARED_DATA

FOLDER = SHARED_DATA / "brackets" / "memorial"
COUNTS = (2, 3, 5, 7, 9, 16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="debevec,lffnet")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    seconds = {line.split()[0]: 1.0 / float(line.split()[1])
               for line in (FOLDER / "memorial.txt").read_text().split("\n") if line.strip()}
    print("| backend | frames | seconds | seconds per frame |")
    print("|---|---|---|---|")
    for backend in args.backends.split(","):
        runner = None
        if backend not in ("debevec", "robertson", "mertens"):
            from hdrcli.runtime import make_runner

            runner = make_runner(backend, "torch", device="cpu")
        for n in COUNTS:
            first = max(0, min(16 - n, 7 - n // 2))
            names = [f"memorial{i:02d}.png" for i in range(first, first + n)]
            best = float("inf")
            for _ in range(args.repeat):
                bracket = load_bracket([FOLDER / m for m in names], exposures=[seconds[m] for m in names])
                t0 = time.perf_counter()
                fuse_bracket(bracket, backend, align="none", device="cpu", runner=runner)
                best = min(best, time.perf_counter() - t0)
            print(f"| {backend} | {n} | {best:.2f} | {best / n:.3f} |", flush=True)


if __name__ == "__main__":
    main()
