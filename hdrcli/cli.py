"""The ``hdr`` command: argument parsing and presentation only; the work is in hdrcli.pipeline."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from hdrcli import __version__
from hdrcli.align import ALIGN_METHODS
from hdrcli.backends import list_backends
from hdrcli.errors import HdrError
from hdrcli.exposure import EXPOSURE_FILE_FORMATS, describe_exposure, parse_list
from hdrcli.pipeline import DEFAULT_ALIGN
from hdrcli.tonemap import TONEMAPS

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
        err.print(f"[{style}]{label}:[/] {record.getMessage()}", highlight=False, soft_wrap=True)


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("hdrcli")
    logger.handlers = [_RichWarnings()]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def _run(job):
    """Run a job; user errors become one red line and exit 1, bugs one line and exit 3."""
    try:
        return job()
    except HdrError as exc:
        _fail(str(exc).replace("[", r"\["))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # noqa: BLE001 - the CLI promises no tracebacks
        if os.environ.get("HDRCLI_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set HDRCLI_DEBUG=1 for the traceback)", 3)


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
    table = Table(title="hdrcli backends")
    for col in ("name", "kind", "family", "output", "sizes: parameters, weights", "description"):
        table.add_column(col)
    for b in items:
        sizes = b.details.get("sizes", {})
        size_text = "\n".join(
            f"{size}: {info['params']:,} {'[green]weights[/]' if info['weights'] else '[dim]no weights[/]'}"
            for size, info in sizes.items()
        ) or "-"
        table.add_row(b.name, b.kind, b.family, b.output, size_text, b.description)
    out.print(table)


@app.command()
def fuse(
    frames: Annotated[list[Path], typer.Argument(help="Bracketed frames (any order), or one Kalantari scene folder.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output: .exr, .hdr, .pfm, .png/.tif (16-bit); mertens: .jpg/.png/.tif.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend (see `hdr backends`).")] = "debevec",
    align: Annotated[str, typer.Option(help=f"Alignment: {', '.join(ALIGN_METHODS)}.")] = DEFAULT_ALIGN,
    exposures: Annotated[Optional[str], typer.Option("--exposures", help="Exposure times in seconds, input order: 1/60,1/15,1/4.")] = None,
    ev: Annotated[Optional[str], typer.Option("--ev", "-e", help="Exposures in EV stops, input order: -2,0,2.")] = None,
    exposure_file: Annotated[Optional[Path], typer.Option(help="Exposure list file (seconds, EV, or OpenCV 'NAME 1/t').")] = None,
    exposure_file_format: Annotated[str, typer.Option(help=f"Format of --exposure-file: {', '.join(EXPOSURE_FILE_FORMATS)}.")] = "auto",
    reference: Annotated[Optional[str], typer.Option(help="Reference frame: index in exposure order (0 = shortest) or file name. Default: middle.")] = None,
    crf: Annotated[Optional[Path], typer.Option(help="Use this camera response file instead of calibrating.")] = None,
    save_crf: Annotated[Optional[Path], typer.Option(help="Save the calibrated camera response here.")] = None,
    guard: Annotated[bool, typer.Option(help="Guard clipped highlights/shadows in Debevec/Robertson merges.")] = True,
    float32: Annotated[bool, typer.Option("--float32", help="EXR with 32-bit floats (default: half).")] = False,
    tonemap: Annotated[str, typer.Option(help=f"Preview tone map: {', '.join(TONEMAPS)}.")] = "reinhard",
    preview: Annotated[Optional[Path], typer.Option(help="Preview path (default: OUTPUT with .preview.jpg).")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="Do not write a preview.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace existing output files.")] = False,
) -> None:
    """Merge bracketed exposures into an HDR image (plus a tone-mapped preview)."""
    from hdrcli import pipeline

    def job():
        return pipeline.fuse(
            frames, output, backend=backend, align=align,
            exposures=parse_list(exposures, "exposure time") if exposures else None,
            ev=parse_list(ev, "EV") if ev else None,
            exposure_file=exposure_file, exposure_file_format=exposure_file_format,
            reference=reference, crf=crf, save_crf=save_crf, guard=guard, float32=float32,
            tonemap=tonemap, preview=preview, no_preview=no_preview, overwrite=overwrite,
        )

    if tonemap not in TONEMAPS:
        _fail(f"unknown tone map '{tonemap}' (use {', '.join(TONEMAPS)})")
    result, written = _run(job)
    bracket = result.bracket
    table = Table(title=f"{backend} fusion of {len(bracket.frames)} frames", title_justify="left")
    for col in ("frame", "exposure", "EV", "ref"):
        table.add_column(col)
    for i, (f, rel) in enumerate(zip(bracket.frames, bracket.relative_exposures)):
        t = f.exif.exposure_time or bracket.exposures[i]
        table.add_row(f.name, describe_exposure(t), f"{bracket.stops[i]:+.2f}", "*" if i == bracket.reference else "")
    out.print(table)
    if result.radiance:
        import numpy as np

        lum = result.image.mean(axis=-1)
        positive = lum[lum > 0]
        if positive.size:
            lo, hi = np.percentile(positive, [0.1, 99.9])
            out.print(f"dynamic range (0.1-99.9 percentile): {np.log2(hi / max(lo, 1e-12)):.1f} stops")
    t = result.timings
    out.print(f"time: read {t['read_s']:.2f}s, align {t['align_s']:.2f}s, merge {t['merge_s']:.2f}s, write {t['write_s']:.2f}s")
    for path in written:
        out.print(f"wrote {path}")


@app.command("tonemap")
def tonemap_cmd(
    source: Annotated[Path, typer.Argument(help="HDR file: .exr, .hdr, .pfm, or hdrcli 16-bit .png/.tif.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Display image: .jpg, .png (8-bit) or .tif (16-bit).")],
    method: Annotated[str, typer.Option("--tonemap", "-t", help=f"Operator: {', '.join(TONEMAPS)}.")] = "reinhard",
    exposure: Annotated[float, typer.Option(help="Brightness change in EV stops.")] = 0.0,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace an existing output file.")] = False,
) -> None:
    """Tone map an HDR file to a viewable image."""
    from hdrcli import pipeline

    path = _run(lambda: pipeline.tonemap_file(source, output, method=method, exposure=exposure, overwrite=overwrite))
    out.print(f"wrote {path}")


def run() -> None:
    """Console-script entry point."""
    app(prog_name="hdr")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
