"""Runtime parity and tile dependence of a learned backend on a real bracket.

    python bench/parity.py [--backend lffnet] [--bracket ../shared/data/brackets/frobisher] [--crop 1536]

Fuses the bracket (no alignment) three ways: torch with the default tiles, ONNX Runtime
with the default tiles, and torch in one whole-image pass (tile 4096). Prints the largest
difference in mu-law space (outputs divided by the torch result's maximum) of ONNX
Runtime against torch, and the largest and mean difference of tiled against whole-image.
``--crop N``: a centred N x N crop of every frame (a 12 MP bracket in one whole-image pass
needs more memory than the tiles exist to avoid), at full resolution.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hdrcli.batch import find_images
from hdrcli.pipeline import fuse_bracket, load_bracket
from hdrcli.tonemap import mu_law
from hdrcli.training.camera import SHARED_DATA

DEFAULT_BRACKET = SHARED_DATA / "brackets" / "frobisher"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="lffnet")
    parser.add_argument("--bracket", type=Path, default=DEFAULT_BRACKET)
    parser.add_argument("--crop", type=int, default=None)
    args = parser.parse_args()
    bracket = load_bracket(find_images(args.bracket))
    if args.crop:
        h, w = bracket.frames[0].pixels.shape[:2]
        y, x = max(0, (h - args.crop) // 2), max(0, (w - args.crop) // 2)
        for frame in bracket.frames:
            frame.pixels = np.ascontiguousarray(frame.pixels[y : y + args.crop, x : x + args.crop])
    torch_tiled = fuse_bracket(bracket, args.backend, align="none", device="cpu").image
    onnx_tiled = fuse_bracket(bracket, args.backend, align="none", runtime="onnx", device="cpu").image
    whole = fuse_bracket(bracket, args.backend, align="none", device="cpu", tile=max(torch_tiled.shape[:2])).image
    top = float(torch_tiled.max())
    tone = lambda im: mu_law(np.clip(im / top, 0.0, 1.0))  # noqa: E731
    runtime_diff = np.abs(tone(torch_tiled) - tone(onnx_tiled))
    tile_diff = np.abs(tone(torch_tiled) - tone(whole))
    h, w = torch_tiled.shape[:2]
    print(f"{args.backend} on {args.bracket.name} ({w}x{h}), mu-law space:")
    print(f"  ONNX Runtime vs torch: max {runtime_diff.max():.2e}")
    print(f"  default tiles vs whole image: max {tile_diff.max():.3f}, mean {tile_diff.mean():.4f}")


if __name__ == "__main__":
    main()
