"""Runtime parity and tile dependence of a learned backend on a real bracket.

    python bench/parity.py [--backend lffnet] [--bracket ../shared/data/brackets/frobisher] [--crop 1536]

Fuses the bracket (no alignment) with torch as shipped (default tiles; above 1 MP the
synthesis and the ghost gate at reduced resolution, see
hdrcli.runtime.runner.SYNTHESIS_ABOVE), the same
in one whole-image pass, torch with the synthesis at full resolution in tiles (what the ONNX
tile export computes) and ONNX Runtime (as shipped: above 1 MP the synthesis export at
reduced resolution; and with the tile export everywhere). Prints the largest and mean
difference in mu-law space (outputs divided by the torch result's maximum) of tiled against
whole-image, of ONNX Runtime against torch as shipped and at full resolution, and of the
reduced synthesis against the full one.
``--crop N``: a centred N x N crop of every frame (a 12 MP bracket in one whole-image pass
needs more memory than the tiles exist to avoid), at full resolution.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hdrcli.batch import find_images
from hdrcli.pipeline import fuse_bracket, load_bracket
from hdrcli.runtime.torch_runtime import TorchRunner
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
    side = max(bracket.frames[0].pixels.shape[:2])
    fuse = lambda **kw: fuse_bracket(bracket, args.backend, align="none", device="cpu", **kw).image  # noqa: E731
    torch_tiled = fuse(runtime="torch")
    import hdrcli.runtime.runner as rt

    head_tile, rt.HEAD_TILE = rt.HEAD_TILE, side  # large photos: the merge head's tiles are the ones to compare
    whole = fuse(runner=TorchRunner(args.backend, tile=side))
    rt.HEAD_TILE = head_tile
    full_synthesis = fuse(runner=TorchRunner(args.backend, reduced_synthesis=False))
    onnx_shipped = fuse(runtime="onnx")  # above 1 MP: the synthesis export, at reduced resolution
    from hdrcli.runtime.onnx_runtime import OnnxRunner

    onnx_tiled = fuse(runner=OnnxRunner(args.backend, device="cpu", reduced_synthesis=False))  # tile export everywhere
    top = float(torch_tiled.max())
    tone = lambda im: mu_law(np.clip(im / top, 0.0, 1.0))  # noqa: E731
    h, w = torch_tiled.shape[:2]
    print(f"{args.backend} on {args.bracket.name} ({w}x{h}), mu-law space:")
    for label, a, b in (("default tiles vs whole image", torch_tiled, whole),
                        ("ONNX Runtime vs torch, as shipped", onnx_shipped, torch_tiled),
                        ("ONNX Runtime vs torch (full-resolution synthesis)", onnx_tiled, full_synthesis),
                        ("shipped vs full-resolution synthesis", torch_tiled, full_synthesis)):
        diff = np.abs(tone(a) - tone(b))
        print(f"  {label}: max {diff.max():.2e}, mean {diff.mean():.2e}")


if __name__ == "__main__":
    main()
