"""Do the preview tone maps look right? Every operator against the reference frame and Mertens.

For each real bracket in ../shared/data/brackets (frobisher, memorial with memorial.txt,
iphone_handheld, samsung_dynamic/118 static pair at -e 3,0) the bracket is merged with
Debevec (default alignment) and fused with Mertens; every preview operator tone maps the
merge, and Debevec's own memorial.hdr too (so the merge's colour and the operator's are told
apart). Statistics of each 8-bit sRGB image (CIELAB from OpenCV, D65):

* L: mean L* (brightness), Lsd: its standard deviation (global contrast);
* a, b: mean a* (green < 0 < magenta) and b* (blue < 0 < yellow): a cast shows here;
* C: mean chroma sqrt(a*^2 + b*^2); M: colourfulness (Hasler & Suesstrunk 2003);
* clip: % of pixels with a channel at 254-255; black: % with every channel <= 2;
* s: tone-mapping time in seconds (noisy on a shared machine: compare within one run).

    python bench/previews.py [--out FOLDER] [NAME ...]     (NAME: frobisher, memorial, iphone, samsung)

With --out, a side-by-side PNG per bracket (reference | Mertens | operators...) is written
there for looking at.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from hdrcli.io.hdr import read_hdr
from hdrcli.pipeline import fuse_bracket, load_bracket
from hdrcli.tonemap import TONEMAPS, to_uint8, tonemap
from hdrcli.training.camera import SHARED_DATA

BRACKETS = SHARED_DATA / "brackets"
OPERATORS = [m for m in TONEMAPS if m != "mulaw"]  # mu-law is the papers' display, not a preview


def cases() -> dict[str, dict]:
    memorial = BRACKETS / "memorial"
    samsung = BRACKETS / "samsung_dynamic" / "118"
    return {
        "frobisher": {"frames": sorted((BRACKETS / "frobisher").glob("*.jpg"))},
        "memorial": {"frames": sorted(memorial.glob("memorial*.png")), "exposure_file": memorial / "memorial.txt",
                     "radiance_map": memorial / "memorial.hdr"},
        "iphone": {"frames": sorted((BRACKETS / "iphone_handheld").glob("*.jpeg"))},
        # input_1 is the long exposure; their ratio estimated from brightness is 2^3.2
        "samsung": {"frames": [samsung / "input_1.png", samsung / "input_2.png"], "ev": [3.0, 0.0]},
    }


def stats(rgb8: np.ndarray) -> dict[str, float]:
    lab = cv2.cvtColor(rgb8.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    a, b = lab[..., 1], lab[..., 2]
    r, g, bl = (rgb8[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - bl
    return {
        "L": float(lab[..., 0].mean()), "Lsd": float(lab[..., 0].std()), "a": float(a.mean()), "b": float(b.mean()),
        "C": float(np.hypot(a, b).mean()),
        "M": float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())),
        "clip": float((rgb8.max(-1) >= 254).mean() * 100), "black": float((rgb8.max(-1) <= 2).mean() * 100),
    }


def row(label: str, rgb8: np.ndarray, seconds: float | None = None) -> str:
    s = stats(rgb8)
    cells = " | ".join(f"{s[k]:.1f}" for k in ("L", "Lsd", "a", "b", "C", "M", "clip", "black"))
    return f"| {label} | {cells} | {'' if seconds is None else f'{seconds:.1f}'} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="brackets (default: all)")
    parser.add_argument("--out", type=Path, help="folder for side-by-side PNGs")
    args = parser.parse_args()
    chosen = cases()
    names = args.names or list(chosen)
    print("| image | L* | L* sd | a* | b* | C* | M | clip % | black % | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        case = chosen[name]
        if not all(p.exists() for p in case["frames"]):
            print(f"| {name}: not in ../shared/data |")
            continue
        bracket = load_bracket(case["frames"], exposure_file=case.get("exposure_file"), ev=case.get("ev"))
        hdr = fuse_bracket(bracket, "debevec").image
        mertens = to_uint8(fuse_bracket(bracket, "mertens").image)
        reference = to_uint8(bracket.frames[bracket.reference].pixels)
        tiles = [reference, mertens]
        print(row(f"{name}: reference frame", reference))
        print(row(f"{name}: mertens", mertens))
        sources = [("merge", hdr)]
        if "radiance_map" in case:
            sources.append(("memorial.hdr", read_hdr(case["radiance_map"])))
        for source, image in sources:
            for method in OPERATORS:
                t0 = time.perf_counter()
                display = to_uint8(tonemap(image, method))
                seconds = time.perf_counter() - t0
                print(row(f"{name}: {source} {method}", display, seconds))
                tiles.append(display)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            h = 300
            strip = np.concatenate([cv2.resize(t, (round(t.shape[1] * h / t.shape[0]), h), interpolation=cv2.INTER_AREA)
                                    for t in tiles], axis=1)
            cv2.imwrite(str(args.out / f"previews_{name}.png"), strip[..., ::-1])


if __name__ == "__main__":
    main()
