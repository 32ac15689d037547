"""Finding and fusing the brackets of a whole shoot (``hdr batch``).

Frames are read for their EXIF only (capture time, exposure, camera), sorted by capture
time, and grouped:

* ``gap`` (default): a new bracket starts when a frame begins more than ``gap`` seconds
  after the *end* of the previous one (its capture time plus its exposure time), so long
  exposures do not split their own bracket; a group is also split where an exposure
  value repeats (two brackets shot back to back at the same settings);
* ``count``: consecutive groups of exactly N frames.

Frames without a capture time or exposure time are reported, never guessed. A group with
a single frame is reported and skipped; a group mixing cameras fails with a clear line.

Outputs (``--name`` template) must be plain file names inside the output folder, distinct
from each other, from every input frame and from the batch's own report and contact sheet:
all checked when planning, before anything is written. Groups are fused in parallel
(worker processes that die with the batch, each with cores // jobs threads, or Ray tasks
with ``engine="ray"``, see :mod:`hdrcli.batch_ray`); one failing group does not stop the
others. The JSON report and ``OUT/index.html`` (:mod:`hdrcli.contact_sheet`) are rewritten
atomically at the start and after every group, so an interrupted run leaves both; temp
files that a killed run left in the output folder are removed at the next start.
"""

from __future__ import annotations

import ctypes
import inspect
import json
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hdrcli.errors import HdrError
from hdrcli.exposure import describe_exposure
from hdrcli.io.atomic import TEMP_PREFIX, check_output_path, same_file
from hdrcli.io.exif import ExifInfo, read_exif
from hdrcli.io.frames import LDR_EXTENSIONS, RAW_EXTENSIONS

FORMATS = ("exr", "hdr", "pfm", "png", "tif", "tiff", "jpg", "ultrahdr")  # --format; jpg for display-referred backends
REPORT_NAME = "hdr-batch-report.json"
INDEX_NAME = "index.html"
# A temp file's random part (tempfile.mkstemp) plus the dots around it: names must leave room.
_TEMP_EXTRA = 12
_NAME_MAX = 255


@dataclass
class ShotInfo:
    path: Path
    exif: ExifInfo

    @property
    def start(self) -> datetime | None:
        return self.exif.datetime_original

    @property
    def exposure(self) -> float | None:
        return self.exif.exposure_time


@dataclass
class Group:
    index: int
    shots: list[ShotInfo]
    output: Path | None = None
    problem: str | None = None
    preview: Path | None = None
    weights: Path | None = None  # ghost and merge-weight maps (``--save-weights``)

    @property
    def outputs(self) -> list[Path]:
        """Every file fusing this group writes (HDR output, then preview and maps if any)."""
        return [p for p in (self.output, self.preview, self.weights) if p is not None]

    def options(self, options: dict) -> dict:
        """The fuse options of this group (its own weight-map path)."""
        return dict(options, save_weights=str(self.weights)) if self.weights is not None else options

    @property
    def first(self) -> str:
        return self.shots[0].path.stem

    @property
    def last(self) -> str:
        return self.shots[-1].path.stem


@dataclass
class Scan:
    groups: list[Group]
    unusable: list[tuple[Path, str]] = field(default_factory=list)


def find_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise HdrError("no such folder", folder)
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    wanted = LDR_EXTENSIONS | RAW_EXTENSIONS
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith("."))


def scan_shots(paths: list[Path]) -> tuple[list[ShotInfo], list[tuple[Path, str]]]:
    shots, unusable = [], []
    for path in paths:
        try:
            exif = read_exif(path)
        except OSError as exc:
            unusable.append((path, f"cannot read ({exc.strerror or exc})"))
            continue
        except HdrError as exc:  # a special file, no permission: reported, the scan goes on
            message = str(exc)
            unusable.append((path, message[len(str(path)) + 2:] if message.startswith(f"{path}: ") else message))
            continue
        if exif.datetime_original is None:
            unusable.append((path, "no capture time in EXIF"))
        elif exif.exposure_time is None:
            unusable.append((path, "no exposure time in EXIF"))
        else:
            shots.append(ShotInfo(path, exif))
    shots.sort(key=lambda s: (s.start, s.path.name))
    return shots, unusable


