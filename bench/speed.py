"""Speed and memory of every fusion method on the same generated bracket.

    python bench/speed.py [--sizes 1500x1000,6000x4000] [--backends lffnet,dfgnet,tunet] [--device cpu]

Each method runs in a fresh child process (so peak memory is its own) on the same
deterministic synthetic 3-frame bracket: OpenCV Debevec (CalibrateDebevec + MergeDebevec
on 8-bit frames, the classical reference), hdrcli's guarded Debevec merge, and each
learned backend with weights under torch (eager) and ONNX Runtime (exported with
`hdr export`, each backend's default tile). Printed: seconds of the fusion itself (frames in memory,
no file I/O), peak RSS of the child, and the time ratio to OpenCV Debevec. With two
sizes, the exponent k in time ~ pixels^k between them is printed too.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np


def bracket(width: int, height: int) -> tuple[list[np.ndarray], list[float]]:
    """Deterministic synthetic bracket: upscaled blob texture over 12 stops, gamma camera."""
    import cv2

    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.standard_normal((height // 8, width // 8)).astype(np.float32), (0, 0), 3)
    small = (small - small.min()) / (small.max() - small.min())
    lum = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    detail = cv2.resize(rng.random((height // 2, width // 2)).astype(np.float32), (width, height))
    radiance = (2.0 ** (12 * lum - 10))[..., None] * (0.8 + 0.2 * detail[..., None]) * np.float32([1.0, 0.9, 0.8])
    exposures = [1.0, 8.0, 64.0]
    frames = [np.round(np.clip(radiance * t, 0, 1) ** (1 / 2.2) * 255).astype(np.float32) / 255 for t in exposures]
    return frames, exposures


def child(method: str, size: str, device: str) -> dict:
    import cv2

    width, height = map(int, size.split("x"))
    frames, exposures = bracket(width, height)
    t0 = time.perf_counter()
    if method == "opencv-debevec":
        u8 = [np.round(f * 255).astype(np.uint8) for f in frames]
        times = np.float32(exposures)
        response = cv2.createCalibrateDebevec().process(u8, times)
        cv2.createMergeDebevec().process(u8, times, response)
    elif method == "hdrcli-debevec":
        from hdrcli.merge import calibrate_response, merge_debevec

        u8 = [np.round(f * 255).astype(np.uint8) for f in frames]
        merge_debevec(frames, exposures, calibrate_response(u8, exposures))
    else:
        from hdrcli.runtime import make_runner

        backend, runtime = method.split(":")
        runner = make_runner(backend, runtime, device=device)
        t0 = time.perf_counter()  # model loading excluded; it is paid once per process
        runner.fuse(frames, exposures)
    seconds = time.perf_counter() - t0
    return {"method": method, "size": size, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1500x1000,6000x4000")
    parser.add_argument("--backends", default="lffnet,dfgnet,tunet")
    parser.add_argument("--runtimes", default="torch,onnx")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "SIZE"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.device)))
        return
    from hdrcli.runtime.export import onnx_path
    from hdrcli.runtime.runner import available_sizes

    methods = ["opencv-debevec", "hdrcli-debevec"]
    for name in filter(None, args.backends.split(",")):
        sizes = available_sizes(name)
        if not sizes:
            continue
        for runtime in args.runtimes.split(","):
            from hdrcli.runtime.runner import DEFAULT_TILE

            if runtime == "onnx" and not onnx_path(name, sizes[0], DEFAULT_TILE[name]).is_file():
                continue
            methods.append(f"{name}:{runtime}")
    results: dict[tuple[str, str], dict] = {}
    for size in args.sizes.split(","):
        for method in methods:
            out = subprocess.run([sys.executable, __file__, "--child", method, size, "--device", args.device],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{method} {size}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            results[(method, size)] = json.loads(out.stdout.strip().splitlines()[-1])
    sizes = args.sizes.split(",")
    print("| method | " + " | ".join(f"{s}: s (x OpenCV) / peak RSS MB" for s in sizes) + (" | exponent |" if len(sizes) == 2 else " |"))
    print("|---|" + "---|" * len(sizes) + ("---|" if len(sizes) == 2 else ""))
    for method in methods:
        cells = []
        for size in sizes:
            r, ref = results.get((method, size)), results.get(("opencv-debevec", size))
            cells.append("-" if r is None else f"{r['seconds']:.2f} (x{r['seconds'] / ref['seconds']:.1f}) / {r['peak_rss_mb']:.0f}" if ref else f"{r['seconds']:.2f}")
        row = f"| {method} | " + " | ".join(cells)
        if len(sizes) == 2 and all((method, s) in results for s in sizes):
            (w1, h1), (w2, h2) = (map(int, s.split("x")) for s in sizes)
            k = math.log(results[(method, sizes[1])]["seconds"] / results[(method, sizes[0])]["seconds"]) / math.log(w2 * h2 / (w1 * h1))
            row += f" | {k:.2f}"
        print(row + " |")


if __name__ == "__main__":
    main()
