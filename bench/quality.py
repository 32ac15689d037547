"""Quality of every backend on held-out scenes (README "Quality" table).

    python bench/quality.py [--maps ../shared/data/radiance] [--patch 256] [--per-map 4] [--reference-ev=-1,1]
    python bench/quality.py --frames 2,3,5,7 [--per-map 2]      # N-frame brackets (README "Any bracket")

Multi-exposure: PSNR-mu / PSNR-l / SSIM-mu on brackets simulated from the radiance maps
held out of training (10 maps x per-map crops, half with motion), for the reference
frame alone, OpenCV Debevec + MTB, hdrcli's Debevec merge with the self-calibrated
response (no deghosting), and each learned backend with weights. Single-image:
the learned expansions against inverse-gamma linearisation, scale-aligned. "saturation"
is the median colour saturation relative to the ground truth (1 = faithful). See
hdrcli/evaluation.py for the exact protocol.

``--frames``: brackets of N frames instead (each N its own table, multi-exposure only):
the simulator's N-frame brackets (gaps 0.7-4 stops, even or uneven, span <= 16 stops,
middle reference, half with motion, no phone/ISO/night steps: see
hdrcli.training.camera.validation_brackets), with the issue's targets as a verdict column.
"""

from __future__ import annotations

import argparse
import json

from hdrcli.evaluation import (
    baseline_single,
    held_out_simulator,
    learned_expander,
    learned_fuser,
    opencv_debevec_mtb,
    reference_alone,
    score_multi_exposure,
    self_calibrated_debevec,
    score_single_image,
    validation_brackets,
    validation_singles,
)
from hdrcli.runtime.runner import available_sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maps", default="../shared/data/radiance")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--per-map", type=int, default=4)
    parser.add_argument("--reference-ev", default="-1,1",
                        help="brackets' reference exposure range around auto-exposure, EV (stress test: -3,-2)")
    parser.add_argument("--frames", default=None, help="comma-separated bracket lengths, e.g. 2,3,5,7")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    low, high = (float(v) for v in args.reference_ev.split(","))
    sim = held_out_simulator(args.maps, args.patch, reference_ev=(low, high))
    if args.frames:
        frame_counts(sim, [int(v) for v in args.frames.split(",")], args.per_map, args.json)
        return
    brackets = validation_brackets(sim, per_map=args.per_map)
    methods = {"reference": reference_alone, "opencv-debevec-mtb": opencv_debevec_mtb,
               "self-calibrated-debevec": self_calibrated_debevec}
    for name in ("dfgnet", "lffnet", "tunet"):
        if available_sizes(name):
            methods[name] = learned_fuser(name)
    multi = score_multi_exposure(methods, brackets)
    singles = validation_singles(sim, per_map=max(1, args.per_map // 2))
    single_methods = {"inverse-gamma": baseline_single}
    for name in ("twostage", "stack"):
        if available_sizes(name):
            single_methods[name] = learned_expander(name)
            single_methods[f"{name} (camera's curve)"] = learned_expander(name, camera_curve=True)
    single = score_single_image(single_methods, singles)
    if args.json:
        print(json.dumps({"multi_exposure": multi, "single_image": single}, indent=2))
        return
    print(f"multi-exposure, {len(brackets)} held-out scenes ({args.patch}x{args.patch}), reference {args.reference_ev} EV")
    print("| method | PSNR-mu all | PSNR-mu motion | PSNR-mu static | PSNR-l | SSIM-mu | saturation | s/scene |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in multi.items():
        print(f"| {name} | {r['psnr_mu']:.2f} | {r['psnr_mu_motion']:.2f} | {r['psnr_mu_static']:.2f} | {r['psnr_l']:.2f} "
              f"| {r['ssim_mu']:.4f} | {r['saturation']:.2f} | {r['time_s']:.2f} |")
    print(f"\nsingle-image, {len(singles)} held-out scenes, scale-aligned")
    print("| method | PSNR-mu | PSNR-l | SSIM-mu | s/scene |")
    print("|---|---|---|---|---|")
    for name, r in single.items():
        print(f"| {name} | {r['psnr_mu']:.2f} | {r['psnr_l']:.2f} | {r['ssim_mu']:.4f} | {r['time_s']:.2f} |")


def _learned_methods() -> dict:
    return {name: learned_fuser(name) for name in ("dfgnet", "lffnet", "tunet") if available_sizes(name)}


# Issue targets per bracket length (PSNR-mu, dB): (subset, baseline method, margin).
TARGETS = {2: [("motion", "self-calibrated-debevec", 8.0)],
           3: [("static", "self-calibrated-debevec", 0.0), ("motion", "opencv-debevec-mtb", 12.0)],
           5: [("motion", "self-calibrated-debevec", 10.0)], 7: [("motion", "self-calibrated-debevec", 10.0)]}


def frame_counts(sim, counts: list[int], per_map: int, as_json: bool) -> None:
    results = {}
    for n in counts:
        brackets = validation_brackets(sim, per_map=per_map, frames=n)
        methods = {"reference": reference_alone, "opencv-debevec-mtb": opencv_debevec_mtb,
                   "self-calibrated-debevec": self_calibrated_debevec, **_learned_methods()}
        results[n] = score_multi_exposure(methods, brackets)
    if as_json:
        print(json.dumps({"frames": results}, indent=2))
        return
    for n, multi in results.items():
        scenes = next(iter(multi.values()))["scenes"]
        print(f"\n{n} frames, {scenes} held-out scenes (half with motion)")
        print("| method | PSNR-mu all | PSNR-mu motion | PSNR-mu static | PSNR-l | s/scene | targets |")
        print("|---|---|---|---|---|---|---|")
        for name, r in multi.items():
            verdicts = []
            if name in ("dfgnet", "lffnet", "tunet"):
                for subset, base, margin in TARGETS.get(n, []):
                    need = multi[base][f"psnr_mu_{subset}"] + margin
                    got = r[f"psnr_mu_{subset}"]
                    verdicts.append(f"{subset} {got:.2f} vs {need:.2f} ({base} + {margin:g}): {'met' if got >= need else 'MISSED'}")
            print(f"| {name} | {r['psnr_mu']:.2f} | {r['psnr_mu_motion']:.2f} | {r['psnr_mu_static']:.2f} | "
                  f"{r['psnr_l']:.2f} | {r['time_s']:.2f} | {'; '.join(verdicts)} |")


if __name__ == "__main__":
    main()
