"""The jobs behind the CLI commands, as plain functions.

``fuse``: frames -> exposures -> alignment -> backend -> HDR -> writer + preview.
``tonemap``: HDR file -> display image.

Outputs are checked before any work (folder exists and is writable, nothing is
overwritten unless asked) and written atomically, so a failed job leaves no file.
"""

from __future__ import annotations

import functools
import glob
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hdrcli import __version__
from hdrcli.align import covered_area, estimate_warps, scale_warp, srgb_to_linear, warp_frame
from hdrcli.backends import BackendSpec, get_backend
from hdrcli.errors import HdrError
from hdrcli.exposure import (
    Bracket,
    check_brightness_order,
    exif_exposures,
    make_bracket,
    read_exposure_file,
    reference_index,
    seconds_from_ev,
    strided_grid,
)
from hdrcli.io.atomic import (
    check_output_path,
    check_outputs,
    make_output_folder,
    output_transaction,
    remove_abandoned_temps,
    same_file,
)
from hdrcli.io.metadata import PhotoMetadata, exif_bytes, exr_attributes, read_metadata
from hdrcli.io.ultrahdr import DEFAULT_HEADROOM_STOPS, check_headroom, check_ultrahdr_extension, write_ultrahdr
from hdrcli.io.frames import Frame, read_frames
from hdrcli.io.hdr import output_format, read_hdr, write_hdr
from hdrcli.io.ldr import check_ldr_extension, write_ldr
from hdrcli.io.scene import is_scene_folder, read_scene
from hdrcli.log import info as log_info
from hdrcli.log import warn
from hdrcli.merge import (
    calibrate_response,
    linear_response,
    load_response,
    merge_mertens,
    save_response,
)
from hdrcli.tonemap import DEFAULT_TONEMAP, tonemap as tonemap_image
from hdrcli.threads import configure as configure_threads

# Chosen with bench/align_choice.py on ../shared/data/brackets: ECC is never worse than MTB
# on the tripod bracket and clearly better on the hand-held one (see README).
DEFAULT_ALIGN = "ecc"
GAIN_MAP_CHOICES = ("use", "ignore")  # hdr expand of a gain-map JPEG: its recorded HDR rendition, or the base photo


def _all_or_nothing(job):
    """Run a job inside :func:`~hdrcli.io.atomic.output_transaction`: its outputs are
    renamed into place together when it succeeds; when anything fails (a tone map, a full
    disk, Ctrl-C, SIGTERM) no output appears."""

    @functools.wraps(job)
    def run_job(*args, **kwargs):
        with output_transaction():
            return job(*args, **kwargs)

    return run_job


def default_preview_path(output: str | os.PathLike[str]) -> Path:
    """``out.exr`` -> ``out.preview.jpg``."""
    output = Path(output)
    return output.with_name(output.stem + ".preview.jpg")


def estimate_exposures(frames: list[Frame]) -> list[float]:
    """Relative exposures guessed from brightness, for backends that only need an order.

    Ratio of mean linearised brightness over the pixels that no frame clips or crushes.
    """
    lin = [f.pixels if f.linear else srgb_to_linear(f.pixels) for f in frames]
    stack = np.stack([f.pixels.mean(axis=-1) for f in frames])
    valid = np.all((stack > 0.02) & (stack < 0.98), axis=0)
    if valid.mean() < 0.01:
        valid = np.ones_like(valid)
    means = [float(im.mean(axis=-1)[valid].mean()) + 1e-9 for im in lin]
    return [m / min(means) for m in means]


