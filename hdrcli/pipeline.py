"""The jobs behind the CLI commands, as plain functions.

``fuse``: frames -> exposures -> alignment -> backend -> HDR -> writer + preview.
``tonemap``: HDR file -> display image.

Outputs are checked before any work (folder exists and is writable, nothing is
overwritten unless asked) and written atomically, so a failed job leaves no file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdrcli import __version__
from hdrcli.align import align_bracket, srgb_to_linear
from hdrcli.backends import get_backend
from hdrcli.errors import HdrError
from hdrcli.exposure import (
    Bracket,
    exif_exposures,
    make_bracket,
    read_exposure_file,
    seconds_from_ev,
)
from hdrcli.io.atomic import check_output_path
from hdrcli.io.frames import Frame, read_frames
from hdrcli.io.hdr import output_format, read_hdr, write_hdr
from hdrcli.io.ldr import check_ldr_extension, write_ldr
from hdrcli.io.scene import is_scene_folder, read_scene
from hdrcli.log import warn
from hdrcli.merge import (
    calibrate_response,
    linear_response,
    load_response,
    merge_debevec,
    merge_mertens,
    merge_robertson,
    save_response,
)
from hdrcli.tonemap import tonemap as tonemap_image

# Chosen with bench/align_choice.py on ../shared/data/brackets: ECC is never worse than MTB
# on the tripod bracket and clearly better on the hand-held one (see README).
DEFAULT_ALIGN = "ecc"


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
) -> Bracket:
    """Read frames (files, or one Kalantari scene folder) and order them by exposure."""
    given = [x for x in (exposures, ev, exposure_file) if x is not None]
    if len(given) > 1:
        raise HdrError("give only one of --exposures, --ev and --exposure-file")
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        if not is_scene_folder(inputs[0]):
            raise HdrError("folder is not a scene folder: it has no exposure.txt (EV stops, one per frame)", inputs[0])
        frames, scene_exposures = read_scene(inputs[0])
        if not given:
            return make_bracket(frames, scene_exposures, reference)
    else:
        if len(inputs) < 2:
            name = str(inputs[0]) if inputs else "(none)"
            raise HdrError(f"a bracket needs at least 2 frames, got {len(inputs)} ({name}); add the other exposures")
        frames = read_frames(list(inputs))
    if exposures is not None:
        values = exposures
    elif ev is not None:
        values = seconds_from_ev(ev)
    elif exposure_file is not None:
        values = read_exposure_file(exposure_file, [f.name for f in frames], exposure_file_format)
    elif require_exposures:
        values = exif_exposures(frames)
    else:
        try:
            values = exif_exposures(frames)
        except HdrError:
            warn("no exposure information: ordering frames by their brightness")
            values = estimate_exposures(frames)
    if len(values) != len(frames):
        raise HdrError(f"{len(values)} exposures given for {len(frames)} frames")
    return make_bracket(frames, values, reference)


@dataclass
class FuseResult:
    """What a fuse job produced."""

    image: np.ndarray
    radiance: bool
    bracket: Bracket
    response: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)


def fuse_bracket(
    bracket: Bracket,
    backend: str = "debevec",
    align: str = DEFAULT_ALIGN,
    response: np.ndarray | None = None,
    guard: bool = True,
    model_size: str | None = None,
    device: str = "auto",
    runtime: str = "torch",
    tile: int | None = None,
    progress=None,
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
        runtime: learned backends: 'torch' or 'onnx'.
        tile: learned backends: tile side (default per backend).
        progress: learned backends: called as progress(done_tiles, total_tiles).
    """
    info = get_backend(backend)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    aligned = align_bracket(bracket, align)
    timings["align_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if bracket.frames[0].linear:
        if response is not None:
            warn("camera RAW frames are linear: the given camera response is not used")
        response = linear_response()
    if info.name == "mertens":
        result = FuseResult(merge_mertens(aligned), False, bracket, None, timings)
    elif info.family == "classical":
        if response is None:
            images_u8 = [np.clip(np.rint(im * 255.0), 0, 255).astype(np.uint8) for im in aligned]
            response = calibrate_response(images_u8, bracket.exposures, method=info.name)
        merge = merge_debevec if info.name == "debevec" else merge_robertson
        hdr = merge(aligned, bracket.exposures, response, guard=guard)
        result = FuseResult(hdr, True, bracket, response, timings)
    elif info.kind != "multi-exposure":
        raise HdrError(f"'{backend}' is a single-image backend; use `hdr expand`")
    else:
        from hdrcli.runtime import make_runner

        runner = make_runner(info.name, runtime, size=model_size, device=device, tile=tile)
        # The runner re-encodes the frames to the networks' gamma-2.2 convention with the
        # given response (linear for RAW), or else the bracket's self-calibrated one.
        chosen = select_three(bracket)
        hdr = runner.fuse([aligned[i] for i in chosen], [bracket.relative_exposures[i] for i in chosen], progress,
                          response=response)
        result = FuseResult(hdr, True, bracket, None, timings)
    timings["merge_s"] = time.perf_counter() - t0
    return result


def select_three(bracket: Bracket) -> list[int]:
    """The learned backends fuse (short, reference, long): indices into the bracket.

    With more than three frames the shortest and longest are kept around the reference
    (a warning names them); output units stay those of the shortest kept frame.
    """
    n, ref = len(bracket.frames), bracket.reference
    if n < 3:
        raise HdrError(f"learned backends fuse 3 frames (short, reference, long); this bracket has {n}")
    if not 0 < ref < n - 1:
        raise HdrError("learned backends need a reference frame between the shortest and longest exposure")
    chosen = [0, ref, n - 1]
    if n > 3:
        names = ", ".join(bracket.frames[i].name for i in chosen)
        warn(f"learned backends fuse 3 of the {n} frames: {names}")
    return chosen


def _check_outputs(output: Path, preview: Path | None, radiance: bool, overwrite: bool) -> None:
    if radiance:
        output_format(output)
    else:
        check_ldr_extension(output)
    check_output_path(output, overwrite)
    if preview is not None:
        check_ldr_extension(preview)
        if preview.resolve() == output.resolve():
            raise HdrError("preview path is the output path", preview)
        check_output_path(preview, overwrite)


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
    tonemap: str = "reinhard",
    preview: str | os.PathLike[str] | None = None,
    no_preview: bool = False,
    overwrite: bool = False,
    model_size: str | None = None,
    device: str = "auto",
    runtime: str = "torch",
    tile: int | None = None,
    progress=None,
) -> tuple[FuseResult, list[Path]]:
    """The ``hdr fuse`` job. Returns the result and the files written (output first)."""
    info = get_backend(backend)
    output = Path(output)
    radiance = info.output == "radiance"
    if radiance and not no_preview:
        preview_path: Path | None = Path(preview) if preview else default_preview_path(output)
    else:
        preview_path = Path(preview) if (preview and not no_preview) else None
    if not radiance and output.suffix.lower() in (".exr", ".hdr", ".pfm"):
        raise HdrError(
            f"'{backend}' produces a display-referred LDR image, not radiance: write .png, .tif or .jpg", output
        )
    _check_outputs(output, preview_path, radiance, overwrite)
    if save_crf is not None:
        check_output_path(save_crf, overwrite)
    response = load_response(crf) if crf is not None else None
    t0 = time.perf_counter()
    bracket = load_bracket(
        inputs, exposures=exposures, ev=ev, exposure_file=exposure_file,
        exposure_file_format=exposure_file_format, reference=reference,
        require_exposures=info.needs_exposures,
    )
    read_s = time.perf_counter() - t0
    result = fuse_bracket(bracket, backend, align, response, guard, model_size, device, runtime, tile, progress)
    result.timings["read_s"] = read_s
    t0 = time.perf_counter()
    written: list[Path] = []
    if radiance:
        metadata = {
            "version": __version__,
            "backend": backend,
            "units": "relative radiance; 1.0 = clipping level of the shortest exposure",
            "frames": ",".join(f.name for f in bracket.frames),
            "exposures": ",".join(f"{e:.6g}" for e in bracket.relative_exposures),
            "reference": bracket.frames[bracket.reference].name,
        }
        written.append(write_hdr(output, result.image, float32=float32, metadata=metadata))
        if preview_path is not None:
            written.append(write_ldr(preview_path, tonemap_image(result.image, tonemap)))
    else:
        written.append(write_ldr(output, result.image))
        if preview_path is not None:
            written.append(write_ldr(preview_path, result.image))
    if save_crf is not None and result.response is not None and not bracket.frames[0].linear:
        written.append(save_response(save_crf, result.response))
    result.timings["write_s"] = time.perf_counter() - t0
    return result, written