def group_shots(shots: list[ShotInfo], gap: float = 2.0, count: int | None = None) -> list[list[ShotInfo]]:
    """Split time-sorted shots into brackets (see module docstring)."""
    if count is not None:
        if count < 2:
            raise HdrError("--count must be at least 2")
        return [shots[i : i + count] for i in range(0, len(shots), count)]
    groups: list[list[ShotInfo]] = []
    for shot in shots:
        if groups:
            previous = groups[-1][-1]
            end = previous.start.timestamp() + (previous.exposure or 0.0)
            repeated = any(abs(s.exposure / shot.exposure - 1) < 1e-3 for s in groups[-1])
            if shot.start.timestamp() - end <= gap and not repeated:
                groups[-1].append(shot)
                continue
        groups.append([shot])
    return groups


_TEMPLATE_FIELDS = ("first", "last", "index", "count")


def _check_template(template: str) -> None:
    """Only the documented fields, with at most a small width (``{index:03d}``): a spec such as
    ``{first:>999999999}`` would otherwise allocate gigabytes."""
    import string

    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise HdrError(f"bad --name template '{template}': {exc}") from None
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in _TEMPLATE_FIELDS:
            raise HdrError(f"bad --name template '{template}': unknown field {{{field_name}}} "
                           f"(use {', '.join('{' + f + '}' for f in _TEMPLATE_FIELDS)})")
        if conversion or not re.fullmatch(r"0?\d{0,2}d?", spec or ""):
            raise HdrError(f"bad --name template '{template}': format '{{{field_name}:{spec}}}' (only a width such as {{index:03d}})")


def _confined_output(out_dir: Path, name: str, extension: str, template: str) -> Path:
    """``OUT/name+extension``, refused unless it is a plain file name inside ``out_dir``.

    Refuses path separators, ``.``/``..``, hidden names (they look like hdrcli's temp
    files), control characters, names too long for a temp file beside them, and paths
    that resolve outside ``out_dir`` (an existing symlink pointing elsewhere).
    """
    filename = f"{name}{extension}"
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    bad = None
    if not name or name in (".", ".."):
        bad = "gives an empty name or '.'/'..'"
    elif any(sep in filename for sep in seps):
        bad = "gives a path, not a file name (no '/' allowed: outputs stay inside the output folder)"
    elif filename.startswith("."):
        bad = "gives a hidden name (starting with '.')"
    elif any(ord(c) < 32 or ord(c) == 127 for c in filename):
        bad = "gives a name with control characters"
    elif len(os.fsencode(filename + ".preview.jpg")) + _TEMP_EXTRA > _NAME_MAX:
        bad = f"gives a name too long for this file system ({len(filename)} characters)"
    if bad:
        raise HdrError(f"--name template '{template}' {bad}: {filename!r}")
    path = out_dir / filename
    root = out_dir.resolve()
    if path.resolve().parent != root:
        raise HdrError(f"--name template '{template}' gives an output outside the output folder: {filename!r}", path)
    return path