def load_bracket(
    inputs: list[str | os.PathLike[str]],
    *,
    exposures: list[float] | None = None,
    ev: list[float] | None = None,
    exposure_file: str | os.PathLike[str] | None = None,
    exposure_file_format: str = "auto",
    reference: str | int | None = None,
    require_exposures: bool = True,
    timings: dict[str, float] | None = None,
) -> Bracket:
    """Read frames (files, or one Kalantari scene folder) and order them by exposure.

    ``timings``, when given, receives ``read_s`` (decoding, EXIF parsing included) and
    ``exif_s`` (exposures from EXIF or the options, ordering) in seconds.
    """
    given = [x for x in (exposures, ev, exposure_file) if x is not None]
    if len(given) > 1:
        raise HdrError("give only one of --exposures, --ev and --exposure-file")
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        if not is_scene_folder(inputs[0]):
            raise HdrError("folder is not a scene folder: it has no exposure.txt (EV stops, one per frame)", inputs[0])
        frames, scene_exposures = read_scene(inputs[0])
        timings["read_s"] = time.perf_counter() - t0
        if not given:
            t0 = time.perf_counter()
            bracket = make_bracket(frames, scene_exposures, reference)
            check_brightness_order(bracket, "the scene's exposure.txt")
            timings["exif_s"] = time.perf_counter() - t0
            return bracket
    else:
        if len(inputs) < 2:
            name = str(inputs[0]) if inputs else "(none)"
            raise HdrError(f"a bracket needs at least 2 frames, got {len(inputs)} ({name}); add the other exposures")
        for i, path in enumerate(inputs):  # e.g. a shell glob and a file named again: one frame twice
            for earlier in inputs[:i]:
                if same_file(path, earlier):
                    raise HdrError(f"this file is given twice (also as {earlier}); each frame once", path)
        frames = read_frames(list(inputs))
        timings["read_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    source = "EXIF"
    if exposures is not None:
        values, source = exposures, "--exposures"
    elif ev is not None:
        values, source = seconds_from_ev(ev), "--ev"
    elif exposure_file is not None:
        values = read_exposure_file(exposure_file, [f.name for f in frames], exposure_file_format)
        source = "the exposure file"
    elif require_exposures:
        try:
            values = exif_exposures(frames)
        except HdrError as exc:
            # Suggest values in the files' order, from their brightness (sRGB assumed), to check and pass on.
            thumbs = [Frame(f.path, strided_grid(f.pixels, 512), f.bit_depth, f.linear) for f in frames]
            guess = ",".join(f"{v:.3g}" for v in estimate_exposures(thumbs))
            message = str(exc)[len(exc.path) + 2:] if exc.path else str(exc)
            raise HdrError(f"{message}; from their brightness the files given look like "
                           f"--exposures {guess} (relative, assuming an sRGB curve)", exc.path) from None
    else:
        try:
            values = exif_exposures(frames)
        except HdrError:
            warn("no exposure information: ordering frames by their brightness")
            values, source = estimate_exposures(frames), ""
    if len(values) != len(frames):
        raise HdrError(f"{len(values)} exposures given for {len(frames)} frames")
    bracket = make_bracket(frames, values, reference)
    if source:  # brightness-ordered frames agree by construction
        check_brightness_order(bracket, source)
    timings["exif_s"] = time.perf_counter() - t0
    return bracket


@dataclass
class FuseResult:
    """What a fuse job produced."""

    image: np.ndarray
    radiance: bool
    bracket: Bracket
    response: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)
    warps: list[np.ndarray | None] | None = None  # per frame (None: not warped), from alignment
    frames_used: list[int] | None = None  # indices of the frames the backend fused (None: all)
    # Learned backends, when asked (keep_maps: --save-weights, hdr eval --real): each frame's
    # weight in the output (N, H, W), the synthesis share (H, W) and its summary.
    frame_weights: np.ndarray | None = None
    synthesis_map: np.ndarray | None = None
    synthesis_share: float | None = None  # fraction of pixels where the synthesis weighs > 1/2
    crop: tuple[int, int, int, int] | None = None  # (y0, y1, x0, x1) of the frames kept by --crop


