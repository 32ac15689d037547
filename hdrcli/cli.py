"""The ``hdr`` command: argument parsing and presentation only; the work is in hdrcli.pipeline."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hdrcli import __version__
from hdrcli.align import ALIGN_METHODS
from hdrcli.backends import list_backends
from hdrcli.errors import HdrError, Terminated, printable
from hdrcli.exposure import EXPOSURE_FILE_FORMATS, describe_exposure, parse_ev_list, parse_exposure_list
from hdrcli.pipeline import DEFAULT_ALIGN, GAIN_MAP_CHOICES
from hdrcli.tonemap import DEFAULT_TONEMAP, TONEMAPS

app = typer.Typer(
    name="hdr",
    help="High-dynamic-range imaging: fuse brackets, tone map HDR files.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class _RichWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        style = "yellow" if record.levelno >= logging.WARNING else "dim"
        label = "warning" if record.levelno >= logging.WARNING else "note"
        err.print(Text.assemble((f"{label}:", style), " ", printable(record.getMessage())), soft_wrap=True)


def _text(value: object) -> Text:
    """User-derived text (file names, EXIF, messages) for rich: no markup, no emoji codes,
    control characters and undecodable bytes escaped."""
    return Text(printable(value))


def _wrote(path: object) -> None:
    out.print(Text.assemble("wrote ", printable(path)), soft_wrap=True)


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("hdrcli")
    logger.handlers = [_RichWarnings()]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _fail(message: str, code: int = 1) -> None:
    """Print ``error: MESSAGE`` (one line, MESSAGE shown literally) and exit with ``code``."""
    err.print(Text.assemble(("error:", "bold red"), " ", printable(message)), soft_wrap=True)
    raise typer.Exit(code)


def _run(job):
    """Run a job; user errors become one red line and exit 1, bugs one line and exit 3."""
    try:
        return job()
    except HdrError as exc:
        _fail(str(exc))
    except Terminated as exc:
        _fail("terminated", 128 + exc.signum)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (typer.Exit, typer.Abort):
        raise
    except MemoryError:
        _fail("not enough memory for this job (try smaller images, --tile, or fewer --jobs)")
    except OSError as exc:  # a file the user named (outputs are checked first; this is the safety net)
        where = f"{exc.filename}: " if exc.filename is not None else ""
        _fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - the CLI promises no tracebacks
        if os.environ.get("HDRCLI_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set HDRCLI_DEBUG=1 for the traceback)", 3)


# ---------------------------------------------------------------- option checks at parse time
# Each prints one `error: --OPTION: problem` line and exits 1, before any file is read.

_DEVICES = "auto, cpu, cuda, cuda:N"
_RUNTIMES = ("torch", "onnx", "auto")  # = hdrcli.runtime.RUNTIMES + auto (not imported here: it loads torch)


def _option_error(ctx: typer.Context, param, problem: str):
    name = param.opts[0] if param is not None and param.opts else "option"
    _fail(f"{name}: {problem}")


def _check_tile(ctx: typer.Context, param, value: Optional[int]) -> Optional[int]:
    if value is None:
        return value
    from hdrcli.runtime.runner import DEFAULT_OVERLAP

    if value < 2 * DEFAULT_OVERLAP:
        _option_error(ctx, param, f"tile side {value} is too small: tiles overlap by {DEFAULT_OVERLAP} pixels on "
                                  f"each side, so use at least {2 * DEFAULT_OVERLAP}")
    return value


def _check_device(ctx: typer.Context, param, value: str) -> str:
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]{1,3})?", value):
        _option_error(ctx, param, f"unknown device '{value}' (use {_DEVICES})")
    return value


def _at_least(minimum: int, message: str):
    """An option callback refusing integers below ``minimum``; ``message`` is formatted with ``value``."""

    def check(ctx: typer.Context, param, value: Optional[int]) -> Optional[int]:
        if value is not None and value < minimum:
            _option_error(ctx, param, message.format(value=value))
        return value

    return check


_check_threads = _at_least(1, "--threads must be at least 1, got {value}")


_Threads = Annotated[Optional[int], typer.Option(
    callback=_check_threads, show_default=False,
    help="CPU threads for OpenCV, the merge, torch and ONNX Runtime (default: the cores available to this process).")]


def _check_runtime(ctx: typer.Context, param, value: str) -> str:
    if value not in _RUNTIMES:
        _option_error(ctx, param, f"unknown runtime '{value}' (use {', '.join(_RUNTIMES)})")
    return value


def _check_gain_map(ctx: typer.Context, param, value: str) -> str:
    if value not in GAIN_MAP_CHOICES:
        _option_error(ctx, param, f"unknown value '{value}' (use {' or '.join(map(repr, GAIN_MAP_CHOICES))})")
    return value


def _parsed_by(parser_name: str):
    """An option callback that checks a value list with ``hdrcli.exposure.<parser_name>`` at parse time."""

    def check(ctx: typer.Context, param, value: Optional[str]) -> Optional[str]:
        from hdrcli import exposure

        if value is not None:
            try:
                getattr(exposure, parser_name)(value)
            except HdrError as exc:
                _option_error(ctx, param, str(exc))
        return value

    return check


_check_ev = _parsed_by("parse_ev_list")
_check_exposures = _parsed_by("parse_exposure_list")


def _check_exposure_change(ctx: typer.Context, param, value: float) -> float:
    from hdrcli.tonemap import MAX_EXPOSURE_EV

    if not (math.isfinite(value) and abs(value) <= MAX_EXPOSURE_EV):
        _option_error(ctx, param, f"{value} is not a finite number of EV stops within +-{MAX_EXPOSURE_EV:g}")
    return value


def _check_gap(ctx: typer.Context, param, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        _option_error(ctx, param, f"{value} is not a number of seconds >= 0")
    return value


_check_count = _at_least(2, "{value} frames do not make a bracket: use 2 or more")


class _TileProgress:
    """A rich progress bar over tiles, shown only when an image needs more than 4 tiles."""

    def __init__(self) -> None:
        from rich.progress import Progress

        self.bar = Progress(console=err, transient=True)
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if total <= 4:
            return
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("tiles", total=total)
        self.bar.update(self.task, completed=done)
        if done == total:
            self.bar.stop()


def _set_max_pixels(ctx: typer.Context, param, value: Optional[int]) -> Optional[int]:
    """--max-pixels: the per-frame pixel budget every reader checks from the file header."""
    if value is not None:
        if value < 1:
            _option_error(ctx, param, f"must be at least 1, got {value}")
        from hdrcli.io.limits import configure

        configure(max_pixels=value)  # process-wide (and inherited by batch workers)
    return value


def _set_allow_corrupt(ctx: typer.Context, param, value: bool) -> bool:
    if value:
        from hdrcli.io.limits import configure

        configure(allow_corrupt=True)
    return value


_MaxPixels = Annotated[Optional[int], typer.Option(
    "--max-pixels", callback=_set_max_pixels, show_default=False,
    help="Most pixels (width x height) accepted per input image, checked from its header before decoding (default 200,000,000).")]
_AllowCorrupt = Annotated[bool, typer.Option(
    "--allow-corrupt", callback=_set_allow_corrupt,
    help="Use frames whose decoder reports damaged data (truncated, corrupt JPEG/PNG/TIFF) with a warning instead of an error.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"hdrcli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show notes as well as warnings.")] = False,
) -> None:
    _setup_logging(verbose)


@app.command()
def backends(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """List the fusion/expansion backends (learned ones with sizes, parameters, weights)."""
    items = list_backends()
    if as_json:
        print(json.dumps([b.as_dict() for b in items], indent=2))
        return
    def sizes_text(b, sep: str) -> str:
        return sep.join(
            f"{size}: {info['params']:,} {'[green]weights[/]' if info['weights'] else '[dim]no weights[/]'}"
            for size, info in b.details.get("sizes", {}).items()
        ) or "-"

    if out.width < 120:  # a table of six columns wraps every cell at 80 columns: one block per backend
        for b in items:
            out.print(Text.assemble((b.name, "bold"), f"  {b.kind}, {b.family}, {b.output}"))
            out.print(Padding(Text(b.description), (0, 0, 0, 2), expand=False))
            if b.details.get("sizes"):
                out.print(Padding("sizes: " + sizes_text(b, "; "), (0, 0, 0, 2), expand=False))
        return
    table = Table(title="hdrcli backends")
    for col in ("name", "kind", "family", "output", "sizes: parameters, weights", "description"):
        table.add_column(col, no_wrap=col in ("name", "kind", "family", "output"))
    for b in items:
        table.add_row(b.name, b.kind, b.family, b.output, sizes_text(b, "\n"), b.description)
    out.print(table)


def _ev_text(stops: float) -> str:
    """EV relative to the reference frame as a photographer writes it: '-2', '0', '+1.7'."""
    value = round(stops, 2)
    if value == 0:
        return "0"
    text = f"{value:+.2f}".rstrip("0").rstrip(".")
    return text


def _file_gives_seconds(path: Path, fmt: str) -> bool:
    """Whether an exposure list file holds real times (seconds or OpenCV 1/t), not EV."""
    if fmt in ("seconds", "opencv"):
        return True
    if fmt != "auto" or Path(path).name.lower() == "exposure.txt":
        return False
    try:  # the same rule as hdrcli.exposure.read_exposure_file: a value <= 0 means EV
        from hdrcli.exposure import parse_number

        rows = [line.split("#", 1)[0].split() for line in Path(path).read_text(errors="replace").splitlines()[:10_000]]
        rows = [r for r in rows if r]
        return all(len(r) == 2 for r in rows) or all(parse_number(r[0], "exposure") > 0 for r in rows)
    except (OSError, HdrError, ValueError):
        return False


def _print_dynamic_range(image) -> None:
    """The fuse/expand summary line: dynamic range above the noise floor (a merge's darkest
    0.1% is noise, which made a 3-frame phone merge read 18.6 stops)."""
    from hdrcli.dynamic_range import dynamic_range

    dr = dynamic_range(image)
    if dr.stops > 0:
        out.print(f"dynamic range: {dr.stops:.1f} stops above the noise floor ({dr.raw_stops:.1f} counting noise)")


GAP_HINT_LIMIT_S = 300.0  # single frames further apart than this are separate photos: no hint


def _gap_hint(groups: list, gap: float) -> Optional[str]:
    """When time-grouping left single frames next to each other (hand-held phone brackets
    are often seconds apart), the --gap that would join them, from their EXIF times: the
    largest pause between the end of one and the start of the next, rounded up."""
    ordered = sorted(groups, key=lambda g: g.shots[0].start)
    pauses = []
    for before, after in zip(ordered, ordered[1:]):
        if len(before.shots) == 1 and len(after.shots) == 1:
            last = before.shots[-1]
            pauses.append(after.shots[0].start.timestamp() - (last.start.timestamp() + (last.exposure or 0.0)))
    pauses = [p for p in pauses if gap < p <= GAP_HINT_LIMIT_S]
    if not pauses:
        return None
    singles = sum(1 for g in groups if len(g.shots) == 1)
    needed = math.ceil(max(pauses) + 0.5)  # a margin over the largest pause, in whole seconds
    return (f"{singles} single frames; neighbouring ones are {min(pauses):.1f}-{max(pauses):.1f} s apart (end of one "
            f"to start of the next). If they are hand-held brackets, run again with --gap {needed}.")


# Output options shared by fuse, expand and tonemap (issue 15: Ultra HDR, metadata).
_UltraHdr = Annotated[bool, typer.Option("--ultrahdr", help="Write OUTPUT (.jpg) as an Ultra HDR gain-map JPEG: SDR viewers show the tone-mapped base, HDR displays the highlights.")]
_Headroom = Annotated[float, typer.Option("--hdr-headroom", help="Ultra HDR: highlights up to this many stops above SDR white (0-5.6).")]
_StripMetadata = Annotated[bool, typer.Option("--strip-metadata", help="Carry no metadata from the input (camera, lens, date, GPS, artist, copyright).")]


@app.command()
def fuse(
    frames: Annotated[list[Path], typer.Argument(help="Bracketed frames (any order), or one Kalantari scene folder.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output: .exr, .hdr, .pfm, .png/.tif (16-bit); mertens: .jpg/.png/.tif.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend (see `hdr backends`).")] = "debevec",
    align: Annotated[str, typer.Option(help=f"Alignment: {', '.join(ALIGN_METHODS)}.")] = DEFAULT_ALIGN,
    exposures: Annotated[Optional[str], typer.Option("--exposures", callback=_check_exposures, help="Exposure times in seconds, input order: 1/60,1/15,1/4.")] = None,
    ev: Annotated[Optional[str], typer.Option("--ev", "-e", callback=_check_ev, help="Exposures in EV stops, input order: -2,0,2.")] = None,
    exposure_file: Annotated[Optional[Path], typer.Option(help="Exposure list file (seconds, EV, or OpenCV 'NAME 1/t').")] = None,
    exposure_file_format: Annotated[str, typer.Option(help=f"Format of --exposure-file: {', '.join(EXPOSURE_FILE_FORMATS)}.")] = "auto",
    reference: Annotated[Optional[str], typer.Option(help="Reference frame: index in exposure order (0 = shortest) or file name. Default: middle.")] = None,
    crf: Annotated[Optional[Path], typer.Option(help="Use this camera response file instead of calibrating.")] = None,
    save_crf: Annotated[Optional[Path], typer.Option(help="Save the calibrated camera response here.")] = None,
    save_weights: Annotated[Optional[Path], typer.Option(metavar="PATH.exr", help="Also write ghost maps and per-frame merge weights as a multi-channel EXR (see README).")] = None,
    crop: Annotated[bool, typer.Option("--crop", help="Keep only the area every aligned frame covers (no repeated edge pixels).")] = False,
    guard: Annotated[bool, typer.Option(help="Guard clipped highlights/shadows in Debevec/Robertson merges.")] = True,
    float32: Annotated[bool, typer.Option("--float32", help="EXR with 32-bit floats (default: half).")] = False,
    tonemap: Annotated[str, typer.Option(help=f"Preview tone map: {', '.join(TONEMAPS)}.")] = DEFAULT_TONEMAP,
    preview: Annotated[Optional[Path], typer.Option(help="Preview path (default: OUTPUT with .preview.jpg).")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="Do not write a preview.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace existing output files.")] = False,
    max_pixels: _MaxPixels = None,
    allow_corrupt: _AllowCorrupt = False,
    size: Annotated[Optional[str], typer.Option("--size", help="Learned backends: weights size, lite or paper. Default: the first with shipped weights (lite for all five).")] = None,
    device: Annotated[str, typer.Option(callback=_check_device, help="Learned backends: auto (CUDA when available), cpu, cuda or cuda:N.")] = "auto",
    runtime: Annotated[str, typer.Option(callback=_check_runtime, help="Learned backends: torch, onnx (ONNX Runtime) or auto (the faster one, measured per backend).")] = "auto",
    tile: Annotated[Optional[int], typer.Option(callback=_check_tile, help="Learned backends: tile side in pixels (bounded memory; >= 128). Default: 256 for dfgnet, lffnet and tunet.")] = None,
    ultrahdr: _UltraHdr = False,
    hdr_headroom: _Headroom = 3.0,
    strip_metadata: _StripMetadata = False,
    threads: _Threads = None,
) -> None:
    """Merge bracketed exposures into an HDR image (plus a tone-mapped preview)."""
    from hdrcli import pipeline

    def job():
        return pipeline.fuse(
            frames, output, backend=backend, align=align,
            exposures=parse_exposure_list(exposures) if exposures else None,
            ev=parse_ev_list(ev) if ev else None,
            exposure_file=exposure_file, exposure_file_format=exposure_file_format,
            reference=reference, crf=crf, save_crf=save_crf, guard=guard, float32=float32,
            tonemap=tonemap, preview=preview, no_preview=no_preview, overwrite=overwrite,
            model_size=size, device=device, runtime=runtime, tile=tile, progress=_TileProgress(),
            ultrahdr=ultrahdr, hdr_headroom=hdr_headroom, strip_metadata=strip_metadata, threads=threads,
            save_weights=save_weights, crop=crop,
        )

    if tonemap not in TONEMAPS:
        _fail(f"unknown tone map '{tonemap}' (use {', '.join(TONEMAPS)})")
    result, written = _run(job)
    bracket = result.bracket
    table = Table(title=_text(f"{backend} fusion of {len(bracket.frames)} frames"), title_justify="left")
    for col in ("frame", "shutter", "EV", "ref"):
        table.add_column(col, justify="right" if col == "EV" else "left")
    # Real shutter speeds only: from EXIF, or given in seconds (--exposures, a seconds or
    # OpenCV list file); EV values say nothing about the shutter, so those rows show '-'.
    times_given = exposures is not None or (exposure_file is not None and _file_gives_seconds(exposure_file, exposure_file_format))
    for i, f in enumerate(bracket.frames):
        t = f.exif.exposure_time or (bracket.exposures[i] if times_given else None)
        table.add_row(_text(f.name), describe_exposure(t) if t else "-", _ev_text(bracket.stops[i] - bracket.stops[bracket.reference]),
                      "*" if i == bracket.reference else "")
    out.print(table)
    if result.radiance:
        _print_dynamic_range(result.image)
    t = result.timings
    out.print(f"time: {pipeline.describe_timings(t)}")
    for path in written:
        _wrote(path)


@app.command()
def expand(
    photo: Annotated[Path, typer.Argument(help="One photo: JPEG/PNG/TIFF or camera RAW.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output: .exr, .hdr, .pfm, .png/.tif (16-bit).")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="twostage or stack.")] = "twostage",
    size: Annotated[Optional[str], typer.Option("--size", help="Weights size, lite or paper. Default: the first with shipped weights (lite).")] = None,
    device: Annotated[str, typer.Option(callback=_check_device, help="auto (CUDA when available), cpu, cuda or cuda:N.")] = "auto",
    runtime: Annotated[str, typer.Option(callback=_check_runtime, help="torch, onnx (ONNX Runtime) or auto (the faster one, measured per backend).")] = "auto",
    tile: Annotated[Optional[int], typer.Option(callback=_check_tile, help="Tile side in pixels (bounded memory; >= 128). Default: the whole photo up to 2 MP, else 1024-pixel tiles.")] = None,
    float32: Annotated[bool, typer.Option("--float32", help="EXR with 32-bit floats (default: half).")] = False,
    tonemap: Annotated[str, typer.Option(help=f"Preview tone map: {', '.join(TONEMAPS)}.")] = DEFAULT_TONEMAP,
    preview: Annotated[Optional[Path], typer.Option(help="Preview path (default: OUTPUT with .preview.jpg).")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="Do not write a preview.")] = False,
    save_stack: Annotated[Optional[Path], typer.Option(help="stack backend: write the generated exposures here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace existing output files.")] = False,
    max_pixels: _MaxPixels = None,
    allow_corrupt: _AllowCorrupt = False,
    crf: Annotated[Optional[Path], typer.Option(help="Camera response file (from `hdr fuse --save-crf`); default sRGB.")] = None,
    ultrahdr: _UltraHdr = False,
    hdr_headroom: _Headroom = 3.0,
    strip_metadata: _StripMetadata = False,
    threads: _Threads = None,
    gain_map: Annotated[str, typer.Option("--gain-map", callback=_check_gain_map, help="A camera's gain-map JPEG (Ultra HDR): use its recorded HDR rendition (use, default) or expand the SDR photo with the backend (ignore).")] = "use",
) -> None:
    """Expand one photo to HDR with a learned single-image backend (a gain-map JPEG: its recorded HDR)."""
    from hdrcli import pipeline

    if tonemap not in TONEMAPS:
        _fail(f"unknown tone map '{tonemap}' (use {', '.join(TONEMAPS)})")
    timings: dict[str, float] = {}
    hdr, written = _run(lambda: pipeline.expand(
        photo, output, backend=backend, model_size=size, device=device, runtime=runtime, tile=tile,
        float32=float32, tonemap=tonemap,
        preview=preview, no_preview=no_preview, save_stack=save_stack, overwrite=overwrite,
        progress=_TileProgress(), crf=crf, ultrahdr=ultrahdr, hdr_headroom=hdr_headroom, strip_metadata=strip_metadata,
        threads=threads, timings=timings, gain_map=gain_map,
    ))
    _print_dynamic_range(hdr)
    out.print(f"time: {pipeline.describe_timings(timings)}")
    for path in written:
        _wrote(path)


@app.command("eval")
def eval_cmd(
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend to score (learned fusion, debevec, robertson).")],
    data: Annotated[Optional[Path], typer.Option(help="Kalantari-layout dataset or a folder of radiance maps (held-out maps simulated).")] = None,
    real: Annotated[Optional[Path], typer.Option("--real", help="Real brackets without ground truth (folders of frames): re-exposure consistency instead.")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Learned backends: weights size.")] = None,
    align: Annotated[str, typer.Option(help="Alignment before merging (Kalantari scenes are pre-aligned).")] = "none",
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N scenes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    scale_align: Annotated[str, typer.Option(help="Scale the output to the ground truth before scoring: none (scores in the shortest exposure's units, the multi-exposure convention), median (median ratio) or lsq (least squares), as single-image HDR work does.")] = "none",
) -> None:
    """Score a backend on a dataset: PSNR-mu, PSNR-l, SSIM-mu, SSIM-l and time per scene."""
    from hdrcli.evaluation import SCALE_WARN_STOPS, evaluate_backend, summarise

    if (data is None) == (real is None):
        _fail("give one of --data (ground truth) and --real (real brackets)")
    if real is not None:
        _eval_real(backend, real, size, as_json)
        return

    rows = _run(lambda: evaluate_backend(backend, data, limit=limit, size=size, align=align, scale_align=scale_align))
    mean = summarise(rows)
    convention = ("mu-law mu=5000 and linear images clipped to [0, 1], 1 = the shortest exposure's clipping level; "
                  + ("no scale alignment" if scale_align == "none" else f"output scaled to the ground truth ({scale_align})"))
    off = [r for r in rows if r["scale"] > 0 and abs(math.log2(r["scale"])) > SCALE_WARN_STOPS]
    if off and scale_align == "none":
        factors = sorted(r["scale"] for r in off)
        err.print(Text.assemble(("warning:", "yellow"), " ", printable(
            f"the ground truth's scale differs from the output's by x{factors[0]:.3g}"
            + (f" to x{factors[-1]:.3g}" if len(factors) > 1 else "")
            + f" on {len(off)} of {len(rows)} scenes: scores are dominated by that scale; "
            "try --scale-align median")), soft_wrap=True)
    if as_json:
        print(json.dumps({"backend": backend, "convention": convention, "scale_align": scale_align,
                          "scenes": rows, "mean": mean}, indent=2))
        return
    table = Table(title=_text(f"{backend} on {data} ({len(rows)} scenes)"), caption=_text(f"Scores: {convention}. "
                  "scale: ground truth / output (median ratio) before any alignment."))
    for col in ("scene", "PSNR-mu", "PSNR-l", "SSIM-mu", "SSIM-l", "scale", "time s"):
        table.add_column(col, justify="right" if col != "scene" else "left")
    for r in rows + [{"scene": Text("mean", style="bold"), **mean}]:
        table.add_row(r["scene"] if isinstance(r["scene"], Text) else _text(r["scene"]), f"{r['psnr_mu']:.2f}", f"{r['psnr_l']:.2f}",
                      f"{r['ssim_mu']:.4f}", f"{r['ssim_l']:.4f}", f"{r['scale']:.3g}", f"{r['time_s']:.2f}")
    out.print(table)


def _eval_real(backend: str, root: Path, size: str | None, as_json: bool) -> None:
    from hdrcli.evaluation import evaluate_real

    rows = _run(lambda: evaluate_real(backend, root, size=size))
    if as_json:
        print(json.dumps({"backend": backend, "metric": "re-exposure PSNR, 8-bit domain, well-exposed pixels (5-250), "
                          "ghosted pixels of non-reference frames left out", "brackets": rows}, indent=2))
        return
    table = Table(title=_text(f"{backend}: re-exposure consistency on {root} ({len(rows)} brackets)"),
                  caption="PSNR (dB, 8-bit) of the HDR rendered back through the bracket's response at each "
                          "frame's exposure, on well-exposed pixels; ghost: share of pixels flagged in some frame.")
    for col in ("bracket", "frames", "reference dB", "all frames dB", "ghost", "time s"):
        table.add_column(col, justify="left" if col == "bracket" else "right")
    for r in rows:
        if "error" in r:
            table.add_row(_text(r["bracket"]), str(r["frames"]), _text(f"not fused: {r['error']}"), "", "", "")
            continue
        table.add_row(_text(r["bracket"]), str(r["frames"]), f"{r['reexposure_ref_db']:.2f}",
                      f"{r['reexposure_mean_db']:.2f}", f"{r['ghost_fraction']:.1%}", f"{r['time_s']:.2f}")
    out.print(table)


@app.command()
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of a shoot (bracketed frames, any names).", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created if missing).")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include sub-folders.")] = False,
    gap: Annotated[float, typer.Option(callback=_check_gap, help="Seconds between the end of one frame and the next that start a new bracket.")] = 2.0,
    count: Annotated[Optional[int], typer.Option(callback=_check_count, help="Group consecutive frames by exactly N instead of by time.")] = None,
    name: Annotated[str, typer.Option("--name", help="Output name template: {first}, {last}, {index}, {count}.")] = "{first}-{last}",
    fmt: Annotated[str, typer.Option("--format", help="Output format: exr, hdr, pfm, png, tif, or ultrahdr "
                                     "(gain-map .jpg, no separate preview).")] = "exr",
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend (see `hdr backends`).")] = "debevec",
    align: Annotated[str, typer.Option(help="Alignment: none, mtb, ecc.")] = DEFAULT_ALIGN,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Groups fused in parallel.")] = 1,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip groups whose output exists (resume).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace existing outputs.")] = False,
    max_pixels: _MaxPixels = None,
    allow_corrupt: _AllowCorrupt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the groups; fuse nothing.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="JSON report path (default OUTPUT/hdr-batch-report.json).")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="No preview JPEGs.")] = False,
    engine: Annotated[str, typer.Option("--engine", metavar="local|ray", help="local: worker processes on this "
                                        "machine; ray: Ray tasks (pip install 'hdrcli\\[cluster]').")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", metavar="ADDRESS", help="Ray cluster: HOST:PORT or "
                                                   "ray://HOST:10001 (default: a local Ray instance with --jobs "
                                                   "CPUs).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Threads per job (default: available "
                                                   "cores divided among --jobs).")] = None,
    save_weights: Annotated[bool, typer.Option("--save-weights", help="Also write NAME.weights.exr (ghost maps and "
                                               "merge weights, as hdr fuse --save-weights); the contact sheet shows "
                                               "the ghost map.")] = False,
    crop: Annotated[bool, typer.Option("--crop", help="Keep only the area every aligned frame covers "
                                       "(as hdr fuse --crop).")] = False,
) -> None:
    """Find the brackets in a shoot folder and fuse each one."""
    from rich.progress import Progress

    from hdrcli import batch as batch_mod

    fmt = fmt.lower().lstrip(".")
    if fmt not in batch_mod.FORMATS:
        _fail(f"unknown --format '{printable(fmt)}' ({', '.join(batch_mod.FORMATS)})")
    ultrahdr = fmt == "ultrahdr"
    extension = ".jpg" if ultrahdr else "." + fmt
    if engine not in ("local", "ray"):
        _fail(f"unknown --engine '{printable(engine)}' (local, ray)")
    if address is not None and engine != "ray":
        _fail("--address needs --engine ray")
    scan = _run(lambda: batch_mod.plan(folder, out_dir, recursive=recursive, gap=gap, count=count, template=name,
                                       extension=extension, backend=backend, preview=not no_preview and not ultrahdr,
                                       weights=save_weights))
    report_path = _run(lambda: batch_mod.check_batch_files(scan, out_dir, report, overwrite))
    table = Table(title=_text(f"{len(scan.groups)} groups in {folder}"))
    for col in ("#", "frames", "first", "last", "exposures", "output / problem"):
        table.add_column(col)
    for g in scan.groups:
        table.add_row(str(g.index), str(len(g.shots)), _text(g.shots[0].path.name), _text(g.shots[-1].path.name),
                      _text(batch_mod.describe_group(g)), Text(printable(g.problem), style="red") if g.problem else _text(g.output))
    out.print(table)
    hint = None if count else _gap_hint(scan.groups, gap)
    if hint:
        err.print(Text.assemble(("hint:", "cyan"), " ", hint), soft_wrap=True)
    for path, reason in scan.unusable:
        err.print(Text.assemble(("not grouped:", "yellow"), " ", printable(f"{path}: {reason}")), soft_wrap=True)
    if dry_run:
        return
    options = {"backend": backend, "align": align, "overwrite": overwrite, "no_preview": no_preview or ultrahdr}
    if ultrahdr:
        options["ultrahdr"] = True
    if crop:
        options["crop"] = True
    with Progress(console=err, transient=True) as progress:  # transient: an error stays the last line
        task = progress.add_task("fusing", total=sum(1 for g in scan.groups if g.problem is None))

        def tick(done: int, total: int, row: dict) -> None:
            progress.update(task, completed=done, total=total)
            if row["status"] == "failed":
                progress.console.print(Text.assemble((f"group {row['group']} failed:", "red"), " ", printable(row["error"])),
                                       soft_wrap=True)

        rows = _run(lambda: batch_mod.run_batch(scan, options, jobs=jobs, skip_existing=skip_existing, progress=tick,
                                                out_dir=out_dir, report=report_path, engine=engine, address=address,
                                                threads=threads))
    grouped = [r for r in rows if r["group"] is not None]
    counts = {s: sum(1 for r in grouped if r["status"].startswith(s)) for s in ("done", "skipped", "failed")}
    out.print(_text(f"{counts['done']} fused, {counts['skipped']} skipped, {counts['failed']} failed; report: {report_path}; "
                    f"contact sheet: {out_dir / batch_mod.INDEX_NAME}"), soft_wrap=True)
    if counts["failed"]:
        raise typer.Exit(1)


def _info_lines(d: dict) -> list[str]:
    """Human-readable summary of hdrcli.info.describe's dict (plain text, no markup)."""
    size = f"{d['bytes'] / 1e6:.2f} MB" if d["bytes"] >= 1e5 else f"{d['bytes']} bytes"
    kind = ", ".join(str(x) for x in (d.get("format"), f"{d.get('width')}x{d.get('height')}",
                                       "".join(d.get("channels") or []) or None, d.get("dtype"),
                                       d.get("compression"), size) if x)
    lines = [f"{d['file']}: {kind}"]
    dr = d.get("dynamic_range", {})
    if d.get("max") is not None:
        lines.append(f"  values: min {d['min']:.4g}, max {d['max']:.4g}" + (f" ({d['values']})" if d.get("values") else ""))
        floor = f", noise floor {dr['noise_floor']:.3g}" if dr.get("noise_floor") else ""
        lines.append(f"  dynamic range: {d['dynamic_range_stops']:.1f} stops (luminance 0.1-99.9 percentile above "
                     f"the noise floor{floor}; {dr.get('raw_stops', 0):.1f} stops counting every pixel)")
    for key, label in (("exif", "exif"), ("attributes", "attributes"), ("hdrcli", "hdrcli"), ("raw", "raw")):
        if d.get(key):
            lines.append(f"  {label}: " + "; ".join(f"{k} {v}" for k, v in d[key].items()))
    gm = d.get("gain_map")
    if gm:
        iso = gm.get("iso21496", {})
        parts = [f"max content boost {gm['max_content_boost']:g}x ({iso.get('gain_map_max', ['?'])[0]} stops)"
                 if "max_content_boost" in gm else "present"]
        if iso.get("alternate_hdr_headroom") is not None:
            parts.append(f"HDR capacity {iso.get('base_hdr_headroom', 0):g}-{iso['alternate_hdr_headroom']:.3g} stops")
        for k in ("gamma", "base_offset", "alternate_offset"):
            if k in iso:
                parts.append(f"{k.replace('_', ' ')} {iso[k]}")
        if gm.get("xmp_hdrgm"):
            parts.append("XMP " + ", ".join(f"{k}={v}" for k, v in gm["xmp_hdrgm"].items()))
        lines.append("  gain map: " + "; ".join(parts))
    return lines


