"""Quality of every backend on held-out scenes (README "Quality" table).

    python bench/quality.py [--maps ../shared/data/radiance] [--patch 256] [--per-map 4] [--reference-ev=-1,1]

Multi-exposure: PSNR-mu / PSNR-l / SSIM-mu on brackets simulated from the radiance maps
held out of training (10 maps x per-map crops, half with motion), for the reference
frame alone, OpenCV Debevec + MTB, hdrcli's Debevec merge with the self-calibrated
response (no deghosting), and each learned backend with weights. Single-image:
the learned expansions against inverse-gamma linearisation, scale-aligned. "saturation"
is the median colour saturation relative to the ground truth (1 = faithful). See
hdrcli/evaluation.py for the exact protocol.
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
from hdrcli.runtime.torch_runtime import available_sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maps", default="../shared/data/radiance")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--per-map", type=int, default=4)
    parser.add_argument("--reference-ev", default="-1,1",
                        help="brackets' reference exposure range around auto-exposure, EV (stress test: -3,-2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    low, high = (float(v) for v in args.reference_ev.split(","))
    sim = held_out_simulator(args.maps, args.patch, reference_ev=(low, high))
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


if __name__ == "__main__":
    main()