def tonemap_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    method: str = "reinhard",
    exposure: float = 0.0,
    overwrite: bool = False,
) -> Path:
    """The ``hdr tonemap`` job: any HDR file to a display image."""
    output = Path(output)
    check_ldr_extension(output)
    check_output_path(output, overwrite)
    hdr = read_hdr(source)
    return write_ldr(output, tonemap_image(hdr, method, exposure))


def expand(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    backend: str = "twostage",
    model_size: str | None = None,
    device: str = "auto",
    runtime: str = "torch",
    tile: int | None = None,
    float32: bool = False,
    tonemap: str = "reinhard",
    preview: str | os.PathLike[str] | None = None,
    no_preview: bool = False,
    save_stack: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress=None,
) -> tuple[np.ndarray, list[Path]]:
    """The ``hdr expand`` job: one photo -> HDR (1.0 = the photo's clipping level)."""
    from hdrcli.align import linear_to_srgb
    from hdrcli.io.frames import read_frame
    from hdrcli.runtime import make_runner

    info = get_backend(backend)
    if info.kind != "single-image":
        raise HdrError(f"'{backend}' fuses brackets; `hdr expand` takes twostage or stack")
    output = Path(output)
    preview_path = None if no_preview else (Path(preview) if preview else default_preview_path(output))
    _check_outputs(output, preview_path, True, overwrite)
    stack_dir = Path(save_stack) if save_stack is not None else None
    if stack_dir is not None:
        if backend != "stack":
            raise HdrError("--save-stack needs the stack backend")
        if stack_dir.exists() and not stack_dir.is_dir():
            raise HdrError("--save-stack path is not a folder", stack_dir)
        # An existing folder must accept files; a new one is created beside writable parents.
        check_output_path(stack_dir / "probe.png" if stack_dir.is_dir() else stack_dir, overwrite=True)
    frame = read_frame(source)
    image = linear_to_srgb(frame.pixels) if frame.linear else frame.pixels
    runner = make_runner(backend, runtime, size=model_size, device=device, tile=tile)
    hdr = runner.expand(image, progress)
    written = [write_hdr(output, hdr, float32=float32, metadata={
        "version": __version__, "backend": backend, "source": frame.name,
        "units": "relative radiance; 1.0 = clipping level of the input photo",
    })]
    if preview_path is not None:
        written.append(write_ldr(preview_path, tonemap_image(hdr, tonemap)))
    if stack_dir is not None:
        import torch

        from hdrcli.runtime import TorchRunner

        stack_runner = runner if isinstance(runner, TorchRunner) else make_runner(backend, "torch", model_size, device)
        with torch.no_grad():
            _, stack, evs = stack_runner.model(torch.from_numpy(image).permute(2, 0, 1)[None].float(), return_stack=True)
        stack_dir.mkdir(parents=True, exist_ok=True)
        for frame_pixels, ev in zip(stack[0], evs.tolist()):
            path = stack_dir / f"{Path(source).stem}_ev{ev:+.0f}.png"
            written.append(write_ldr(path, frame_pixels.permute(1, 2, 0).numpy()))
    return hdr, written