@app.command("info")
def info_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image files: EXR, HDR, PFM, hdrcli PNG/TIFF, Ultra HDR or plain JPEG, PNG, TIFF, camera RAW.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (a list, one object per file; failures have 'error').")] = False,
) -> None:
    """What an image file is: format, size, channels, value range, dynamic range, metadata."""
    from hdrcli.info import describe

    results, failed = [], False
    for path in files:
        try:
            results.append(describe(path))
        except HdrError as exc:
            failed = True
            results.append({"file": str(path), "error": str(exc)})
            if not as_json:
                err.print(Text.assemble(Text("error: ", style="bold red"), printable(str(exc))), soft_wrap=True)
        except Exception as exc:  # noqa: BLE001 - one line per file, never a traceback
            if os.environ.get("HDRCLI_DEBUG"):
                raise
            failed = True
            message = f"{path}: cannot describe ({type(exc).__name__}: {exc})"
            results.append({"file": str(path), "error": message})
            if not as_json:
                err.print(Text.assemble(Text("error: ", style="bold red"), printable(message)), soft_wrap=True)
            continue
        else:
            if not as_json:
                for line in _info_lines(results[-1]):
                    out.print(_text(line), soft_wrap=True)
    if as_json:
        print(json.dumps(results, indent=2))
    if failed:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    backend: Annotated[str, typer.Option("--backend", "-b", help="Learned backend with trained weights.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="One ONNX file (default: weights/NAME-SIZE-tTILE.onnx and, for bracket networks, weights/NAME-SIZE-synthesis.onnx and weights/NAME-SIZE-head.onnx; for twostage and stack weights/NAME-SIZE-whole.onnx).")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Weights size (lite, paper).")] = None,
    tile: Annotated[Optional[int], typer.Option(callback=_check_tile, help="Static input tile side (default per backend; FFT blocks need a fixed shape in ONNX Runtime).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace an existing file.")] = False,
    synthesis: Annotated[bool, typer.Option("--synthesis", help="Export a bracket network's synthesis and ghost gate for any size (the reduced-resolution part of large photos) instead of tiles.")] = False,
    head: Annotated[bool, typer.Option("--head", help="Export a bracket network's merge head for any size (run per full-resolution tile of large photos) instead of tiles.")] = False,
    whole: Annotated[bool, typer.Option("--whole", help="Export a single-image backend for a whole photo of any size (twostage; stack: its exposure stack) instead of tiles.")] = False,
) -> None:
    """Export a trained backend to ONNX (DO-Conv folded): its tile graph and, for the bracket
    networks, its synthesis and merge head graphs, for twostage and stack the whole-photo graph (default),
    or the one asked for (--tile, --synthesis, --head, --whole, -o)."""
    from hdrcli.runtime.export import export_backend

    def job():
        return export_backend(backend, output=output, size=size, tile=tile, synthesis=synthesis, head=head,
                              whole=whole, overwrite=overwrite)

    for path in _run(job):
        _wrote(path)


