"""Write each weight file's standing against the quality targets into weights/manifest.json.

    python bench/quality.py --json > bench/results/quality.json
    python scripts/annotate_manifest.py bench/results/quality.json

The targets (issue 4): every learned multi-exposure backend beats OpenCV Debevec + MTB by
at least 5 dB PSNR-mu on held-out scenes with motion and does not lose to it on static
scenes; every single-image backend beats inverse-gamma linearisation in PSNR-mu after
scale alignment. The sentences are generated from the measured JSON, never typed by hand,
so the manifest cannot drift from the benchmark.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hdrcli.weights import edit_manifest
from hdrcli.weights import manifest_path as default_manifest

MOTION_MARGIN_DB = 5.0


def multi_exposure_verdict(scores: dict, baseline: dict) -> str:
    gain_motion = scores["psnr_mu_motion"] - baseline["psnr_mu_motion"]
    gain_static = scores["psnr_mu_static"] - baseline["psnr_mu_static"]
    motion_ok, static_ok = gain_motion >= MOTION_MARGIN_DB, gain_static >= 0
    verdict = "meets both targets" if motion_ok and static_ok else "falls short"
    return (f"{verdict}: {gain_motion:+.2f} dB PSNR-mu over OpenCV Debevec+MTB with motion (target +{MOTION_MARGIN_DB:.0f}: "
            f"{'met' if motion_ok else 'missed'}), {gain_static:+.2f} dB on static scenes (target >= 0: "
            f"{'met' if static_ok else 'missed'})")


def single_image_verdict(scores: dict, baseline: dict) -> str:
    gain = scores["psnr_mu"] - baseline["psnr_mu"]
    return (f"{'meets' if gain > 0 else 'falls short of'} the single-image target: {gain:+.2f} dB PSNR-mu over "
            "inverse-gamma linearisation (scale-aligned)")


BASELINES = ("reference", "opencv-debevec-mtb", "self-calibrated-debevec")  # bench rows that are not backends


def annotate(results: dict, manifest_path: Path, source: str) -> dict[str, str]:
    verdicts = {}
    multi, single = results["multi_exposure"], results["single_image"]
    for name, scores in multi.items():
        if name not in BASELINES:
            verdicts[name] = multi_exposure_verdict(scores, multi["opencv-debevec-mtb"])
    for name, scores in single.items():
        if name != "inverse-gamma":
            verdicts[name] = single_image_verdict(scores, single["inverse-gamma"])

    def write_verdicts(weights: dict[str, dict]) -> None:
        for entry in weights.values():
            if entry.get("format", "pt") == "pt" and entry["backend"] in verdicts:
                entry["quality_vs_targets"] = f"{verdicts[entry['backend']]} ({source})"

    edit_manifest(write_verdicts, manifest_path)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="JSON written by `python bench/quality.py --json`")
    parser.add_argument("--manifest", type=Path, default=default_manifest())
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    scenes = results["multi_exposure"]["opencv-debevec-mtb"]["scenes"]
    source = f"python bench/quality.py, {scenes} held-out brackets"
    for name, verdict in annotate(results, args.manifest, source).items():
        print(f"{name}: {verdict}")


if __name__ == "__main__":
    main()
