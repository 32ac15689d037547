"""Scene folders in the Kalantari & Ramamoorthi (SIGGRAPH 2017) layout.

A scene folder holds the LDR frames as 16-bit ``*.tif`` (sorted by name: short,
reference, long) and ``exposure.txt`` with one **EV stop** value per line in the same
order (t = 2**ev, e.g. ``0 2 4``); an optional ``HDRImg.hdr`` is the ground truth.
"""

from __future__ import annotations

import os
from pathlib import Path

from hdrcli.errors import HdrError
from hdrcli.exposure import read_exposure_file
from hdrcli.io.frames import Frame, read_frames

EXPOSURE_FILE = "exposure.txt"


def find_scenes(root: str | os.PathLike[str]) -> list[Path]:
    """Scene folders under ``root`` with ground truth (exposure.txt and HDRImg.hdr), sorted."""
    root = Path(root)
    return sorted({p.parent for p in root.rglob(EXPOSURE_FILE) if (p.parent / "HDRImg.hdr").is_file()})


def is_scene_folder(path: str | os.PathLike[str]) -> bool:
    """True for a folder that holds an ``exposure.txt``."""
    return Path(path).is_dir() and (Path(path) / EXPOSURE_FILE).is_file()


def scene_frame_paths(folder: str | os.PathLike[str]) -> list[Path]:
    """The LDR frames of a scene folder, sorted by name."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff") and p.is_file())
    if not paths:
        raise HdrError("scene folder holds no .tif frames", folder)
    return paths


def read_scene(folder: str | os.PathLike[str]) -> tuple[list[Frame], list[float]]:
    """Frames of a Kalantari scene folder and their relative exposure times (2**ev)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HdrError("no such folder", folder)
    if not (folder / EXPOSURE_FILE).is_file():
        raise HdrError(f"scene folder has no {EXPOSURE_FILE} (EV stops, one per frame)", folder)
    paths = scene_frame_paths(folder)
    exposures = read_exposure_file(folder / EXPOSURE_FILE, [p.name for p in paths], fmt="ev")
    return read_frames(paths), exposures