def plan(folder: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, recursive: bool = False, gap: float = 2.0,
         count: int | None = None, template: str = "{first}-{last}", extension: str = ".exr",
         backend: str | None = None, preview: bool = True, weights: bool = False) -> Scan:
    """Scan a folder and decide the groups and their output paths (no fusing, nothing written).

    Every output (and its preview, for radiance backends when ``preview``) must be a plain
    file inside ``out_dir``, distinct from every other group's and from every input frame.
    """
    from hdrcli.backends import get_backend
    from hdrcli.pipeline import default_preview_path

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise HdrError("output folder is not a folder", out_dir)
    if any(sep in extension for sep in ("/", os.sep)) or not re.fullmatch(r"\.[A-Za-z0-9_-]{1,16}", extension):
        raise HdrError(f"bad --format '{extension.lstrip('.')}'")
    if os.path.isabs(template) or "/" in template or os.sep in template:
        raise HdrError(f"--name template '{template}' is a path: give a file name (outputs stay inside {out_dir})")
    _check_template(template)
    with_preview = preview and (backend is None or get_backend(backend).output == "radiance")
    paths = find_images(folder, recursive)
    root = out_dir.resolve()
    if recursive and root != Path(folder).resolve():  # an output folder inside the shoot: its files are not frames
        paths = [p for p in paths if not p.resolve().is_relative_to(root)]
    if not paths:
        raise HdrError("no images (JPEG, PNG, TIFF or camera RAW) in folder", folder)
    shots, unusable = scan_shots(paths)
    if not shots:
        raise HdrError(f"no recognisable brackets: none of the {len(paths)} images has EXIF capture and exposure times", folder)
    groups = []
    for index, members in enumerate(group_shots(shots, gap, count), start=1):
        group = Group(index, members)
        cameras = sorted({s.exif.camera or "unknown camera" for s in members})
        if len(members) < 2:
            group.problem = "single frame, not a bracket"
        elif len(cameras) > 1:
            group.problem = f"mixes cameras ({', '.join(cameras)})"
        try:
            name = template.format(first=group.first, last=group.last, index=index, count=len(members))
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise HdrError(f"bad --name template '{template}': {exc}") from None
        group.output = _confined_output(out_dir, name, extension, template)
        if with_preview:
            group.preview = default_preview_path(group.output)
        if weights:
            group.weights = group.output.with_name(f"{group.output.stem}.weights.exr")
        groups.append(group)
    seen: dict[Path, int] = {}
    inputs = {p.resolve() for p in paths}
    reserved = {(out_dir / REPORT_NAME).resolve(), (out_dir / INDEX_NAME).resolve()}
    for group in groups:
        if group.problem is not None:
            continue
        for path in group.outputs:
            key = path.resolve()
            if key in seen:
                raise HdrError(f"--name template '{template}' gives groups {seen[key]} and {group.index} the same "
                               f"output {path.name}; add {{index}}")
            if key in inputs:
                raise HdrError(f"output of group {group.index} would replace an input frame", path)
            if key in reserved:
                raise HdrError(f"output of group {group.index} would replace the batch's own {path.name}", path)
            seen[key] = group.index
    return Scan(groups, unusable)


# ---------------------------------------------------------------------------------------
# Outputs of the batch itself and of earlier runs


def _temp_pattern(path: Path) -> re.Pattern[str]:
    """Names of the temp files :func:`hdrcli.io.atomic.atomic_path` creates beside ``path``
    (``.{stem}.{mkstemp's random part}{suffix}``)."""
    return re.compile(rf"\.{re.escape(path.stem)}\.[A-Za-z0-9_]{{6,16}}{re.escape(path.suffix)}")


# Probe and temp files of earlier hdrcli versions (``.hdrcli-probe-*``) and the old fixed report temp name;
# today's temps all start with hdrcli.io.atomic.TEMP_PREFIX.
_PROJECT_TEMP = re.compile(r"\.hdrcli-probe-[A-Za-z0-9_]+|\." + re.escape(REPORT_NAME) + r"\.tmp")


def planned_files(scan: Scan, out_dir: Path, report: Path | None = None) -> list[Path]:
    """Every file a batch run may write: group outputs and previews, report, contact sheet."""
    files = [p for g in scan.groups for p in g.outputs]
    files.append(out_dir / INDEX_NAME)
    files.append(report if report is not None else out_dir / REPORT_NAME)
    return files