def fuse_bracket(
    bracket: Bracket,
    backend: str | BackendSpec = "debevec",
    align: str = DEFAULT_ALIGN,
    response: np.ndarray | None = None,
    guard: bool = True,
    model_size: str | None = None,
    device: str = "auto",
    runtime: str = "auto",
    tile: int | None = None,
    progress=None,
    runner=None,
    keep_maps: bool = False,
) -> FuseResult:
    """Align and merge a bracket with a backend (no file I/O).

    Args:
        bracket: frames ordered by exposure.
        backend: a registered backend name.
        align: 'none', 'mtb' or 'ecc'.
        response: (256, 3) inverse camera response to use instead of calibrating;
            ignored for linear (RAW) frames.
        guard: Debevec/Robertson clipped-highlight guard (see hdrcli.merge.classical).
        model_size: learned backends: 'lite' or 'paper' (default: the first with weights).
        device: learned backends: 'auto' (CUDA when available), 'cpu' or 'cuda'.
        runtime: learned backends: 'torch', 'onnx' or 'auto' (the faster one per backend, hdrcli.runtime.FASTER_RUNTIME).
        tile: learned backends: tile side (default per backend).
        progress: learned backends: called as progress(done_tiles, total_tiles).
        runner: learned backends: a runner made beforehand (see :func:`check_fuse_options`).
        keep_maps: learned backends: keep the per-frame weight and synthesis maps in the result.

    Timings (seconds) go to ``FuseResult.timings``: ``load_s`` (model; in :func:`fuse` and
    :func:`expand` also importing torch when the backend name is resolved), ``align_s``,
    ``calibrate_s``, ``merge_s`` or ``network_s``.
    """
    info = backend if isinstance(backend, BackendSpec) else get_backend(backend)  # resolved once per job
    timings: dict[str, float] = {}
    learned = info.family != "classical"
    if learned and info.kind != "multi-exposure":
        raise HdrError(f"'{info.name}' is a single-image backend; use `hdr expand`")
    if learned:
        check_learned_bracket(len(bracket.frames))
    if bracket.frames[0].linear:
        if response is not None:
            warn("camera RAW frames are linear: the given camera response is not used")
        response = linear_response()
    if learned and runner is None:  # weights, ONNX export and device are checked before aligning
        from hdrcli.runtime import make_runner

        t0 = time.perf_counter()
        runner = make_runner(info.name, runtime, size=model_size, device=device, tile=tile,
                             bracket=(len(bracket.frames), bracket.reference, keep_maps))
        timings["load_s"] = time.perf_counter() - t0
    if learned:
        t0 = time.perf_counter()
        runner.prepare(*bracket.frames[0].pixels.shape[:2], len(bracket.frames), bracket.reference)
        timings["load_s"] = timings.get("load_s", 0.0) + time.perf_counter() - t0
    t0 = time.perf_counter()
    warps = estimate_warps(bracket, align)
    timings["align_s"] = time.perf_counter() - t0
    pixels = [f.pixels for f in bracket.frames]
    if info.name == "mertens":
        t0 = time.perf_counter()
        result = FuseResult(merge_mertens([warp_frame(p, w) for p, w in zip(pixels, warps)]), False, bracket, None,
                            timings)
        timings["merge_s"] = time.perf_counter() - t0
    elif not learned:
        if response is None:
            t0 = time.perf_counter()
            response = calibrate_response(_calibration_frames(pixels, warps), bracket.exposures, method=info.name)
            timings["calibrate_s"] = time.perf_counter() - t0
            if info.name == "robertson":  # seen on frobisher: green/red bands on the wall and sky
                warn("robertson's self-calibrated response leaves false-colour contours in smooth areas of "
                     "real photos; prefer debevec (the default) or give a measured response with --crf")
        t0 = time.perf_counter()
        merge = info.builder()  # the registry's merge function (merge_debevec / merge_robertson)
        # Frames are warped band by band inside the merge: no aligned full-size copies.
        hdr = merge(pixels, bracket.exposures, response, guard=guard, warps=warps)
        timings["merge_s"] = time.perf_counter() - t0
        result = FuseResult(hdr, True, bracket, response, timings)
    else:
        t0 = time.perf_counter()
        # The runner re-encodes the frames to the networks' gamma-2.2 convention with the
        # given response (linear for RAW), or else the bracket's self-calibrated one, as in
        # training. (The Debevec calibration of the classical path was tried: higher
        # re-exposure scores on real brackets, whose scoring aligns the scale, but its
        # extrapolated top end misplaces the clipping level: 32.75 -> 23.90 dB PSNR-mu on the
        # simulated held-out set, scored in the output's own units.)
        out = runner.fuse(pixels, bracket.relative_exposures, progress, response=response,
                          reference=bracket.reference, maps=keep_maps, warps=warps)
        n = len(bracket.frames)
        result = FuseResult(np.ascontiguousarray(out[..., :3]) if keep_maps else out, True, bracket, None, timings)
        if keep_maps:
            result.synthesis_map = np.ascontiguousarray(out[..., 3 + n])
            result.synthesis_share = float(np.mean(result.synthesis_map > 0.5))
            result.frame_weights = np.ascontiguousarray(np.moveaxis(out[..., 3 : 3 + n], -1, 0))
        del out
        timings["network_s"] = time.perf_counter() - t0
    result.warps = warps
    return result


# Calibration needs statistics, not resolution (hdrcli.merge.response downsizes to this too).
_CALIBRATION_MAX_PIXELS = 1_000_000


def _calibration_frames(pixels: list[np.ndarray], warps: list[np.ndarray | None]) -> list[np.ndarray]:
    """Aligned uint8 copies of the frames at <= 1 MP: downsized first, then warped at that size."""
    h, w = pixels[0].shape[:2]
    s = min(1.0, (_CALIBRATION_MAX_PIXELS / (h * w)) ** 0.5)
    out = []
    for p, warp in zip(pixels, warps):
        if s < 1.0:
            size = (max(1, round(w * s)), max(1, round(h * s)))
            p = cv2.resize(p, size, interpolation=cv2.INTER_AREA)
            warp = None if warp is None else scale_warp(warp, s)
        out.append(np.clip(np.rint(warp_frame(p, warp) * 255.0), 0, 255).astype(np.uint8))
    return out


# The learned backends were trained on brackets of 2-9 frames (hdrcli.training.camera).
TRAINED_FRAMES = (2, 9)


