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

Single-image methods: ``inverse-gamma`` (LDR**2.2) against the learned expansions as
``hdr expand`` runs them (the photo linearised with sRGB where it is well exposed), and
with the simulated camera's own curve (``--crf``); all scale-aligned to the ground truth
(single-image HDR is only known up to scale).
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
    inverse_response_table,
    list_radiance_maps,
    split_maps,
    validation_brackets,
    validation_singles,
)


def reference_alone(sample: BracketSample) -> np.ndarray:
    r = sample.reference
    return np.clip(sample.ldr[r], 0, 1) ** 2.2 / sample.exposures[r]


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
    keys = [k for k in rows[0] if k not in ("motion", "scene") and not isinstance(rows[0][k], (str, bool))]
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

    return lambda sample: runner.fuse(list(sample.ldr), list(sample.exposures), reference=sample.reference)


def learned_expander(name: str, camera_curve: bool = False):
    """``hdr expand`` with a learned backend: the photo linearised with sRGB (what hdrcli assumes
    of an unknown camera), or with ``camera_curve`` the simulated camera's own inverse curve
    (what ``--crf`` gives when the camera's response is known)."""
    from hdrcli.runtime import TorchRunner

    runner = TorchRunner(name)
    if camera_curve:
        return lambda sample: runner.expand_photo(sample.ldr, response=inverse_response_table(sample.curve)).hdr
    return lambda sample: runner.expand(sample.ldr)


def baseline_single(sample) -> np.ndarray:
    return inverse_gamma(sample.ldr)


__all__ = [
    "baseline_single", "held_out_simulator", "learned_expander", "learned_fuser", "opencv_debevec_mtb",
    "reference_alone", "score_multi_exposure", "self_calibrated_debevec", "score_single_image", "summarise", "validation_brackets",
    "validation_singles",
]


# ----------------------------------------------------------------------------- hdr eval

SCALE_ALIGN = ("none", "median", "lsq")
SCALE_WARN_STOPS = 1.0  # warn when output and ground truth differ by more than this, in stops


def global_scale(pred: np.ndarray, target: np.ndarray, method: str = "median") -> float:
    """The global factor s that brings ``pred`` to ``target``'s scale (s * pred ~ target).

    ``median``: median of target/pred luminance ratios (robust; as hdrcli.metrics.scale_aligned
    does for single-image scores); ``lsq``: least squares, sum(p t) / sum(p p). Both over
    pixels where both are lit and the target is below its clipping level (1). 1.0 when no
    pixel qualifies."""
    if method not in ("median", "lsq"):
        raise ValueError(f"unknown scale alignment {method!r}")
    p = np.asarray(pred, np.float64).mean(-1)
    t = np.asarray(target, np.float64).mean(-1)
    ok = (p > 1e-6) & (t > 1e-4) & (t < 1.0) & np.isfinite(p) & np.isfinite(t)
    if not ok.any():
        return 1.0
    if method == "median":
        return float(np.median(t[ok] / p[ok]))
    denominator = float(np.sum(p[ok] * p[ok]))
    return float(np.sum(p[ok] * t[ok]) / denominator) if denominator > 0 else 1.0