@app.command("tonemap")
def tonemap_cmd(
    source: Annotated[Path, typer.Argument(help="HDR file: .exr, .hdr, .pfm, or hdrcli 16-bit .png/.tif.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Display image: .jpg, .png (8-bit) or .tif (16-bit).")],
    method: Annotated[str, typer.Option("--tonemap", "-t", help=f"Operator: {', '.join(TONEMAPS)}.")] = DEFAULT_TONEMAP,
    exposure: Annotated[float, typer.Option(callback=_check_exposure_change, help="Brightness change in EV stops (within +-64).")] = 0.0,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace an existing output file.")] = False,
    max_pixels: _MaxPixels = None,
    ultrahdr: _UltraHdr = False,
    hdr_headroom: _Headroom = 3.0,
) -> None:
    """Tone map an HDR file to a viewable image (or an Ultra HDR JPEG with --ultrahdr)."""
    from hdrcli import pipeline

    path = _run(lambda: pipeline.tonemap_file(source, output, method=method, exposure=exposure, overwrite=overwrite,
                                              ultrahdr=ultrahdr, hdr_headroom=hdr_headroom))
    _wrote(path)


def _ev_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected 'LOW,HIGH' in EV, got {text!r}") from None
    if not low <= high:
        raise typer.BadParameter(f"LOW must not exceed HIGH, got {text!r}")
    return low, high