def check_learned_bracket(frames: int) -> None:
    """Learned backends fuse any bracket of 2 or more frames, every frame, any reference."""
    if frames < 2:
        raise HdrError(f"a bracket needs at least 2 frames; {frames} given")
    if frames > TRAINED_FRAMES[1]:
        warn(f"learned backends were trained on brackets of {TRAINED_FRAMES[0]}-{TRAINED_FRAMES[1]} frames; "
             f"fusing all {frames} (time grows with the frame count; --backend debevec is the measured "
             "choice for long tripod brackets)")


# Stages of a fuse job in FuseResult.timings, in pipeline order, with their labels.
STAGES = (
    ("read_s", "read"), ("exif_s", "exif"), ("load_s", "model"), ("align_s", "align"),
    ("calibrate_s", "calibrate"), ("merge_s", "merge"), ("network_s", "network"),
    ("exr_s", "write"), ("preview_s", "preview"),
)


def describe_timings(timings: dict[str, float]) -> str:
    """'read 0.52s, exif 0.01s, align 0.31s, ...' for the stages a job ran, plus the total."""
    parts = [f"{label} {timings[key]:.2f}s" for key, label in STAGES if key in timings]
    total = sum(timings[key] for key, _ in STAGES if key in timings)
    return ", ".join(parts + [f"total {total:.2f}s"])


def check_fuse_options(
    backend: str | BackendSpec,
    inputs: list[str | os.PathLike[str]],
    *,
    align: str = DEFAULT_ALIGN,
    exposures: list[float] | None = None,
    ev: list[float] | None = None,
    reference: str | int | None = None,
    tile: int | None = None,
) -> None:
    """Refuse, before any frame is read, what the options and the file list already rule out.

    Checks: the alignment method; a single-image backend; as many
    ``exposures``/``ev`` values as files; a reference index within the bracket; at least
    2 files for learned backends. A scene folder is checked once read.
    """
    from hdrcli.align import ALIGN_METHODS

    info = backend if isinstance(backend, BackendSpec) else get_backend(backend)
    if align not in ALIGN_METHODS:
        raise HdrError(f"unknown alignment '{align}' (use {', '.join(ALIGN_METHODS)})")
    if info.kind != "multi-exposure":
        raise HdrError(f"'{info.name}' is a single-image backend; use `hdr expand`")
    folder = len(inputs) == 1 and Path(inputs[0]).is_dir()
    if folder:
        return
    n = len(inputs)
    for values in (exposures, ev):
        if values is not None and len(values) != n:
            raise HdrError(f"{len(values)} exposures given for {n} frames")
    index = reference_index(reference)  # as make_bracket reads it
    if index is not None:
        if not 0 <= index < n:
            raise HdrError(f"--reference {index} is out of range: frames are numbered 0..{n - 1} by exposure")
    if info.family != "classical" and n < 2:
        raise HdrError(f"a bracket needs at least 2 frames; {n} given")


def _bracket_shape(inputs: list, reference: str | int | None, maps: bool) -> tuple[int, int | None, bool] | None:
    """(frames, reference index or None for the middle one, maps) as the file list and options
    give them before any frame is read (None: a scene folder, or a reference given by name)."""
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        return None
    if reference is None:
        return len(inputs), None, maps
    index = reference_index(reference)
    return None if index is None else (len(inputs), index, maps)


def crop_to_covered_area(result: FuseResult) -> None:
    """Crop ``result.image`` to the rectangle every aligned frame covers (``hdr fuse --crop``)."""
    h, w = result.image.shape[:2]
    y0, y1, x0, x1 = covered_area(result.warps or [], h, w)
    if (y0, y1, x0, x1) != (0, h, 0, w):
        result.image = np.ascontiguousarray(result.image[y0:y1, x0:x1])
        result.crop = (y0, y1, x0, x1)
        log_info(f"cropped to {x1 - x0}x{y1 - y0} at ({x0}, {y0}): the area every aligned frame covers")


def tidy_output_folders(outputs: list, inputs: list) -> list[Path]:
    """Remove, with a warning, the temporary files a killed hdrcli left in the outputs' folders
    more than an hour ago (:func:`hdrcli.io.atomic.remove_abandoned_temps`; never an input)."""
    removed = remove_abandoned_temps(outputs, inputs)
    if removed:
        names = ", ".join(p.name for p in removed[:3]) + (", ..." if len(removed) > 3 else "")
        warn(f"removed {len(removed)} temporary file(s) left more than an hour ago by an interrupted hdrcli "
             f"in {removed[0].parent}: {names}")
    return removed


def _check_outputs(output: Path, preview: Path | None, radiance: bool, overwrite: bool,
                   inputs: list = (), extra: list = ()) -> None:
    """Extensions, then :func:`check_outputs`: no output is an input (not even with
    ``overwrite``), no two outputs are the same file, folders writable, no silent overwrite."""
    if radiance:
        output_format(output)
    else:
        check_ldr_extension(output)
    if preview is not None:
        check_ldr_extension(preview)
    check_outputs([output, preview, *extra], inputs, overwrite)