def evaluate_backend(backend: str, data: str | Path, *, limit: int | None = None, size: str | None = None,
                     align: str = "none", progress=None, scale_align: str = "none") -> list[dict]:
    """Per-scene scores of a multi-exposure backend on a dataset.

    ``data`` is a Kalantari-layout folder (scenes with three TIFFs, exposure.txt in EV
    stops and HDRImg.hdr) or a folder of radiance maps, from which the held-out maps are
    rendered into brackets (4 per map, half with motion, 256 x 256; scenes named
    ``simNNN-MAP-static|motion`` after the map they come from). Outputs are compared in the
    shortest exposure's units, as the models and hdrcli's classical merges produce, unless
    ``scale_align`` is ``median`` or ``lsq`` (:func:`global_scale`: the output is scaled to
    the ground truth first, as single-image HDR work does). Every row records ``scale``,
    the median-ratio factor between output and ground truth before any alignment, and the
    ``scale_align`` used.
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
    if scale_align not in SCALE_ALIGN:
        raise HdrError(f"unknown --scale-align '{scale_align}' (use {', '.join(SCALE_ALIGN)})")
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
        simulator = held_out_simulator(data)
        samples = validation_brackets(simulator, per_map=4)
        map_names = [Path(p).name.split(".")[0] for p in simulator.paths]
        items = [(f"sim{i:03d}-{map_names[i // 4]}{'-motion' if s.motion else '-static'}", s) for i, s in enumerate(samples)]
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
        scale = global_scale(result.image, target, "median")
        image = result.image
        if scale_align != "none":
            image = image * np.float32(global_scale(image, target, scale_align))
        rows.append({"scene": name, **hdr_scores(image, target), "time_s": seconds,
                     "scale": scale, "scale_align": scale_align})
        if progress is not None:
            progress(index + 1, len(items))
    return rows




# ----------------------------------------------------------------------------- hdr eval --real

_FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
_OPENCV_LISTS = ("*.txt",)


def _is_reference_name(path: Path) -> bool:
    """Files kept beside real brackets as their references (``hdr_gt.png``), not frames."""
    stem = path.stem.lower()
    return "gt" in stem.replace("-", "_").split("_") or stem.endswith("_reference")


def find_real_brackets(root: str | Path) -> list[tuple[str, list[Path], Path | None]]:
    """Every folder under ``root`` holding at least two frames: (name, frames, exposure list file).

    Frames are JPEG/PNG/TIFF files (references such as ``hdr_gt.png`` excluded), in name
    order. The exposure list is the folder's ``exposure.txt`` or a single ``*.txt`` that
    names the frames (OpenCV's ``NAME 1/t`` lists); without one, EXIF is used, and failing
    that exposures are estimated from brightness.
    """
    root = Path(root)
    found = []
    for folder in sorted({p.parent for p in root.rglob("*") if p.is_file()} | {root}):
        frames = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _FRAME_SUFFIXES
                        and not _is_reference_name(p))
        if len(frames) < 2:
            continue
        lists = sorted(folder.glob("*.txt"))
        listed = [p for p in lists if p.name == "exposure.txt" or any(f.name in p.read_text(errors="replace")[:100_000] for f in frames)]
        exposure_list = listed[0] if listed else None
        if exposure_list is not None and exposure_list.name != "exposure.txt":
            names = exposure_list.read_text(errors="replace")
            frames = [f for f in frames if f.name in names]
        name = str(folder.relative_to(root)) if folder != root else folder.name
        found.append((name, frames, exposure_list))
    return found


def _split_repeats(bracket_frames: list, exposures: list[float], tolerance_stops: float = 0.25) -> list[list[int]]:
    """Split name-ordered frames into runs without a repeated exposure (the same bracket shot twice)."""
    runs: list[list[int]] = [[]]
    for i, e in enumerate(exposures):
        if any(abs(np.log2(e / exposures[j])) < tolerance_stops for j in runs[-1]):
            runs.append([])
        runs[-1].append(i)
    return [r for r in runs if len(r) >= 2]


def real_brackets(root: str | Path) -> list[tuple[str, object]]:
    """The brackets of :func:`find_real_brackets`, read and ordered (hdrcli.exposure.Bracket)."""
    from hdrcli.errors import HdrError
    from hdrcli.exposure import exif_exposures, make_bracket
    from hdrcli.io.frames import read_frames
    from hdrcli.log import warn
    from hdrcli.pipeline import estimate_exposures, load_bracket

    brackets = []
    for name, frames, exposure_list in find_real_brackets(root):
        if exposure_list is not None:
            brackets.append((name, load_bracket(frames, exposure_file=exposure_list)))
            continue
        read = read_frames(frames)
        try:
            exposures = exif_exposures(read)
        except HdrError:
            exposures = estimate_exposures(read)
            warn(f"{name}: no EXIF exposures: estimated from brightness")
        runs = _split_repeats(read, exposures)
        for k, run in enumerate(runs):
            label = name if len(runs) == 1 else f"{name} ({', '.join(read[i].name for i in run)})"
            brackets.append((label, make_bracket([read[i] for i in run], [exposures[i] for i in run])))
    return brackets


def evaluate_real(backend: str, root: str | Path, *, size: str | None = None, align: str | None = None,
                  progress=None) -> list[dict]:
    """Re-exposure consistency of a backend on real brackets (no ground truth needed).

    Each bracket is aligned once; the backend fuses the aligned frames; the result is
    rendered back through the bracket's own Debevec-calibrated camera response at every
    frame's exposure and compared with the frame on its well-exposed pixels (8-bit 5-250),
    leaving out pixels the ghost map flags in non-reference frames
    (:func:`hdrcli.metrics.reexposure_psnr`). PSNR in the 8-bit domain, dB.
    """
    import dataclasses

    from hdrcli.align import align_bracket
    from hdrcli.errors import HdrError
    from hdrcli.exposure import Bracket
    from hdrcli.merge.ghost import ghost_maps
    from hdrcli.merge.response import calibrate_response, linear_response
    from hdrcli.metrics import reexposure_psnr
    from hdrcli.pipeline import DEFAULT_ALIGN, fuse_bracket

    items = real_brackets(root)
    if not items:
        raise HdrError("no brackets found (folders with two or more frames)", root)
    rows = []
    for index, (name, bracket) in enumerate(items):
        aligned = align_bracket(bracket, align or DEFAULT_ALIGN)
        steady = Bracket([dataclasses.replace(f, pixels=a) for f, a in zip(bracket.frames, aligned)],
                         bracket.exposures, bracket.reference)
        if steady.frames[0].linear:
            response = linear_response()
        else:
            u8 = [np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8) for a in aligned]
            response = calibrate_response(u8, steady.exposures)
        t0 = time.perf_counter()
        try:
            result = fuse_bracket(steady, backend, "none", model_size=size, keep_maps=True)
        except HdrError as exc:  # a bracket this backend cannot take (e.g. 2 frames): reported, not fatal
            rows.append({"bracket": name, "frames": len(aligned), "error": str(exc)})
            continue
        seconds = time.perf_counter() - t0
        ghosts = ghost_maps(aligned, steady.relative_exposures, response, steady.reference)
        score = reexposure_psnr(result.image, aligned, steady.relative_exposures, response, steady.reference, ghosts)
        rows.append({"bracket": name, "frames": len(aligned), "reexposure_ref_db": score["reference"],
                     "reexposure_mean_db": score["mean"], "reexposure_frames_db": score["frames"],
                     "scale": score["scale"], "ghost_fraction": float((ghosts.max(axis=0) > 0.5).mean()),
                     # learned backends: pixels where the network's synthesis outweighs the frames
                     "synthesis_share": result.synthesis_share,
                     "time_s": seconds})
        if progress is not None:
            progress(index + 1, len(items))
    return rows
