"""EXR writing: time, CPU and size per compression for a 12 MP half-float merge.

Writes the same image (hdrcli's debevec merge of ../shared/data/brackets/iphone_handheld,
or a smooth synthetic image when that is absent) with each lossless compression the
`openexr` package offers, on 1 and 2 writer threads, three times each, and prints the
fastest wall time, the CPU time and the file size. hdrcli writes PIZ (see hdrcli.io.hdr).

    python bench/exr_write.py
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import OpenEXR

from hdrcli.training.camera import SHARED_DATA


def image() -> np.ndarray:
    folder = SHARED_DATA / "brackets" / "iphone_handheld"
    if folder.is_dir():
        from hdrcli.pipeline import fuse_bracket, load_bracket

        return fuse_bracket(load_bracket(sorted(folder.glob("*.jpeg")))).image
    import cv2

    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.random((378, 504)).astype(np.float32), (0, 0), 5)
    return np.repeat(cv2.resize(2.0 ** (16 * small - 8), (4032, 3024))[..., None], 3, axis=2)


def main() -> None:
    half = np.ascontiguousarray(np.minimum(image(), 65504.0).astype(np.float16))
    print(f"{half.shape[1]}x{half.shape[0]} half RGB")
    print("| compression | threads | wall s | CPU s | MB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.exr")
        for name in ("ZIP", "ZIPS", "PIZ", "ZSTD", "RLE", "NO"):
            compression = getattr(OpenEXR, f"{name}_COMPRESSION", None)
            if compression is None:
                continue
            for threads in (1, 2):
                OpenEXR.set_global_thread_count(threads if threads > 1 else 0)
                walls, cpus = [], []
                for _ in range(3):
                    t0, c0 = time.perf_counter(), time.process_time()
                    with OpenEXR.File({"compression": compression, "type": OpenEXR.scanlineimage}, {"RGB": half}) as f:
                        f.write(path)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                print(f"| {name} | {threads} | {min(walls):.2f} | {min(cpus):.2f} | {os.path.getsize(path) / 1e6:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