def fuse(
    inputs: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    backend: str = "debevec",
    align: str = DEFAULT_ALIGN,
    exposures: list[float] | None = None,
    ev: list[float] | None = None,
    exposure_file: str | os.PathLike[str] | None = None,
    exposure_file_format: str = "auto",
    reference: str | int | None = None,
    crf: str | os.PathLike[str] | None = None,
    save_crf: str | os.PathLike[str] | None = None,
    guard: bool = True,
    float32: bool = False,
    tonemap: str = DEFAULT_TONEMAP,
    preview: str | os.PathLike[str] | None = None,
    no_preview: bool = False,
    overwrite: bool = False,
    model_size: str | None = None,
    device: str = "auto",
    runtime: str = "auto",
    tile: int | None = None,
    progress=None,
    threads: int | None = None,
    ultrahdr: bool = False,
    hdr_headroom: float = DEFAULT_HEADROOM_STOPS,
    strip_metadata: bool = False,
    save_weights: str | os.PathLike[str] | None = None,
    crop: bool = False,
) -> tuple[FuseResult, list[Path]]:
    """The ``hdr fuse`` job. Returns the result and the files written (output first).

    ``crop``: keep only the rectangle that every aligned frame covers (:func:`hdrcli.align.covered_area`;
    outside it alignment repeats edge pixels); the weight maps are cropped alike.

    ``save_weights``: also write a multi-channel EXR of ghost maps and per-frame merge
    weights (:func:`save_weight_maps`). Without it the frames' pixels are released once
    merged: ``result.bracket`` keeps names, shapes, exposures and EXIF, not pixels.

    ``ultrahdr``: ``output`` (.jpg) is an Ultra HDR gain-map JPEG instead of an HDR file
    (no preview unless ``preview`` is given); ``hdr_headroom``: its highlight headroom in
    stops. ``strip_metadata``: carry no EXIF/EXR metadata from the reference frame.
    ``threads``: CPU threads for every library (None: the available cores; see hdrcli.threads).
    Options a backend cannot take fail before any frame is read (:func:`check_fuse_options`).
    """
    configure_threads(threads)  # first: libgomp reads OMP_WAIT_POLICY when torch loads, just below
    t_resolve = time.perf_counter()
    info = get_backend(backend)  # a learned name imports torch and the model modules here
    resolve_s = time.perf_counter() - t_resolve
    output = Path(output)
    radiance = info.output == "radiance"
    if ultrahdr:
        check_ultrahdr_extension(output)
        check_headroom(hdr_headroom)
        if not radiance:
            raise HdrError(f"--ultrahdr needs radiance; '{backend}' produces a display image")
        no_preview = no_preview or preview is None
    if radiance and not no_preview:
        preview_path: Path | None = Path(preview) if preview else default_preview_path(output)
    else:
        preview_path = Path(preview) if (preview and not no_preview) else None
    if not radiance and output.suffix.lower() in (".exr", ".hdr", ".pfm"):
        raise HdrError(
            f"'{backend}' produces a display-referred LDR image, not radiance: write .png, .tif or .jpg", output
        )
    _check_outputs(output, preview_path, radiance and not ultrahdr, overwrite, [*inputs, exposure_file, crf], [save_crf, save_weights])
    response = load_response(crf) if crf is not None else None
    check_fuse_options(info, inputs, align=align, exposures=exposures, ev=ev, reference=reference, tile=tile)
    timings: dict[str, float] = {}
    runner = None
    if info.family != "classical":  # weights, ONNX export, device: before reading any frame
        from hdrcli.runtime import make_runner

        t0 = time.perf_counter()
        runner = make_runner(info.name, runtime, size=model_size, device=device, tile=tile,
                             bracket=_bracket_shape(inputs, reference, save_weights is not None))
        timings["load_s"] = resolve_s + time.perf_counter() - t0  # "model": importing torch included
    bracket = load_bracket(
        inputs, exposures=exposures, ev=ev, exposure_file=exposure_file,
        exposure_file_format=exposure_file_format, reference=reference,
        require_exposures=info.needs_exposures, timings=timings,
    )
    result = fuse_bracket(bracket, info, align, response, guard, model_size, device, runtime, tile, progress,
                          runner=runner, keep_maps=save_weights is not None)
    for stage, seconds in timings.items():  # load_s in both: making the runner here, preparing it there
        result.timings[stage] = result.timings.get(stage, 0.0) + seconds
    if crop:
        crop_to_covered_area(result)
    if save_weights is None:
        # Nothing reads the frames' pixels after the merge: release them before the writers
        # and the preview's tone map (3 x 12 MP frames are 435 MB as float32). The frames keep
        # their names, shapes, exposures and EXIF (a zero-stride view of one value).
        for frame in bracket.frames:
            frame.pixels = np.broadcast_to(np.float32(0.0), frame.pixels.shape)
    tidy_output_folders([output, preview_path, save_crf, save_weights], [*inputs, exposure_file, crf])
    t0 = time.perf_counter()
    written: list[Path] = []
    with output_transaction():  # all outputs appear together, or none (a failing preview removes the HDR)
        _write_fuse_outputs(result, bracket, output, preview_path, save_crf, radiance, backend, float32, tonemap,
                            written, ultrahdr=hdr_headroom if ultrahdr else None,
                            meta=None if strip_metadata else read_metadata(bracket.frames[bracket.reference].path))
        if save_weights is not None:
            written.append(save_weight_maps(save_weights, result, info.name, guard))
    result.timings["write_s"] = time.perf_counter() - t0
    return result, written