def stale_temp_files(out_dir: Path, planned: list[Path]) -> list[Path]:
    """Hidden temp files left in ``out_dir`` by an interrupted run (killed during a write).

    Matched: names starting with the project's temp prefix (``.hdrcli-tmp-``), and the names
    earlier hdrcli versions gave the temps of the ``planned`` files (``.{stem}.XXXXXXXX{suffix}``);
    other hidden files are the user's and stay.
    """
    if not out_dir.is_dir():
        return []
    patterns = [_temp_pattern(p) for p in planned if p.parent.resolve() == out_dir.resolve()]
    found = []
    with os.scandir(out_dir) as entries:
        for entry in entries:
            if not entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            if (entry.name.startswith(TEMP_PREFIX) or _PROJECT_TEMP.fullmatch(entry.name)
                    or any(p.fullmatch(entry.name) for p in patterns)):
                found.append(Path(entry.path))
    return sorted(found)


def remove_stale_temps(out_dir: Path, planned: list[Path]) -> list[Path]:
    removed = []
    for path in stale_temp_files(out_dir, planned):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HdrError(f"cannot remove a temp file of an earlier run ({exc.strerror})", path) from None
    return removed


def _is_batch_report(path: Path) -> bool:
    """True for a JSON report written by an earlier ``hdr batch`` (replaced without -f)."""
    try:
        if path.stat().st_size > 64 * 1024 * 1024:
            return False
        rows = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(rows, list) and all(isinstance(r, dict) and {"group", "frames", "status"} <= r.keys() for r in rows)


def check_batch_files(scan: Scan, out_dir: str | os.PathLike[str], report: str | os.PathLike[str] | None = None,
                      overwrite: bool = False) -> Path:
    """Check the report and contact-sheet paths before any work; returns the report path.

    The report (default ``OUT/hdr-batch-report.json``) may be anywhere the user names, but
    its folder must exist (or be the output folder, created later), it must not be a folder,
    an input frame, a group's output or the contact sheet, and an existing file is replaced
    only with ``overwrite`` or when it is an earlier batch report. ``OUT/index.html`` is
    likewise replaced only when an earlier batch wrote it.
    """
    from hdrcli.contact_sheet import is_contact_sheet

    out_dir = Path(out_dir)
    path = Path(report) if report is not None else out_dir / REPORT_NAME
    if len(os.fsencode(path.name)) > _NAME_MAX - _TEMP_EXTRA:
        raise HdrError("report file name too long for the file system", path)
    try:
        key = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a path too long
        raise HdrError(f"invalid report path ({getattr(exc, 'strerror', None) or exc})", path) from None
    inputs = {s.path.resolve() for g in scan.groups for s in g.shots} | {p.resolve() for p, _ in scan.unusable}
    outputs = {p.resolve() for g in scan.groups for p in g.outputs}
    index = out_dir / INDEX_NAME
    parent = path.parent
    if parent.resolve() != out_dir.resolve():
        if not parent.exists():
            raise HdrError("report folder does not exist", parent)
        if not parent.is_dir():
            raise HdrError("report folder is not a folder", parent)
    if path.is_dir():
        raise HdrError("report path is a folder", path)
    if path.exists() and not path.is_file():  # /dev/null, a FIFO: never replaced by a file
        raise HdrError("report path exists and is not a regular file", path)
    if parent.is_dir():  # writable, name fits the file system (the output folder may not exist yet)
        check_output_path(path, overwrite=True)
    if key in inputs or any(same_file(path, i) for i in inputs if path.exists()):
        raise HdrError("report path is an input frame", path)
    if key in outputs:
        raise HdrError("report path is a group's output", path)
    if key == index.resolve():
        raise HdrError("report path is the contact sheet", path)
    if (path.exists() or path.is_symlink()) and not overwrite and not _is_batch_report(path):
        raise HdrError("report file exists and is not an hdr batch report (use --overwrite to replace it)", path)
    if index.is_dir():
        raise HdrError("contact sheet path is a folder", index)
    if index.exists() and not overwrite and not is_contact_sheet(index):
        raise HdrError("file exists and is not an hdr batch contact sheet (use --overwrite to replace it)", index)
    return path


# ---------------------------------------------------------------------------------------
# Fusing one group (in a pool worker or a Ray task)


