"""Scoring backends on held-out scenes: learned models against classical baselines.

Multi-exposure methods are scored on brackets simulated from held-out radiance maps (the
same split as training, :func:`hdrcli.training.camera.split_maps`), half static, half
with camera shake and a moving object:

* ``reference``: the reference frame alone, linearised with the field's convention
  (LDR**2.2 / t, shortest exposure's units);
* ``opencv-debevec-mtb``: OpenCV AlignMTB + CalibrateDebevec + MergeDebevec with its
  defaults. Debevec's radiance scale is arbitrary, so its output is scaled by the median
  ratio to the ground truth (an oracle scale that favours the baseline);
* ``self-calibrated-debevec``: hdrcli's guarded Debevec merge (no alignment, no
  deghosting) with the bracket's self-calibrated response, in its own units: the frames
  the learned backends blend, merged with fixed weights; it shows what precision a merge
  of the frames holds on static scenes and what ghosting costs on moving ones;
* learned backends with shipped weights, run as `hdr fuse` runs them (torch, tiled,
  frames re-encoded with the bracket's self-calibrated camera response).

Single-image methods: ``inverse-gamma`` (LDR**2.2) against the learned expansions, all
scale-aligned to the ground truth (single-image HDR is only known up to scale).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from hdrcli.merge.classical import merge_debevec
from hdrcli.merge.response import self_calibrate
from hdrcli.metrics import hdr_scores, saturation_ratio, single_image_scores
from hdrcli.training.camera import (
    BracketSample,
    CameraSimulator,
    inverse_gamma,
    list_radiance_maps,
    split_maps,
    validation_brackets,
    validation_singles,
)


def reference_alone(sample: BracketSample) -> np.ndarray:
    return np.clip(sample.ldr[1], 0, 1) ** 2.2 / sample.exposures[1]


def opencv_debevec_mtb(sample: BracketSample) -> np.ndarray:
    u8 = [np.ascontiguousarray(np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)) for f in sample.ldr]
    aligned = [f.copy() for f in u8]
    cv2.createAlignMTB().process(u8, aligned)
    times = sample.exposures.astype(np.float32)
    response = cv2.createCalibrateDebevec().process(aligned, times)
    hdr = cv2.createMergeDebevec().process(aligned, times, response)
    hdr = np.nan_to_num(hdr, nan=0.0, posinf=0.0)
    p, t = hdr.mean(-1), sample.hdr.mean(-1)
    ok = (p > 1e-6) & (t > 1e-4) & (t < 0.99)
    return hdr * np.float32(np.median(t[ok] / p[ok]) if ok.any() else 1.0)


def self_calibrated_debevec(sample: BracketSample) -> np.ndarray:
    frames, exposures = list(sample.ldr), list(sample.exposures)
    return merge_debevec(frames, exposures, self_calibrate(frames, exposures))


def held_out_simulator(maps_root: str | Path, patch: int = 256,
                       reference_ev: tuple[float, float] = (-1.0, 1.0)) -> CameraSimulator:
    """The simulator over the held-out maps; brackets' reference within ``reference_ev`` of auto-exposure."""
    _, validation = split_maps(list_radiance_maps(maps_root))
    return CameraSimulator(validation, patch=patch, reference_ev=reference_ev)


def score_methods(methods: dict, samples: list, scorer) -> dict[str, dict[str, float]]:
    """methods: name -> f(sample) -> HDR; scorer(pred, sample) -> metrics. Averages per method
    (and per motion/static subset when samples carry a ``motion`` flag)."""
    results = {}
    for name, method in methods.items():
        rows = []
        for sample in samples:
            t0 = time.perf_counter()
            pred = method(sample)
            row = {**scorer(pred, sample), "time_s": time.perf_counter() - t0}
            if hasattr(sample, "motion"):
                row["motion"] = sample.motion
            rows.append(row)
        results[name] = summarise(rows)
    return results


def score_multi_exposure(methods: dict, samples: list[BracketSample]) -> dict[str, dict[str, float]]:
    return score_methods(methods, samples, lambda pred, s: {**hdr_scores(pred, s.hdr),
                                                          "saturation": saturation_ratio(pred, s.hdr)})


def score_single_image(methods: dict, samples) -> dict[str, dict[str, float]]:
    return score_methods(methods, samples, lambda pred, s: single_image_scores(pred, s.hdr))


UNDEFINED_ON_SOME_SCENES = ("saturation",)  # NaN on scenes without coloured pixels


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows]
    return float(np.nanmean(values) if key in UNDEFINED_ON_SOME_SCENES else np.mean(values))