def _write_fuse_outputs(result: FuseResult, bracket: Bracket, output: Path, preview_path: Path | None,
                        save_crf, radiance: bool, backend: str, float32: bool, tonemap: str,
                        written: list[Path], ultrahdr: float | None = None, meta: PhotoMetadata | None = None) -> None:
    exif = exif_bytes(meta, f"hdrcli {__version__} ({backend})")
    if radiance and ultrahdr is not None:  # ultrahdr = headroom in stops
        display = tonemap_image(result.image, tonemap)
        written.append(write_ultrahdr(output, result.image, display, headroom_stops=ultrahdr, exif=exif).path)
        if preview_path is not None:
            written.append(write_ldr(preview_path, display, exif=exif))
    elif radiance:
        metadata = {
            "version": __version__,
            "backend": backend,
            "units": "relative radiance; 1.0 = clipping level of the shortest exposure",
            "frames": ",".join(f.name for f in bracket.frames),
            "exposures": ",".join(f"{e:.6g}" for e in bracket.relative_exposures),
            "reference": bracket.frames[bracket.reference].name,
        }
        comments = f"hdrcli {backend} merge of {len(bracket.frames)} frames, reference {metadata['reference']}"
        t0 = time.perf_counter()
        written.append(write_hdr(output, result.image, float32=float32, metadata=metadata,
                                 attributes=exr_attributes(meta, comments)))
        result.timings["exr_s"] = time.perf_counter() - t0
        if preview_path is not None:
            t0 = time.perf_counter()
            written.append(write_ldr(preview_path, tonemap_image(result.image, tonemap), exif=exif))
            result.timings["preview_s"] = time.perf_counter() - t0
    else:
        written.append(write_ldr(output, result.image, exif=exif))
        if preview_path is not None:
            written.append(write_ldr(preview_path, result.image, exif=exif))
    if save_crf is not None and result.response is not None and not bracket.frames[0].linear:
        written.append(save_response(save_crf, result.response))


def save_weight_maps(path: str | os.PathLike[str], result: FuseResult, backend: str, guard: bool = True) -> Path:
    """Write ``hdr fuse --save-weights``: one OpenEXR file of half-float channels.

    * ``ghost``: 0..1, where some frame disagrees with the reference (moving objects,
      misregistration): a retouching mask;
    * ``ghost.NAME``: the same for frame NAME (its file name without extension, dots as
      underscores; 0 for the reference);
    * ``weight.NAME``: frame NAME's share of the output (Debevec: the guarded merge
      weights; learned backends: the merge head's weights, ghost confidence included),
      summing to 1 per pixel together with
    * ``synthesis`` (learned backends): the share of the network's own synthesis, 1
      where no frame shows the scene (clipped, crushed or ghosted in every frame).
      Robertson and Mertens weigh inside their own method: ghost maps only.

    Attributes ``hdrcli:frames`` and ``hdrcli:reference`` name the frames.
    """
    from hdrcli.io.hdr import write_maps
    from hdrcli.merge.ghost import debevec_weight_maps, weight_and_ghost_maps
    from hdrcli.merge.response import self_calibrate

    bracket = result.bracket
    all_warps = result.warps or [None] * len(bracket.frames)
    used = result.frames_used or list(range(len(bracket.frames)))
    # The frames as recorded and their warps: the maps align them band by band (3 aligned
    # copies of a 12 MP bracket were 435 MB of the peak).
    frames, warps = [bracket.frames[i].pixels for i in used], [all_warps[i] for i in used]
    exposures = [bracket.relative_exposures[i] for i in used]
    if result.response is not None:
        response = result.response
    elif bracket.frames[0].linear:
        response = linear_response()
    else:  # the learned backends' response (self-calibrated on the aligned frames, then released)
        response = self_calibrate([warp_frame(f, w) for f, w in zip(frames, warps)], exposures)
    weights = debevec_weight_maps(frames, exposures, guard, warps) if backend == "debevec" else result.frame_weights
    names = [Path(bracket.frames[i].name).stem.replace(".", "_") for i in used]  # '.' separates EXR layers
    maps = weight_and_ghost_maps(frames, names, exposures, response, used.index(bracket.reference), weights, warps)
    if result.synthesis_map is not None:
        maps["synthesis"] = result.synthesis_map
    if result.crop is not None:  # the maps describe the output's pixels
        y0, y1, x0, x1 = result.crop
        maps = {name: np.ascontiguousarray(m[y0:y1, x0:x1]) for name, m in maps.items()}
    return write_maps(path, maps, {"frames": ",".join(bracket.frames[i].name for i in used),
                                   "reference": bracket.frames[bracket.reference].name})


