"""Single-image expansion on real photos, against real HDR references.

For each real bracket in ../shared/data/brackets, one frame is the single input and the
bracket's own merge is the reference the single-image methods never saw:

* memorial: memorial03 (4 s, mean 0.34, 5% clipped: near auto-exposure; the middle
  frames of the 16, memorial07/08, are 3-4 EV darker than a normal photo) against
  Debevec's memorial.hdr;
* frobisher: IMG_2601 (1 s, the middle of 1/8, 1, 8 s) against hdrcli's ``debevec``
  merge of the three frames;
* samsung_118: input_1 (the brighter of the static pair) against hdrcli's ``debevec``
  merge of the pair (no EXIF: exposures estimated from brightness);
* iphone: IMG_3873 (1/15 s, the middle frame, hand-held night street) against hdrcli's
  ``debevec`` merge of the three frames (ECC alignment).

Inputs and references larger than ``--max-side`` are area-downscaled (the same way) first.
Each result is scaled to the reference by the median ratio over the input's
well-exposed pixels (single-image HDR is known only up to scale: an oracle scale, the
same for every method), both are divided by the reference's maximum over valid pixels,
and PSNR-mu (mu = 5000) and PSNR-l are computed on:

* all: every valid pixel;
* clipped: pixels whose brightest input channel is >= 250/255 (what the photo lost);
* well-exposed: brightest channel in [0.05, 0.9] (what the photo recorded).

Valid pixels: those the reference bracket's shortest frame does not clip (beyond that the
reference itself only guesses). Methods: inverse gamma (x^2.2); the highlight-only
baseline (sRGB linearisation plus smooth extrapolation of the log radiance from the
clip border, :func:`hdrcli.merge.expand.highlight_extrapolation`, no learning, no
denoising); each backend's network output alone ("<name> network"); and the shipped
``hdr expand`` composition ("<name>"), which keeps the linearised photo where it is well
exposed. The well-exposed pixels of the highlight-only baseline and the shipped
backends are the same linearised photo by construction. "highlight-only +
reconstruction" adds the shipped composition's estimate of partly clipped channels from
their neighbours' colour (:func:`hdrcli.merge.expand.reconstruct_clipped`) to the
baseline, to show what that classical step gives on its own.

    python bench/expand_real.py [--backends twostage,stack] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from hdrcli.io.frames import read_frame
from hdrcli.io.hdr import read_hdr
from hdrcli.merge.expand import compose
from hdrcli.metrics import psnr
from hdrcli.pipeline import fuse_bracket, load_bracket
from hdrcli.tonemap import mu_law
from hdrcli.training.camera import SHARED_DATA, inverse_gamma

BRACKETS = SHARED_DATA / "brackets"
CLIPPED, WELL = 250 / 255, (0.05, 0.9)


def _downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    f = max_side / max(h, w)
    if f >= 1:
        return image
    return cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def scenes(max_side: int):
    """Yield (name, input photo (H, W, 3) in [0, 1], reference radiance, valid mask)."""
    folder = BRACKETS / "memorial"
    truth = read_hdr(folder / "memorial.hdr")
    shortest = read_frame(folder / "memorial15.png").pixels
    yield ("memorial", _downscale(read_frame(folder / "memorial03.png").pixels, max_side),
           _downscale(truth, max_side), _downscale(shortest, max_side).max(-1) < 0.98)
    for name, files, middle, kwargs in (
        ("frobisher", sorted((BRACKETS / "frobisher").glob("*.jpg")), "IMG_2601.jpg", {}),
        ("samsung_118", [BRACKETS / "samsung_dynamic/118/input_1.png", BRACKETS / "samsung_dynamic/118/input_2.png"],
         "input_1.png", {"require_exposures": False}),
        ("iphone", sorted((BRACKETS / "iphone_handheld").glob("*.jpeg")), "IMG_3873.jpeg", {}),
    ):
        bracket = load_bracket([str(f) for f in files], **kwargs)
        merged = fuse_bracket(bracket, "debevec", align="ecc" if name == "iphone" else "none").image
        short = bracket.frames[0].pixels
        photo = next(f.pixels for f in bracket.frames if f.name == middle)
        if name == "iphone":  # the merge is in the reference frame's geometry; the middle frame is the reference
            assert bracket.frames[bracket.reference].name == middle
        yield name, _downscale(photo, max_side), _downscale(merged, max_side), _downscale(short, max_side).max(-1) < 0.98


def cached_scenes(max_side: int, cache: str | None):
    """:func:`scenes`, kept as .npz files in ``cache`` (the iPhone merge takes a while)."""
    from pathlib import Path

    if cache is None:
        yield from scenes(max_side)
        return
    folder = Path(cache)
    names = ("memorial", "frobisher", "samsung_118", "iphone")
    paths = [folder / f"{n}_{max_side}.npz" for n in names]
    if not all(p.is_file() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        for name, photo, truth, valid in scenes(max_side):
            np.savez(folder / f"{name}_{max_side}.npz", photo=photo, truth=truth, valid=valid)
    for name, path in zip(names, paths):
        data = np.load(path)
        yield name, data["photo"], data["truth"], data["valid"]


def scores(result: np.ndarray, truth: np.ndarray, photo: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    top_in = photo.max(-1)
    well = (top_in >= WELL[0]) & (top_in <= WELL[1]) & valid
    lum_r, lum_t = result.mean(-1), truth.mean(-1)
    ok = well & (lum_r > 0) & (lum_t > 0)
    aligned = result * np.float32(np.median(lum_t[ok] / lum_r[ok]))
    top = float(truth[valid].max())
    a, t = np.clip(aligned / top, 0, 1), np.clip(truth / top, 0, 1)
    ma, mt = mu_law(a), mu_law(t)
    out = {"psnr_mu": psnr(ma[valid], mt[valid]), "psnr_l": psnr(a[valid], t[valid])}
    for tag, mask in (("clipped", (top_in >= CLIPPED) & valid), ("well", well)):
        out[f"psnr_mu_{tag}"] = psnr(ma[mask], mt[mask]) if mask.any() else float("nan")
        out[f"psnr_l_{tag}"] = psnr(a[mask], t[mask]) if mask.any() else float("nan")
    out["clipped_pct"] = float(100 * ((top_in >= CLIPPED) & valid).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="twostage,stack")
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cache", help="folder to keep the scenes (inputs, references) in between runs")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from hdrcli.runtime import TorchRunner

    runners = {name: TorchRunner(name) for name in args.backends.split(",") if name}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for scene, photo, truth, valid in cached_scenes(args.max_side, args.cache):
        rows = table.setdefault(scene, {})
        rows["inverse gamma"] = scores(inverse_gamma(photo), truth, photo, valid)
        rows["highlight-only"] = scores(compose(photo, None, denoise_shadows=False, reconstruct=False).hdr,
                                        truth, photo, valid)
        rows["highlight-only + reconstruction"] = scores(compose(photo, None, denoise_shadows=False).hdr,
                                                         truth, photo, valid)
        for name, runner in runners.items():
            t0 = time.perf_counter()
            prediction = runner.predict(photo)
            rows[f"{name} network"] = scores(prediction, truth, photo, valid)
            rows[name] = scores(compose(photo, prediction).hdr, truth, photo, valid)
            rows[name]["time_s"] = time.perf_counter() - t0
        rows["_size"] = {"height": photo.shape[0], "width": photo.shape[1]}
    if args.json:
        print(json.dumps(table, indent=2))
        return
    keys = ("psnr_mu", "psnr_l", "psnr_mu_clipped", "psnr_mu_well", "psnr_l_clipped", "psnr_l_well")
    for scene, rows in table.items():
        size = rows.pop("_size")
        clipped = next(iter(rows.values()))["clipped_pct"]
        print(f"\n{scene} ({size['width']}x{size['height']}, {clipped:.1f}% of valid pixels clipped)")
        print("| method | PSNR-mu | PSNR-l | PSNR-mu clipped | PSNR-mu well-exposed | PSNR-l clipped | PSNR-l well-exposed |")
        print("|---|---|---|---|---|---|---|")
        for method, r in rows.items():
            print(f"| {method} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |")
    print("\nmean over scenes")
    print("| method | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    methods = list(next(iter(table.values())).keys())
    for method in methods:
        means = [np.nanmean([table[s][method][k] for s in table]) for k in keys]
        print(f"| {method} | " + " | ".join(f"{m:.2f}" for m in means) + " |")


if __name__ == "__main__":
    main()