@app.command()
def train(
    backend: Annotated[str, typer.Option("--backend", "-b", help="Learned backend to train (see `hdr backends`).")],
    size: Annotated[str, typer.Option(help="Model size: lite or paper.")] = "lite",
    data: Annotated[Path, typer.Option(help="Radiance maps folder (camera simulation) or Kalantari-layout dataset.")] = Path("../shared/data/radiance"),
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    batch: Annotated[int, typer.Option(help="Patches per step.")] = 8,
    patch: Annotated[int, typer.Option(help="Patch side in pixels.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate (cosine decay to 5%).")] = 2e-4,
    val_every: Annotated[int, typer.Option(help="Validate and checkpoint every N steps.")] = 250,
    seed: Annotated[int, typer.Option(help="Random seed (data, initialisation).")] = 0,
    device: Annotated[str, typer.Option(callback=_check_device, help="auto, cpu, cuda or cuda:N.")] = "auto",
    run_dir: Annotated[Path, typer.Option(help="Folder for checkpoints (RUN_DIR/BACKEND-SIZE/last.pt).")] = Path("runs"),
    resume: Annotated[Optional[Path], typer.Option(help="Checkpoint to resume from.")] = None,
    reference_ev: Annotated[str, typer.Option(help="Simulated brackets: range of the reference frame's exposure in EV around auto-exposure, 'LOW,HIGH'.")] = "-3,2",
    init: Annotated[Optional[Path], typer.Option(help="Start from these weights (e.g. weights/lffnet-lite.pt) with a fresh optimiser and schedule: fine-tuning.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop (and export) after this much training time.")] = None,
    export: Annotated[Optional[Path], typer.Option("--export", help="Write the trained weights here (.pt; default RUN_DIR/BACKEND-SIZE/BACKEND-SIZE.pt, never weights/ unless asked).")] = None,
    no_export: Annotated[bool, typer.Option("--no-export", help="Write only the checkpoint, no weights file.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Allow replacing an existing --export file; without --export: replace the shipped weights/BACKEND-SIZE.pt (history kept in the manifest, ONNX exports marked stale).")] = False,
    val_scenes: Annotated[Optional[int], typer.Option("--val-scenes", min=1, help="Validate on the first N held-out scenes only (default all: 40 brackets or 20 single images).")] = None,
    realism: Annotated[bool, typer.Option("--realism/--no-realism", help="Simulated data with phone processing (local tone mapping, sharpening, JPEG), high ISO and night scenes with large lights on a share of samples; --no-realism: a plain camera (curve, noise, 8 bits).")] = True,
) -> None:
    """Train a learned backend (CPU or CUDA; multi-GPU with torchrun)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hdrcli.training.trainer import TrainConfig, train as run_training

    cfg = TrainConfig(backend=backend, size=size, data=str(data), steps=steps, batch=batch, patch=patch, lr=lr,
                      val_every=val_every, seed=seed, device=device, run_dir=str(run_dir),
                      resume=str(resume) if resume else None, init=str(init) if init else None, reference_ev=_ev_range(reference_ev),
                      max_minutes=max_minutes, export=not no_export, export_path=str(export) if export else None,
                      overwrite=overwrite, val_scenes=val_scenes, realism=realism)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=err)
    with progress:
        task = progress.add_task(f"{backend}-{size}", total=steps, status="", completed=0)

        plain = not err.is_terminal  # logs (nohup, CI): one line every 50 steps instead of a live bar

        def report(info: dict) -> None:
            status = f"loss {info['loss']:.4f}  {info['patches_per_s']:.1f} patches/s"
            if plain and (info["step"] % 50 == 0 or info["step"] == info["steps"]):
                progress.console.print(f"step {info['step']}/{info['steps']}: {status}, {info['elapsed_s'] / 60:.1f} min")
            if "validation" in info:
                v = info["validation"]
                progress.console.print(f"step {info['step']}: validation PSNR-mu {v['psnr_mu']:.2f} dB, PSNR-l {v['psnr_l']:.2f} dB, SSIM-mu {v['ssim_mu']:.4f}")
            progress.update(task, completed=info["step"], status=status)

        summary = _run(lambda: run_training(cfg, report))
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        out.print_json(data=summary)


# ----------------------------------------------------------------- help text and -v everywhere
# Applied to every command registered above (and to the group), so options other modules
# add get the same treatment: `-v/--verbose` is accepted after the command too, and help
# shows metavars a photographer reads (FRAMES..., PATH, N) instead of Typer's <list[Path]>,
# <str>, <bool>. An option's own metavar, where one is declared, is kept.

_METAVARS = {
    "--output": "PATH", "--backend": "NAME", "--align": "none|mtb|ecc", "--exposures": "T,T,...",
    "--ev": "EV,EV,...", "--exposure-file": "FILE", "--exposure-file-format": "FORMAT",
    "--reference": "INDEX|NAME", "--crf": "FILE", "--save-crf": "FILE", "--tonemap": "NAME",
    "--preview": "PATH", "--size": "lite|paper", "--device": "auto|cpu|cuda", "--runtime": "torch|onnx",
    "--tile": "PIXELS", "--max-pixels": "N", "--hdr-headroom": "STOPS", "--threads": "N", "--gap": "SECONDS",
    "--count": "N", "--name": "TEMPLATE", "--format": "FORMAT", "--jobs": "N", "--report": "FILE",
    "--data": "FOLDER", "--limit": "N", "--exposure": "EV", "--steps": "N", "--batch": "N", "--patch": "PIXELS",
    "--lr": "RATE", "--val-every": "N", "--seed": "N", "--run-dir": "FOLDER", "--resume": "FILE",
    "--reference-ev": "LOW,HIGH", "--init": "FILE", "--max-minutes": "MINUTES", "--engine": "NAME",
    "--scale-align": "METHOD", "--save-stack": "FOLDER", "--real": "FOLDER",
}
_TYPE_METAVARS = {"int": "N", "float": "X", "path": "PATH", "str": "TEXT", "text": "TEXT"}


def _verbose_callback(ctx, param, value: bool) -> bool:
    if value:  # after the group's callback has set the level from a `-v` before the command
        _setup_logging(True)
    return value


_verbose_app = typer.Typer()


@_verbose_app.command()
def _verbose_holder(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", callback=_verbose_callback, expose_value=False,
                                          help="Show notes as well as warnings.")] = False,
) -> None:  # pragma: no cover - only its parameter is used
    pass


class _Argument(typer.core.TyperArgument):
    """An argument shown by its metavar alone: 'FRAMES...' in the usage line (not
    '{frames}...') and no '<list[Path]>' type column in the help."""

    def display_type_rich(self, ctx) -> None:  # typer >= 0.29 asks the argument
        return None

    def get_usage_pieces(self, ctx) -> list[str]:
        return [self.metavar if self.required else f"[{self.metavar}]"]


def _without_type_label(param_type) -> None:
    """Typer < 0.29 labels an argument's help by its type's metavar ('<path>'): make it empty."""
    base = type(param_type)
    param_type.__class__ = type(f"Unlabelled{base.__name__}", (base,), {"get_metavar": lambda self, *a, **k: ""})


def _readable_metavars(params: list) -> None:
    for param in params:
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""  # a flag takes no value: show none
            continue
        if isinstance(param, typer.core.TyperArgument):
            base = param.name.upper().replace("_", "-")
            param.metavar = f"{base}..." if param.nargs != 1 else base
            param.__class__ = _Argument
            if getattr(param, "type", None) is not None:  # typer >= 0.29 has no click type here
                _without_type_label(param.type)
            continue
        long = next((o for o in param.opts if o.startswith("--")), "")
        try:  # Typer's own label: '<int>', '<path>', '<a|b>' (choices are kept as they read well)
            label = str(param.display_type(None)).strip("<>")
        except Exception:  # noqa: BLE001 - a label is cosmetic; never fail the CLI for it
            label = "text"
        param.metavar = _METAVARS.get(long) or _TYPE_METAVARS.get(label, label.upper() if "|" in label else "VALUE")


class _BareHelpOption:
    """Mixin: --help shows no metavar placeholder."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class _Command(_BareHelpOption, typer.core.TyperCommand):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not any("--verbose" in p.opts for p in self.params):
            self.params.append(typer.main.get_command(_verbose_app).params[0])
        _readable_metavars(self.params)


