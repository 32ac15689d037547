"""Print parameters, GFLOPs per megapixel and CPU forward time of every model configuration.

    python scripts/model_stats.py [--time-side 256] [--no-time]

GFLOPs are counted by torch's FlopCounterMode (convolutions and matrix products, 2 FLOPs
per multiply-add; FFTs and element-wise ops not counted) on a 128 x 128 input and scaled
per megapixel. Time: one warm forward pass of a side x side input on this machine's CPU,
lite configs only (paper configs of dfgnet and stack are too slow to time here).
"""

from __future__ import annotations

import argparse
import time

import torch

from hdrcli.models import count_parameters, create_model, fold_do_convs, get_spec, gflops_per_megapixel, list_models
from hdrcli.models.registry import example_input


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-side", type=int, default=256)
    parser.add_argument("--no-time", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    print(f"| model | size | parameters (train) | parameters (inference) | GFLOPs/MP | CPU s @{args.time_side}^2 |")
    print("|---|---|---|---|---|---|")
    for spec in list_models():
        for size in spec.configs:
            with torch.device("meta"):
                model = spec.builder(**spec.configs[size])
            train = count_parameters(model)
            inference = count_parameters(fold_do_convs(model))
            gflops = gflops_per_megapixel(spec.name, size)
            seconds = "-"
            if size == "lite" and not args.no_time:
                net = fold_do_convs(create_model(spec.name, size)).eval()
                x = example_input(get_spec(spec.name), args.time_side, args.time_side)
                with torch.no_grad():
                    net(x)
                    t0 = time.perf_counter()
                    net(x)
                    seconds = f"{time.perf_counter() - t0:.2f}"
            print(f"| {spec.name} | {size} | {train:,} | {inference:,} | {gflops:,.0f} | {seconds} |")


if __name__ == "__main__":
    main()
