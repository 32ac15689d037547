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
Groups are fused in parallel processes; one failing group does not stop the others.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hdrcli.errors import HdrError
from hdrcli.exposure import describe_exposure
from hdrcli.io.exif import ExifInfo, read_exif
from hdrcli.io.frames import LDR_EXTENSIONS, RAW_EXTENSIONS


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
            unusable.append((path, f"cannot read ({exc.strerror})"))
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


def plan(folder: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, recursive: bool = False, gap: float = 2.0,
         count: int | None = None, template: str = "{first}-{last}", extension: str = ".exr") -> Scan:
    """Scan a folder and decide the groups and their output paths (no fusing)."""
    paths = find_images(folder, recursive)
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
        except (KeyError, IndexError, ValueError) as exc:
            raise HdrError(f"bad --name template '{template}': {exc}") from None
        group.output = Path(out_dir) / f"{name}{extension}"
        groups.append(group)
    outputs = [g.output for g in groups if g.problem is None]
    if len(set(outputs)) != len(outputs):
        raise HdrError(f"--name template '{template}' gives several groups the same output name; add {{index}}")
    return Scan(groups, unusable)


def _fuse_group(paths: list[str], output: str, options: dict) -> tuple[float, list[str]]:
    from hdrcli.pipeline import fuse

    t0 = time.perf_counter()
    _, written = fuse(paths, output, **options)
    return time.perf_counter() - t0, [str(p) for p in written]


def run_batch(scan: Scan, options: dict, *, jobs: int = 1, skip_existing: bool = False, progress=None) -> list[dict]:
    """Fuse every good group; returns one report row per group (and per unusable file)."""
    rows: list[dict] = []
    todo = []
    for group in scan.groups:
        row = {
            "group": group.index,
            "frames": [str(s.path) for s in group.shots],
            "exposures_s": [s.exposure for s in group.shots],
            "backend": options.get("backend", "debevec"),
            "output": str(group.output),
            "time_s": None,
            "error": group.problem,
            "status": "failed" if group.problem else "pending",
        }
        if group.problem is None and skip_existing and group.output.exists():
            row["status"] = "skipped (output exists)"
        elif group.problem is None:
            todo.append((group, row))
        rows.append(row)
    done = 0
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            pool.submit(_fuse_group, [str(s.path) for s in g.shots], str(g.output), options): row for g, row in todo
        }
        for future in as_completed(futures):
            row = futures[future]
            try:
                row["time_s"], row["written"] = future.result()
                row["status"] = "done"
            except HdrError as exc:
                row["status"], row["error"] = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad group must not stop the batch
                row["status"], row["error"] = "failed", f"internal error: {type(exc).__name__}: {exc}"
            done += 1
            if progress is not None:
                progress(done, len(todo), row)
    for path, reason in scan.unusable:
        rows.append({"group": None, "frames": [str(path)], "exposures_s": [], "backend": None, "output": None,
                     "time_s": None, "error": reason, "status": "not grouped"})
    return rows


def write_report(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(rows, indent=2) + "\n")
    os.replace(tmp, path)


def describe_group(group: Group) -> str:
    return ", ".join(describe_exposure(s.exposure) for s in group.shots)


__all__ = ["Group", "Scan", "describe_group", "find_images", "group_shots", "plan", "run_batch", "write_report"]