class _Group(_BareHelpOption, typer.core.TyperGroup):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _readable_metavars(self.params)


for _info in app.registered_commands:
    if _info.cls in (None, typer.core.TyperCommand):  # a command's own class, where it has one, is kept
        _info.cls = _Command
app.info.cls = _Group


def _on_sigterm(signum: int, frame) -> None:
    # Raise into the running job so that temporary files are removed as on Ctrl-C; a second
    # SIGTERM during that clean-up gets the default action (the process ends at once).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated(signum)


def run() -> None:
    """Console-script entry point: SIGTERM cleans up like Ctrl-C; output never fails on encoding."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # e.g. PYTHONIOENCODING=ascii and a non-ASCII name
        except (AttributeError, ValueError):
            pass
    try:
        code = app(prog_name="hdr", standalone_mode=False)
    except typer.TyperException as exc:  # Typer's (vendored click's) usage errors
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `hdr` or `hdr fuse` alone: the help text
            err.print(message, markup=False, highlight=False)
            sys.exit(2)
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        # one line, like every other error
        err.print(Text.assemble(("error:", "bold red"), " ", printable(message + where)), soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        sys.exit(130)
    except Terminated as exc:  # outside a job (while Typer builds the command): nothing was written
        err.print(Text.assemble(("error:", "bold red"), " terminated"), soft_wrap=True)
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        err.print(Text.assemble(("error:", "bold red"), " interrupted"), soft_wrap=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