@_all_or_nothing
def tonemap_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    method: str = DEFAULT_TONEMAP,
    exposure: float = 0.0,
    overwrite: bool = False,
    ultrahdr: bool = False,
    hdr_headroom: float = DEFAULT_HEADROOM_STOPS,
) -> Path:
    """The ``hdr tonemap`` job: any HDR file to a display image (``ultrahdr``: a gain-map JPEG
    whose base is anchored on this tone map, with ``hdr_headroom`` stops of highlights)."""
    output = Path(output)
    if ultrahdr:
        check_ultrahdr_extension(output)
        check_headroom(hdr_headroom)
    check_ldr_extension(output)
    check_outputs([output], [source], overwrite)
    hdr = read_hdr(source)
    if ultrahdr:
        return write_ultrahdr(output, hdr, tonemap_image(hdr, method, exposure), headroom_stops=hdr_headroom).path
    return write_ldr(output, tonemap_image(hdr, method, exposure))


@_all_or_nothing
def expand(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    backend: str = "twostage",
    model_size: str | None = None,
    device: str = "auto",
    runtime: str = "auto",
    tile: int | None = None,
    float32: bool = False,
    tonemap: str = DEFAULT_TONEMAP,
    preview: str | os.PathLike[str] | None = None,
    no_preview: bool = False,
    save_stack: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress=None,
    crf: str | os.PathLike[str] | None = None,
    ultrahdr: bool = False,
    hdr_headroom: float = DEFAULT_HEADROOM_STOPS,
    strip_metadata: bool = False,
    threads: int | None = None,
    timings: dict[str, float] | None = None,
    gain_map: str = "use",
) -> tuple[np.ndarray, list[Path]]:
    """The ``hdr expand`` job: one photo -> HDR (1.0 = the photo's clipping level).

    ``timings``, when given, receives seconds per stage (keys of ``STAGES``: read_s,
    load_s, network_s, exr_s, preview_s) for the CLI's summary.

    ``threads``: CPU threads for every library (None: the available cores; hdrcli.threads).

    The output is the photo linearised through its camera response (``crf``, a response
    file as written by ``hdr fuse --save-crf``; sRGB when None; RAW data are linear) where
    it is well exposed, the backend's prediction only in clipped highlights (scaled to agree
    with the photo at their borders), and guided-filter denoising in crushed shadows
    (:mod:`hdrcli.merge.expand`).

    ``gain_map``: "use" (default): a camera's gain-map JPEG (Ultra HDR, ISO 21496-1) already
    recorded its highlights, so its decoded HDR rendition is the output (1.0 = SDR white, the
    base photo's clipping level) and no network runs; "ignore": the base photo is expanded.
    """
    if gain_map not in GAIN_MAP_CHOICES:
        raise HdrError(f"unknown --gain-map '{gain_map}' (use {' or '.join(map(repr, GAIN_MAP_CHOICES))})")
    configure_threads(threads)
    from hdrcli.align import linear_to_srgb
    from hdrcli.io.frames import read_frame
    t_resolve = time.perf_counter()
    from hdrcli.runtime import make_runner  # imports torch

    info = get_backend(backend)  # imports the model modules
    resolve_s = time.perf_counter() - t_resolve
    if info.kind != "single-image":
        raise HdrError(f"'{backend}' fuses brackets; `hdr expand` takes twostage or stack")
    output = Path(output)
    if ultrahdr:  # output is an Ultra HDR JPEG; a preview only when asked for by path
        check_ultrahdr_extension(output)
        check_headroom(hdr_headroom)
        no_preview = no_preview or preview is None
    preview_path = None if no_preview else (Path(preview) if preview else default_preview_path(output))
    _check_outputs(output, preview_path, not ultrahdr, overwrite, [source, crf])
    stack_dir = Path(save_stack) if save_stack is not None else None
    if stack_dir is not None:
        if backend != "stack":
            raise HdrError("--save-stack needs the stack backend")
        if stack_dir.exists() and not stack_dir.is_dir():
            raise HdrError("--save-stack path is not a folder", stack_dir)
        # An existing folder must accept files; a new one is created beside writable parents.
        check_output_path(stack_dir / "probe.png" if stack_dir.is_dir() else stack_dir, overwrite=True)
        if stack_dir.is_dir() and not overwrite:  # an earlier stack: refused before the network runs
            earlier = sorted(stack_dir.glob(f"{glob.escape(Path(source).stem)}_ev[+-]*.png"))
            if earlier:
                raise HdrError("output file exists (use --overwrite to replace it)", earlier[0])
    response = load_response(crf) if crf is not None else None
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    frame = read_frame(source, hdr_rendition=gain_map == "use")
    image = linear_to_srgb(frame.pixels) if frame.linear else frame.pixels
    timings["read_s"] = time.perf_counter() - t0
    runner = None
    if frame.hdr_rendition is not None:
        hdr = frame.hdr_rendition
        frame.hdr_rendition = None  # one full-size float copy, not two
        warn(f"{frame.name}: a gain-map (Ultra HDR) photo: the output is the HDR rendition its camera recorded "
             f"(brightest pixel {float(hdr.max()):.3g}x SDR white), not a {backend} prediction; "
             "--gain-map ignore expands the SDR photo instead")
        if crf is not None:
            warn(f"{frame.name}: --crf is not used: the gain map gives the HDR rendition")
        units = "display-referred HDR rendition of the photo's gain map, linear; 1.0 = SDR white (its base photo's clipping level)"
        what = f"the HDR rendition recorded in {frame.name}'s gain map"
    else:
        t0 = time.perf_counter()
        runner = make_runner(backend, runtime, size=model_size, device=device, tile=tile)
        runner.prepare(*frame.pixels.shape[:2])
        timings["load_s"] = resolve_s + time.perf_counter() - t0  # "model": importing torch included
        if frame.linear and crf is not None:
            warn(f"{frame.name}: RAW data are linear; --crf is not used")
            response = None
        t0 = time.perf_counter()
        expansion = runner.expand_photo(frame.pixels, progress, response=response, linear=frame.linear)
        hdr = expansion.hdr
        timings["network_s"] = time.perf_counter() - t0
        curve = {"linear": "none (linear RAW data)", "srgb": "the sRGB curve (give --crf FILE for a measured one)",
                 "crf": f"the camera response in {Path(crf).name if crf else ''}"}[expansion.response]
        log_info(f"{frame.name}: linearised with {curve}")
        if expansion.clipped_fraction == 0:
            denoised = " (crushed shadows denoised)" if expansion.shadow.any() else ""
            warn(f"{frame.name}: no clipped pixels: the output is the linearised photo{denoised}")
        else:
            log_info(f"{frame.name}: {100 * expansion.clipped_fraction:.2f}% of pixels clipped: filled by {backend}")
        units = "relative radiance; 1.0 = clipping level of the input photo"
        what = f"hdrcli {backend} expansion of {frame.name}"
    meta = None if strip_metadata else read_metadata(frame.path)
    exif = exif_bytes(meta, f"hdrcli {__version__} ({'gain map' if runner is None else backend})")
    tidy_output_folders([output, preview_path], [source, crf])
    t0 = time.perf_counter()
    written = [write_ultrahdr(output, hdr, tonemap_image(hdr, tonemap), headroom_stops=hdr_headroom, exif=exif).path] \
        if ultrahdr else [write_hdr(output, hdr, float32=float32, attributes=exr_attributes(meta, what), metadata={
        "version": __version__, "backend": "gain map" if runner is None else backend, "source": frame.name,
        "units": units,
    })]
    timings["exr_s"] = time.perf_counter() - t0
    if preview_path is not None:
        t0 = time.perf_counter()
        written.append(write_ldr(preview_path, tonemap_image(hdr, tonemap), exif=exif))
        timings["preview_s"] = time.perf_counter() - t0
    if stack_dir is not None:
        import torch

        from hdrcli.runtime import TorchRunner

        stack_runner = runner if isinstance(runner, TorchRunner) else make_runner(backend, "torch", model_size, device)
        with torch.no_grad():
            _, stack, evs = stack_runner.model(torch.from_numpy(image).permute(2, 0, 1)[None].float(), return_stack=True)
        make_output_folder(stack_dir)
        stack_paths = [stack_dir / f"{Path(source).stem}_ev{ev:+.0f}.png" for ev in evs.tolist()]
        # The stack's names are known only now: the same checks as the other outputs (no input,
        # no other output, an existing file only with --overwrite) before anything is renamed.
        check_outputs([output, preview_path, *stack_paths], [source, crf], overwrite)
        for frame_pixels, path in zip(stack[0], stack_paths):
            written.append(write_ldr(path, frame_pixels.permute(1, 2, 0).numpy()))
    return hdr, written
