"""Learned backends: torch vs ONNX Runtime, 1 vs 2 threads, on the same 1500x1000 bracket.

Each (backend, runtime, threads) runs in a fresh child process that sets its threads with
hdrcli.threads.configure (torch intra/inter-op pools, ONNX Runtime intra-op, OpenCV),
loads the runner (not timed), then fuses bench/speed.py's deterministic synthetic
bracket twice; the faster pass is reported as wall and CPU seconds. The table behind
`--runtime auto` (hdrcli.runtime.FASTER_RUNTIME) comes from this script. On a machine
other jobs load, wall times are noisy: compare within one run.

    python bench/runtime_threads.py [--size 1500x1000] [--backends lffnet,dfgnet,tunet] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def child(backend: str, runtime: str, threads: int, size: str) -> dict:
    from speed import bracket

    from hdrcli.runtime import make_runner
    from hdrcli.threads import configure

    configure(threads)
    width, height = map(int, size.split("x"))
    frames, exposures = bracket(width, height)
    runner = make_runner(backend, runtime, device="cpu")
    best = None
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        runner.fuse(frames, exposures)
        run = (time.perf_counter() - t0, time.process_time() - c0)
        best = run if best is None or run[0] < best[0] else best
    return {"wall_s": best[0], "cpu_s": best[1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1500x1000")
    parser.add_argument("--backends", default="lffnet,dfgnet,tunet")
    parser.add_argument("--runtimes", default="torch,onnx")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--child", nargs=3, metavar=("BACKEND", "RUNTIME", "THREADS"))
    args = parser.parse_args()
    if args.child:
        backend, runtime, threads = args.child
        print(json.dumps(child(backend, runtime, int(threads), args.size)))
        return
    print(f"{args.size} bracket, network step (runner.fuse), best of 2; wall / CPU seconds")
    print("| backend | runtime | " + " | ".join(f"{t} thread(s)" for t in args.threads.split(",")) + " |")
    print("|---|---|" + "---|" * len(args.threads.split(",")))
    for backend in args.backends.split(","):
        for runtime in args.runtimes.split(","):
            cells = []
            for threads in args.threads.split(","):
                out = subprocess.run([sys.executable, __file__, "--child", backend, runtime, threads, "--size", args.size],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    cells.append("failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:60])
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                cells.append(f"{r['wall_s']:.2f} / {r['cpu_s']:.2f}")
            print(f"| {backend} | {runtime} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
