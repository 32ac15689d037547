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
    size: Annotated[Optional[str], typer.Option("--size", help="Learned backends: weights size (lite, paper).")] = None,
    device: Annotated[str, typer.Option(help="Learned backends: auto (CUDA when available), cpu or cuda.")] = "auto",
    runtime: Annotated[str, typer.Option(help="Learned backends: torch or onnx (ONNX Runtime).")] = "torch",
    tile: Annotated[Optional[int], typer.Option(help="Learned backends: tile side in pixels (bounded memory).")] = None,
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
            model_size=size, device=device, runtime=runtime, tile=tile, progress=_TileProgress(),
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


@app.command()
def expand(
    photo: Annotated[Path, typer.Argument(help="One photo: JPEG/PNG/TIFF or camera RAW.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output: .exr, .hdr, .pfm, .png/.tif (16-bit).")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="twostage or stack.")] = "twostage",
    size: Annotated[Optional[str], typer.Option("--size", help="Weights size (lite, paper).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when available), cpu or cuda.")] = "auto",
    runtime: Annotated[str, typer.Option(help="torch or onnx (ONNX Runtime).")] = "torch",
    tile: Annotated[Optional[int], typer.Option(help="Tile side in pixels (bounded memory).")] = None,
    float32: Annotated[bool, typer.Option("--float32", help="EXR with 32-bit floats (default: half).")] = False,
    tonemap: Annotated[str, typer.Option(help=f"Preview tone map: {', '.join(TONEMAPS)}.")] = "reinhard",
    preview: Annotated[Optional[Path], typer.Option(help="Preview path (default: OUTPUT with .preview.jpg).")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="Do not write a preview.")] = False,
    save_stack: Annotated[Optional[Path], typer.Option(help="stack backend: write the generated exposures here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace existing output files.")] = False,
) -> None:
    """Expand one photo to HDR with a learned single-image backend."""
    from hdrcli import pipeline

    if tonemap not in TONEMAPS:
        _fail(f"unknown tone map '{tonemap}' (use {', '.join(TONEMAPS)})")
    _, written = _run(lambda: pipeline.expand(
        photo, output, backend=backend, model_size=size, device=device, runtime=runtime, tile=tile,
        float32=float32, tonemap=tonemap,
        preview=preview, no_preview=no_preview, save_stack=save_stack, overwrite=overwrite,
        progress=_TileProgress(),
    ))
    for path in written:
        out.print(f"wrote {path}")


