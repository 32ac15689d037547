"""Real photos with a real reference: Debevec's Stanford Memorial Church.

../shared/data/brackets/memorial holds 16 exposures (1/1024 s ... 32 s, one stop apart)
and memorial.hdr, the radiance map merged from all of them. Here every backend fuses
3-frame sub-brackets 2 stops apart (short, reference, long), as a photographer would
shoot them, and is scored against the 16-frame radiance map, which none of them saw.
The sub-brackets' references run from about auto-exposure (memorial02) to 5 EV below
it (memorial07), so the table also shows how each backend copes with a dark reference.

The reference's scale is arbitrary, so each result is scaled by its median ratio to the
reference over pixels well exposed in the reference frame (an oracle scale for every
method). Scores use the pixels the short frame does not clip (radiance beyond that is
unknown to a 3-frame bracket), normalised by their maximum, then tone-mapped with mu-law:
PSNR-mu in dB, averaged over the sub-brackets. Static scene, tripod: the classical
merge's home ground.

    python bench/memorial.py [--backends debevec,lffnet,dfgnet,tunet] [--grid]
"""

from __future__ import annotations

import argparse

import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.hdr import read_hdr
from hdrcli.metrics import psnr
from hdrcli.pipeline import fuse_bracket, load_bracket
from hdrcli.tonemap import mu_law
from hdrcli.training.camera import SHARED_DATA

FOLDER = SHARED_DATA / "brackets" / "memorial"
CENTRES = (2, 3, 4, 5, 6, 7)  # reference frames memorial02..07 (8 s ... 1/4 s)


def exposure_offset_ev(reference: np.ndarray) -> float:
    """The reference frame's exposure relative to auto-exposure (log-average luminance 0.18), in EV."""
    luminance = (np.clip(reference, 0, 1) ** 2.2) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return float(np.log2(np.exp(np.mean(np.log(luminance + 1e-6))) / 0.18))


def score(result: np.ndarray, truth: np.ndarray, reference: np.ndarray, short: np.ndarray) -> float:
    well = (reference.mean(-1) > 0.1) & (reference.mean(-1) < 0.9)
    lum_r, lum_t = result.mean(-1), truth.mean(-1)
    ok = well & (lum_r > 0) & (lum_t > 0)
    aligned = result * np.float32(np.median(lum_t[ok] / lum_r[ok]))
    valid = short.max(-1) < 0.98
    top = float(truth[valid].max())
    return psnr(mu_law(np.clip(aligned[valid] / top, 0, 1)), mu_law(np.clip(truth[valid] / top, 0, 1)))


GRID_SIZES = (2, 3, 5, 7, 9)
GRID_SPACINGS = (1, 2, 3)


def grid(backends: list[str], truth: np.ndarray, seconds: dict[str, float], starts: int = 3) -> None:
    """Sub-brackets of N frames S stops apart (N in GRID_SIZES, S in GRID_SPACINGS), ``starts``
    positions each along the 16 exposures (reference: the middle exposure), and all 16 frames."""
    cells: dict[tuple[str, str], float] = {}
    columns = []
    for n in GRID_SIZES:
        for spacing in GRID_SPACINGS:
            span = (n - 1) * spacing
            if span > 15:  # 16 exposures one stop apart hold no such bracket
                continue
            columns.append(f"{n}x{spacing}EV")
            first = np.unique(np.linspace(0, 15 - span, starts).round().astype(int))
            for backend in backends:
                values = []
                for start in first:
                    names = [f"memorial{start + k * spacing:02d}.png" for k in range(n)]
                    bracket = load_bracket([FOLDER / m for m in names], exposures=[seconds[m] for m in names])
                    frames = [f.pixels for f in bracket.frames]
                    try:
                        result = fuse_bracket(bracket, backend, align="none", device="cpu").image
                    except HdrError:  # a bracket the backend cannot take (learned: 2 frames)
                        values.append(float("nan"))
                        continue
                    values.append(score(result, truth, frames[bracket.reference], frames[0]))
                cells[(backend, columns[-1])] = float(np.mean(values))
    columns.append("16x1EV")
    names = [f"memorial{i:02d}.png" for i in range(16)]
    bracket = load_bracket([FOLDER / m for m in names], exposures=[seconds[m] for m in names])
    frames = [f.pixels for f in bracket.frames]
    for backend in backends:
        result = fuse_bracket(bracket, backend, align="none", device="cpu").image
        cells[(backend, "16x1EV")] = score(result, truth, frames[bracket.reference], frames[0])
    print(f"memorial sub-brackets (frames x spacing, mean over up to {starts} positions), PSNR-mu against memorial.hdr")
    print("| backend | " + " | ".join(columns) + " | mean |")
    print("|---|" + "---|" * (len(columns) + 1))
    for backend in backends:
        values = [cells[(backend, c)] for c in columns]
        shown = " | ".join("n/a" if np.isnan(v) else f"{v:.2f}" for v in values)
        print(f"| {backend} | {shown} | {np.nanmean(values):.2f} (n/a left out) |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="debevec,lffnet,dfgnet,tunet")
    parser.add_argument("--grid", action="store_true", help="N-frame sub-brackets at 1-3 EV spacing (issue 12's table)")
    args = parser.parse_args()
    truth = read_hdr(FOLDER / "memorial.hdr")
    seconds = {line.split()[0]: 1.0 / float(line.split()[1]) for line in (FOLDER / "memorial.txt").read_text().split("\n") if line.strip()}
    if args.grid:
        grid(args.backends.split(","), truth, seconds)
        return
    rows, offsets = {}, []
    for centre in CENTRES:
        names = [f"memorial{i:02d}.png" for i in (centre + 2, centre, centre - 2)]  # short, reference, long
        bracket = load_bracket([FOLDER / n for n in names], exposures=[seconds[n] for n in names])
        frames = [f.pixels for f in bracket.frames]
        offsets.append(exposure_offset_ev(frames[1]))
        for backend in args.backends.split(","):
            result = fuse_bracket(bracket, backend, align="none", device="cpu").image  # tripod
            rows.setdefault(backend, []).append(score(result, truth, frames[1], frames[0]))
    print(f"memorial, {len(CENTRES)} three-frame sub-brackets (2 stops apart), PSNR-mu against the 16-frame radiance map")
    print("| backend | " + " | ".join(f"ref {c:02d} ({ev:+.1f} EV)" for c, ev in zip(CENTRES, offsets)) + " | mean |")
    print("|---|" + "---|" * (len(CENTRES) + 1))
    for backend, values in rows.items():
        print(f"| {backend} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {np.mean(values):.2f} |")


if __name__ == "__main__":
    main()