def cores_available() -> int:
    """CPU cores this process may run on (affinity, not the machine's count)."""
    from hdrcli.threads import available_cores

    return available_cores()


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Threads for each of ``jobs`` parallel groups so that jobs x threads <= cores."""
    cores = cores_available() if cores is None else cores
    return max(1, cores // max(1, jobs))


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def set_threads(threads: int) -> None:
    """Limit OpenCV, OpenMP/BLAS (and so torch, when it is imported later) to ``threads``."""
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    from hdrcli.threads import configure

    configure(threads)  # OpenCV, OpenEXR, torch (if loaded), ONNX Runtime sessions


def _fault_hook() -> None:
    """Fault injection for the tests: ``HDRCLI_TEST_CRASH_ONCE=FILE`` makes the first group
    to claim FILE kill its own process, as an out-of-memory kill would."""
    marker = os.environ.get("HDRCLI_TEST_CRASH_ONCE")
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def fuse_group(paths: list[str], outputs: list[str], options: dict, threads: int | None = None) -> dict:
    """Fuse one group; never raises. Returns ``status``, ``time_s``, ``written``, ``error``.

    The plan already refused or failed groups whose outputs existed without ``--overwrite``
    or ``--skip-existing``, so an output found here is this group's own (an earlier,
    incomplete run or a crashed attempt) and is replaced.
    """
    t0 = time.perf_counter()
    _WORKER["busy"] = True
    try:
        _fault_hook()
        from hdrcli.pipeline import fuse

        t0 = time.perf_counter()  # the group's own time, not the worker's first import
        opts = dict(options)
        if any(os.path.lexists(p) for p in outputs):
            opts["overwrite"] = True
        if threads and "threads" in inspect.signature(fuse).parameters:
            opts["threads"] = threads
        _, written = fuse(paths, outputs[0], **opts)
        return {"status": "done", "time_s": time.perf_counter() - t0, "written": [str(p) for p in written], "error": None}
    except HdrError as exc:
        error = str(exc)
    except MemoryError:
        error = "out of memory"
    except Exception as exc:  # noqa: BLE001 - one bad group must not stop the batch
        error = f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
    except KeyboardInterrupt:  # SIGTERM from the batch process: the outputs were unwound
        if _WORKER["in_pool"]:
            os._exit(143)
        raise
    finally:
        _WORKER["busy"] = False
    return {"status": "failed", "time_s": time.perf_counter() - t0, "written": [], "error": error}


def fuse_group_with_threads(paths: list[str], outputs: list[str], options: dict, threads: int) -> dict:
    """:func:`fuse_group` in a fresh worker process (a Ray task): its thread count first."""
    set_threads(threads)
    return fuse_group(paths, outputs, options, threads)


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker die when the batch process dies, even by SIGKILL.

    Linux: the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG).
    Everywhere: a watchdog thread exits when the parent pid changes (re-parenting).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="hdrcli-parent-watchdog", daemon=True).start()


_WORKER = {"in_pool": False, "busy": False}


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM in a pool worker: idle, exit at once; inside a group, unwind its output
    transaction first (no temp file left), then exit quietly (no traceback on the terminal)."""
    if not _WORKER["busy"]:
        os._exit(128 + signum)
    from hdrcli.errors import Terminated

    raise Terminated(signum)


def _worker_init(parent_pid: int, threads: int) -> None:
    _WORKER["in_pool"] = True
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group: the parent stops us
    signal.signal(signal.SIGTERM, _terminated)  # unwinds the output transaction: no temp file left
    set_threads(threads)


# ---------------------------------------------------------------------------------------
# The run


def _row(group: Group, backend: str) -> dict:
    return {
        "group": group.index,
        "frames": [str(s.path) for s in group.shots],
        "exposures_s": [s.exposure for s in group.shots],
        "backend": backend,
        "output": str(group.output),
        "preview": str(group.preview) if group.preview else None,
        "weights": str(group.weights) if group.weights else None,
        "time_s": None,
        "error": group.problem,
        "status": "failed" if group.problem else "pending",
    }


