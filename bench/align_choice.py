"""Which alignment should `hdr fuse` use by default? Residual misalignment per method.

For each bracket in ../shared/data/brackets (or the folders given), each non-reference
frame is aligned to the reference with every method; both are brought to the darker
exposure, and the misalignment is 1 - normalised cross-correlation of their gradient
magnitudes on pixels clipped in neither frame (5% border excluded): edges, not tones, so
a camera curve that differs from sRGB does not count as misalignment. Lower is better;
`none` is the unaligned baseline. Time is the wall time of align_bracket for the whole bracket.

    python bench/align_choice.py [FOLDER ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from hdrcli.align import ALIGN_METHODS, align_bracket, exposure_matched_gray
from hdrcli.pipeline import load_bracket
from hdrcli.training.camera import SHARED_DATA

SHARED = SHARED_DATA / "brackets"


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt(gx * gx + gy * gy)


def residual(bracket, aligned) -> float:
    ref = bracket.reference
    errors = []
    for i, pixels in enumerate(aligned):
        if i == ref:
            continue
        gain = bracket.exposures[ref] / bracket.exposures[i]
        linear = bracket.frames[i].linear
        g_ref = exposure_matched_gray(aligned[ref], linear, min(1.0, 1.0 / gain))
        g_mov = exposure_matched_gray(pixels, linear, min(1.0, gain))
        h, w = g_ref.shape
        by, bx = h // 20, w // 20
        g_ref, g_mov = g_ref[by:-by, bx:-bx], g_mov[by:-by, bx:-bx]
        valid = (g_ref > 0.02) & (g_ref < 0.97) & (g_mov > 0.02) & (g_mov < 0.97)
        a, b = gradient_magnitude(g_ref)[valid], gradient_magnitude(g_mov)[valid]
        a, b = a - a.mean(), b - b.mean()
        errors.append(1.0 - float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    return float(np.mean(errors))


def main(folders: list[str]) -> None:
    if not folders:
        folders = [str(SHARED / "frobisher"), str(SHARED / "iphone_handheld")]
    print(f"{'bracket':<18} {'method':<6} {'residual':>9} {'time s':>7}")
    for folder in folders:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif"))
        bracket = load_bracket(paths)
        for method in ALIGN_METHODS:
            t0 = time.perf_counter()
            aligned = align_bracket(bracket, method)
            elapsed = time.perf_counter() - t0
            print(f"{Path(folder).name:<18} {method:<6} {residual(bracket, aligned):9.4f} {elapsed:7.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