def summarise(rows: list[dict]) -> dict[str, float]:
    """Mean of every metric, plus per-subset means when rows carry a ``motion`` flag."""
    keys = [k for k in rows[0] if k not in ("motion", "scene")]
    out = {k: _mean(rows, k) for k in keys}
    if "motion" in rows[0]:
        for flag, tag in ((True, "motion"), (False, "static")):
            subset = [r for r in rows if r["motion"] == flag]
            if subset:
                out.update({f"{k}_{tag}": _mean(subset, k) for k in keys if k != "time_s"})
    out["scenes"] = len(rows)
    return out


def learned_fuser(name: str):
    from hdrcli.runtime import TorchRunner

    runner = TorchRunner(name)
    return lambda sample: runner.fuse(list(sample.ldr), list(sample.exposures))


def learned_expander(name: str):
    from hdrcli.runtime import TorchRunner

    runner = TorchRunner(name)
    return lambda sample: runner.expand(sample.ldr)


def baseline_single(sample) -> np.ndarray:
    return inverse_gamma(sample.ldr)


__all__ = [
    "baseline_single", "held_out_simulator", "learned_expander", "learned_fuser", "opencv_debevec_mtb",
    "reference_alone", "score_multi_exposure", "self_calibrated_debevec", "score_single_image", "summarise", "validation_brackets",
    "validation_singles",
]


# ----------------------------------------------------------------------------- hdr eval

def evaluate_backend(backend: str, data: str | Path, *, limit: int | None = None, size: str | None = None,
                     align: str = "none", progress=None) -> list[dict]:
    """Per-scene scores of a multi-exposure backend on a dataset.

    ``data`` is a Kalantari-layout folder (scenes with three TIFFs, exposure.txt in EV
    stops and HDRImg.hdr) or a folder of radiance maps, from which the held-out maps are
    rendered into brackets (4 per map, half with motion, 256 x 256). Outputs are compared
    in the shortest exposure's units, as the models and hdrcli's classical merges produce.
    """
    from hdrcli.backends import get_backend
    from hdrcli.errors import HdrError
    from hdrcli.exposure import make_bracket
    from hdrcli.io.frames import Frame
    from hdrcli.io.hdr import read_hdr
    from hdrcli.io.scene import find_scenes, read_scene
    from hdrcli.pipeline import fuse_bracket

    info = get_backend(backend)
    if info.kind != "multi-exposure" or info.output != "radiance":
        raise HdrError(f"'{backend}' does not produce radiance from brackets; evaluate debevec, robertson or a learned fusion backend")
    data = Path(data)
    if not data.is_dir():
        raise HdrError("no such folder", data)
    scenes = find_scenes(data)
    items: list[tuple[str, object]] = []
    if scenes:
        items = [(s.name if s.parent == data else str(s.relative_to(data)), s) for s in scenes]
    else:
        maps = list_radiance_maps(data)
        if not maps:
            from hdrcli.io.scene import EXPOSURE_FILE

            if any(data.rglob(EXPOSURE_FILE)):
                raise HdrError("scene folders found but none has HDRImg.hdr (the ground truth)", data)
            raise HdrError("neither Kalantari scene folders (exposure.txt + HDRImg.hdr) nor radiance maps found", data)
        if len(maps) < 2:
            raise HdrError("need at least 2 radiance maps to hold one out", data)
        samples = validation_brackets(held_out_simulator(data), per_map=4)
        items = [(f"sim{i:03d}{'-motion' if s.motion else '-static'}", s) for i, s in enumerate(samples)]
    if limit:
        items = items[:limit]
    rows = []
    for index, (name, item) in enumerate(items):
        if isinstance(item, Path):
            if not (item / "exposure.txt").is_file():
                raise HdrError("scene folder has no exposure.txt", item)
            frames, exposures = read_scene(item)
            target = read_hdr(item / "HDRImg.hdr")
        else:
            frames = [Frame(Path(f"{name}-{i}.png"), f, 8, False) for i, f in enumerate(item.ldr)]
            exposures, target = list(item.exposures), item.hdr
        bracket = make_bracket(frames, exposures)
        t0 = time.perf_counter()
        result = fuse_bracket(bracket, backend, align, model_size=size)
        seconds = time.perf_counter() - t0
        if result.image.shape != target.shape:
            raise HdrError(f"ground truth size {target.shape[1]}x{target.shape[0]} differs from the frames'", name)
        rows.append({"scene": name, **hdr_scores(result.image, target), "time_s": seconds})
        if progress is not None:
            progress(index + 1, len(items))
    return rows