def prepare(scan: Scan, options: dict, *, skip_existing: bool = False) -> tuple[list[dict], list[tuple[Group, dict]]]:
    """Report rows for every group and the groups to fuse.

    ``skip_existing`` skips a group only when *every* output (HDR and preview) exists; an
    incomplete one is fused again, replacing what an interrupted run left. Without it or
    ``overwrite``, a group whose output exists fails with one line and nothing is fused.
    """
    rows, todo = [], []
    for group in scan.groups:
        row = _row(group, options.get("backend", "debevec"))
        rows.append(row)
        if group.problem is not None:
            continue
        existing = [p for p in group.outputs if os.path.lexists(p)]
        if skip_existing and existing and len(existing) == len(group.outputs):
            row["status"] = "skipped (output exists)"
            continue
        if existing and not skip_existing and not options.get("overwrite"):
            row["status"] = "failed"
            row["error"] = f"{existing[0]}: output file exists (use --overwrite to replace it, or --skip-existing)"
            continue
        if existing:
            row["note"] = "replaces the incomplete outputs of an earlier run"
        todo.append((group, row))
    for path, reason in scan.unusable:
        rows.append({"group": None, "frames": [str(path)], "exposures_s": [], "backend": None, "output": None,
                     "preview": None, "time_s": None, "error": reason, "status": "not grouped"})
    return rows, todo


