"""Accuracy of the classical backends against ground truth, on the bundled example.

examples/bracket is rendered by scripts/make_examples.py from a known radiance map, so
the merged HDR can be compared with the truth. Radiance is only known up to a global scale
(the camera's gain), so each result is scaled by the median ratio to the truth first.
Reported per backend, alignment and guard setting:

* err (stops): median |log2(result / truth)| over all pixels;
* p95: its 95th percentile;
* clipped (stops): median error on pixels clipped in every frame (sun, lamp core): the
  guard's target. Their truth is far above any frame's range, so lower is better but
  never 0;
* time: align + merge seconds.

    python bench/classical_quality.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from make_examples import room_scene  # noqa: E402

from hdrcli.pipeline import fuse_bracket, load_bracket  # noqa: E402


def main() -> None:
    truth = room_scene(7)
    bracket = load_bracket(sorted((ROOT / "examples" / "bracket").glob("*.jpg")))
    shortest = bracket.frames[0].pixels
    clipped = shortest.min(axis=-1) > 0.98
    print(f"{'backend':<10} {'align':<5} {'guard':<5} {'err':>6} {'p95':>6} {'clipped':>8} {'time s':>7}")
    for backend in ("debevec", "robertson"):
        for align in ("none", "mtb", "ecc"):
            for guard in (False, True):
                t0 = time.perf_counter()
                result = fuse_bracket(bracket, backend, align, guard=guard)
                elapsed = time.perf_counter() - t0
                lum, true_lum = result.image.mean(-1), truth.mean(-1)
                ok = lum > 0
                scale = np.median(true_lum[ok] / lum[ok])
                err = np.abs(np.log2(np.maximum(lum * scale, 1e-9) / true_lum))
                print(
                    f"{backend:<10} {align:<5} {str(guard):<5} {np.median(err):6.3f} {np.percentile(err, 95):6.3f} "
                    f"{np.median(err[clipped]):8.2f} {elapsed:7.2f}"
                )


if __name__ == "__main__":
    main()
