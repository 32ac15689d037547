"""Alignment on a tripod bracket: the 16-frame Memorial, aligned or not (issue 12 item 8).

All 16 exposures of ../shared/data/brackets/memorial (tripod, 1/1024 s ... 32 s) are
merged with `debevec` under each --align method and scored against memorial.hdr with
bench/memorial.py's PSNR-mu (oracle scale, pixels the shortest frame does not clip).
Time is the alignment step alone (FuseResult.timings). A tripod bracket should cost
little to align and score no worse than `--align none`.

    python bench/memorial_align.py [--methods none,mtb,ecc]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memorial import FOLDER, score  # noqa: E402

from hdrcli.io.hdr import read_hdr  # noqa: E402
from hdrcli.pipeline import fuse_bracket, load_bracket  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="none,mtb,ecc")
    args = parser.parse_args()
    truth = read_hdr(FOLDER / "memorial.hdr")
    paths = sorted(FOLDER.glob("memorial*.png"))
    bracket = load_bracket(paths, exposure_file=FOLDER / "memorial.txt")
    reference = bracket.frames[bracket.reference].pixels
    print(f"memorial, all {len(paths)} frames, debevec; PSNR-mu against memorial.hdr")
    print("| align | PSNR-mu dB | align s | total s |")
    print("|---|---|---|---|")
    for method in args.methods.split(","):
        result = fuse_bracket(bracket, "debevec", align=method)
        t = result.timings
        print(f"| {method} | {score(result.image, truth, reference, bracket.frames[0].pixels):.2f} | "
              f"{t['align_s']:.2f} | {sum(v for k, v in t.items() if k.endswith('_s')):.2f} |", flush=True)


if __name__ == "__main__":
    main()