def _run_local(todo: list[tuple[Group, dict]], options: dict, jobs: int, threads: int, finish, max_retries: int = 2) -> None:
    """Fuse in a pool of worker processes that die with this one.

    A worker that dies (killed, out of memory) breaks the pool: its group and those running
    beside it are retried in a fresh pool, up to ``max_retries`` times each.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a threaded process
    attempts = {id(row): 0 for _, row in todo}
    pending = list(todo)
    # Spawned workers inherit the environment: OpenBLAS reads its thread count once, at numpy's
    # import (before the initializer runs), and its sums differ in the last bits with it.
    saved = {var: os.environ.get(var) for var in _THREAD_VARS}
    os.environ.update({var: str(threads) for var in _THREAD_VARS})
    try:
        _run_pools(context, pending, attempts, options, jobs, threads, finish, max_retries)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _run_pools(context, pending: list, attempts: dict, options: dict, jobs: int, threads: int, finish,
               max_retries: int) -> None:
    while pending:
        workers = max(1, min(jobs, len(pending)))
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                   initargs=(os.getpid(), threads))
        try:
            futures = {
                pool.submit(fuse_group, [str(s.path) for s in g.shots], [str(p) for p in g.outputs], g.options(options),
                            threads): (g, row)
                for g, row in pending
            }
            pending = []
            for future in as_completed(futures):
                group, row = futures[future]
                try:
                    result = future.result()
                except BrokenProcessPool:
                    attempts[id(row)] += 1
                    if attempts[id(row)] <= max_retries:
                        pending.append((group, row))
                        continue
                    result = {"status": "failed", "time_s": None, "written": [],
                              "error": f"worker process died {attempts[id(row)]} times (killed or out of memory)"}
                except Exception as exc:  # noqa: BLE001 - e.g. options that cannot be sent to a worker
                    result = {"status": "failed", "time_s": None, "written": [],
                              "error": f"internal error: {type(exc).__name__}: {exc}"}
                finish(group, row, result, attempts[id(row)])
        except BaseException:
            # Stop the workers now, not after their group: SIGTERM unwinds their writes, SIGKILL if they linger.
            processes = list((pool._processes or {}).values())
            for process in processes:
                process.terminate()
            deadline = time.monotonic() + 3.0
            for process in processes:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def run_batch(scan: Scan, options: dict, *, jobs: int = 1, skip_existing: bool = False, progress=None,
              out_dir: str | os.PathLike[str] | None = None, report: str | os.PathLike[str] | None = None,
              contact_sheet: bool = True, engine: str = "local", address: str | None = None,
              threads: int | None = None) -> list[dict]:
    """Fuse every good group; returns one report row per group (and per unusable file).

    With ``out_dir``: hidden temp files of an earlier run are removed first, and the JSON
    ``report`` and ``OUT/index.html`` are written (atomically) at the start and after every
    group, so an interrupted run leaves both. ``engine`` is ``local`` (worker processes,
    ``jobs`` at a time, each with ``threads`` threads: default cores // jobs) or ``ray``
    (Ray tasks on the cluster at ``address``; a local Ray instance when None).
    """
    if engine not in ("local", "ray"):
        raise HdrError(f"unknown --engine '{engine}' (local, ray)")
    rows, todo = prepare(scan, options, skip_existing=skip_existing)
    ray_session = None
    if engine == "ray":
        from hdrcli import batch_ray

        batch_ray.import_ray()  # fails here, before anything is written
        if todo:
            ray_session = batch_ray.connect(address, jobs, threads)
    try:
        return _run_batch(scan, rows, todo, options, jobs, progress, out_dir, report, contact_sheet, threads,
                          ray_session)
    finally:
        if ray_session is not None:
            ray_session.close()


def _lock_folder(folder: Path) -> int | None:
    """Hold an advisory lock on the output folder itself (no lock file is created), so two
    batches never write, or clean the temps of, the same folder at once."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise HdrError("another hdr batch is writing to this output folder", folder) from None
    return fd


def _run_batch(scan: Scan, rows: list[dict], todo: list, options: dict, jobs: int, progress, out_dir, report,
               contact_sheet: bool, threads: int | None, ray_session) -> list[dict]:
    out_path = Path(out_dir) if out_dir is not None else None
    report_path = None
    lock = None
    if out_path is not None:
        report_path = Path(report) if report is not None else out_path / REPORT_NAME
        out_path.mkdir(parents=True, exist_ok=True)
        lock = _lock_folder(out_path)
        remove_stale_temps(out_path, planned_files(scan, out_path, report_path))
        if report_path.parent.resolve() != out_path.resolve():  # only the report's own temps there
            import glob

            pattern = f"{TEMP_PREFIX}*-{glob.escape(report_path.stem[:24])}{glob.escape(report_path.suffix)}"
            for path in report_path.parent.glob(pattern):
                path.unlink(missing_ok=True)

    def publish() -> None:
        if report_path is not None:
            write_report(report_path, rows)
        if out_path is not None and contact_sheet:
            from hdrcli.contact_sheet import write_contact_sheet

            write_contact_sheet(out_path / INDEX_NAME, rows, report_path)

    done = 0

    def finish(group: Group, row: dict, result: dict, retries: int = 0) -> None:
        nonlocal done
        row["status"], row["error"] = result["status"], result["error"]
        row["time_s"] = None if result["time_s"] is None else round(result["time_s"], 3)
        row["written"] = result["written"]
        if retries:
            row["retries"] = retries
        done += 1
        publish()
        if progress is not None:
            progress(done, len(todo), row)

    try:
        publish()
        if ray_session is not None:
            ray_session.run(todo, options, finish, fuse_group_with_threads)
        elif todo:
            jobs = max(1, jobs)
            _run_local(todo, options, jobs, threads or threads_per_job(min(jobs, len(todo))), finish)
    except BaseException:
        for row in rows:
            if row["status"] == "pending":
                row["status"], row["error"] = "interrupted", "the batch was stopped before this group finished"
        if out_path is not None:
            remove_stale_temps(out_path, [p for g, _ in todo for p in g.outputs])
        publish()
        raise
    finally:
        if lock is not None:
            os.close(lock)
    return rows


def write_report(path: Path, rows: list[dict]) -> None:
    """The JSON report, replaced atomically (a reader never sees half a file)."""
    from hdrcli.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(rows, indent=2) + "\n")


def describe_group(group: Group) -> str:
    return ", ".join(describe_exposure(s.exposure) for s in group.shots)


__all__ = [
    "Group", "Scan", "check_batch_files", "describe_group", "find_images", "fuse_group", "group_shots", "plan", "prepare",
    "remove_stale_temps", "run_batch", "stale_temp_files", "threads_per_job", "write_report",
]
