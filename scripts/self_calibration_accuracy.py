"""How close the learned backends' self-calibrated camera response is to the true one.

    python scripts/self_calibration_accuracy.py [--maps ../shared/data/radiance]

On the held-out simulated brackets of bench/quality.py (40 brackets, 256 x 256, half with
motion, 201 DoRF curves, sensor noise), compares the inverse response fitted by
:func:`hdrcli.merge.response.self_calibrate` with the simulator's true curve, and with
the field's assumption of gamma 2.2. Error: median over pixel values 8..247 of
|log2(estimated / true irradiance)|, in stops (absolute: scale errors count too).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hdrcli.evaluation import held_out_simulator, validation_brackets
from hdrcli.merge.response import self_calibrate


def stops_error(response: np.ndarray, curve: np.ndarray, codes: np.ndarray) -> float:
    truth = np.interp(codes / 255.0, curve, np.linspace(0, 1, curve.size))
    return float(np.median(np.abs(np.log2(np.maximum(response, 1e-9) / np.maximum(truth, 1e-9)))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maps", default="../shared/data/radiance")
    args = parser.parse_args()
    brackets = validation_brackets(held_out_simulator(args.maps, 256), per_map=4)
    codes = np.arange(8, 248)
    fitted, assumed, seconds = [], [], []
    for sample in brackets:
        t0 = time.perf_counter()
        response = self_calibrate(list(sample.ldr), list(sample.exposures))
        seconds.append(time.perf_counter() - t0)
        fitted.append(stops_error(response[codes, 0], sample.curve, codes))
        assumed.append(stops_error((codes / 255.0) ** 2.2, sample.curve, codes))
    motion = np.array([s.motion for s in brackets])
    for name, errors in (("self-calibrated", np.array(fitted)), ("gamma 2.2 assumed", np.array(assumed))):
        print(f"{name:18s} mean {errors.mean():.3f} stops (static {errors[~motion].mean():.3f}, "
              f"motion {errors[motion].mean():.3f}), 90th percentile {np.percentile(errors, 90):.3f}")
    print(f"self-calibration time: {1000 * np.mean(seconds):.1f} ms per 256x256 bracket")


if __name__ == "__main__":
    main()