@app.command("eval")
def eval_cmd(
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend to score (learned fusion, debevec, robertson).")],
    data: Annotated[Path, typer.Option(help="Kalantari-layout dataset or a folder of radiance maps (held-out maps simulated).")],
    size: Annotated[Optional[str], typer.Option("--size", help="Learned backends: weights size.")] = None,
    align: Annotated[str, typer.Option(help="Alignment before merging (Kalantari scenes are pre-aligned).")] = "none",
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N scenes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score a backend on a dataset: PSNR-mu, PSNR-l, SSIM-mu, SSIM-l and time per scene."""
    from hdrcli.evaluation import evaluate_backend, summarise

    rows = _run(lambda: evaluate_backend(backend, data, limit=limit, size=size, align=align))
    mean = summarise(rows)
    if as_json:
        print(json.dumps({"backend": backend, "scenes": rows, "mean": mean}, indent=2))
        return
    table = Table(title=f"{backend} on {data} ({len(rows)} scenes)")
    for col in ("scene", "PSNR-mu", "PSNR-l", "SSIM-mu", "SSIM-l", "time s"):
        table.add_column(col, justify="right" if col != "scene" else "left")
    for r in rows + [{"scene": "[bold]mean[/]", **mean}]:
        table.add_row(r["scene"], f"{r['psnr_mu']:.2f}", f"{r['psnr_l']:.2f}", f"{r['ssim_mu']:.4f}", f"{r['ssim_l']:.4f}", f"{r['time_s']:.2f}")
    out.print(table)


@app.command()
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of a shoot (bracketed frames, any names).", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Output folder (created if missing).")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include sub-folders.")] = False,
    gap: Annotated[float, typer.Option(help="Seconds between the end of one frame and the next that start a new bracket.")] = 2.0,
    count: Annotated[Optional[int], typer.Option(help="Group consecutive frames by exactly N instead of by time.")] = None,
    name: Annotated[str, typer.Option("--name", help="Output name template: {first}, {last}, {index}, {count}.")] = "{first}-{last}",
    fmt: Annotated[str, typer.Option("--format", help="Output format: exr, hdr, png, tif.")] = "exr",
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backend (see `hdr backends`).")] = "debevec",
    align: Annotated[str, typer.Option(help="Alignment: none, mtb, ecc.")] = DEFAULT_ALIGN,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Groups fused in parallel.")] = 1,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip groups whose output exists (resume).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace existing outputs.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the groups; fuse nothing.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="JSON report path (default OUTPUT/hdr-batch-report.json).")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="No preview JPEGs.")] = False,
) -> None:
    """Find the brackets in a shoot folder and fuse each one."""
    from rich.progress import Progress

    from hdrcli import batch as batch_mod

    extension = "." + fmt.lower().lstrip(".")
    scan = _run(lambda: batch_mod.plan(folder, out_dir, recursive=recursive, gap=gap, count=count, template=name,
                                       extension=extension))
    table = Table(title=f"{len(scan.groups)} groups in {folder}")
    for col in ("#", "frames", "first", "last", "exposures", "output / problem"):
        table.add_column(col)
    for g in scan.groups:
        table.add_row(str(g.index), str(len(g.shots)), g.shots[0].path.name, g.shots[-1].path.name,
                      batch_mod.describe_group(g), f"[red]{g.problem}[/]" if g.problem else str(g.output))
    out.print(table)
    for path, reason in scan.unusable:
        err.print(f"[yellow]not grouped:[/] {path}: {reason}", highlight=False)
    if dry_run:
        return
    if not out_dir.exists():
        _run(lambda: out_dir.mkdir(parents=True))
    options = {"backend": backend, "align": align, "overwrite": overwrite, "no_preview": no_preview}
    with Progress(console=err) as progress:
        task = progress.add_task("fusing", total=sum(1 for g in scan.groups if g.problem is None))

        def tick(done: int, total: int, row: dict) -> None:
            progress.update(task, completed=done)
            if row["status"] == "failed":
                progress.console.print(f"[red]group {row['group']} failed:[/] {row['error']}", highlight=False)

        rows = batch_mod.run_batch(scan, options, jobs=jobs, skip_existing=skip_existing, progress=tick)
    report_path = report or out_dir / "hdr-batch-report.json"
    batch_mod.write_report(report_path, rows)
    grouped = [r for r in rows if r["group"] is not None]
    counts = {s: sum(1 for r in grouped if r["status"].startswith(s)) for s in ("done", "skipped", "failed")}
    out.print(f"{counts['done']} fused, {counts['skipped']} skipped, {counts['failed']} failed; report: {report_path}")
    if counts["failed"]:
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    backend: Annotated[str, typer.Option("--backend", "-b", help="Learned backend with trained weights.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="ONNX file (default weights/NAME-SIZE-tTILE.onnx).")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Weights size (lite, paper).")] = None,
    tile: Annotated[Optional[int], typer.Option(help="Static input tile side (default per backend; FFT blocks need a fixed shape in ONNX Runtime).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-f", help="Replace an existing file.")] = False,
) -> None:
    """Export a trained backend to ONNX (DO-Conv folded, static tile shape)."""
    from hdrcli.io.atomic import check_output_path
    from hdrcli.runtime.export import export_onnx, onnx_path
    from hdrcli.runtime.torch_runtime import available_sizes

    def job():
        from hdrcli.runtime.torch_runtime import DEFAULT_TILE

        side = tile or DEFAULT_TILE.get(backend, 512)
        sizes = [size] if size else available_sizes(backend)
        target = output or onnx_path(backend, sizes[0] if sizes else "lite", side)
        check_output_path(target, overwrite)
        path = export_onnx(backend, target, size=size, tile=side)
        if output is None:  # shipped exports are recorded in weights/manifest.json
            from hdrcli.runtime.export import record_export

            record_export(backend, sizes[0], side, path)
        return path

    out.print(f"wrote {_run(job)}")


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
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    run_dir: Annotated[Path, typer.Option(help="Folder for checkpoints (RUN_DIR/BACKEND-SIZE/last.pt).")] = Path("runs"),
    resume: Annotated[Optional[Path], typer.Option(help="Checkpoint to resume from.")] = None,
    reference_ev: Annotated[str, typer.Option(help="Simulated brackets: range of the reference frame's exposure in EV around auto-exposure, 'LOW,HIGH'.")] = "-3,2",
    init: Annotated[Optional[Path], typer.Option(help="Start from these weights (e.g. weights/lffnet-lite.pt) with a fresh optimiser and schedule: fine-tuning.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop (and export) after this much training time.")] = None,
    export: Annotated[bool, typer.Option(help="Write weights/BACKEND-SIZE.pt and its manifest entry at the end.")] = True,
) -> None:
    """Train a learned backend (CPU or CUDA; multi-GPU with torchrun)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hdrcli.training.trainer import TrainConfig, train as run_training

    cfg = TrainConfig(backend=backend, size=size, data=str(data), steps=steps, batch=batch, patch=patch, lr=lr,
                      val_every=val_every, seed=seed, device=device, run_dir=str(run_dir),
                      resume=str(resume) if resume else None, init=str(init) if init else None, export=export, reference_ev=_ev_range(reference_ev),
                      max_minutes=max_minutes)
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


def run() -> None:
    """Console-script entry point."""
    app(prog_name="hdr")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
