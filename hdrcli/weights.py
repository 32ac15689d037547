"""Weight files: where they live, their manifest, their checksums, and loading them safely.

Shipped weights and ONNX exports live in ``weights/`` (override with the environment
variable ``HDRCLI_WEIGHTS_DIR``, e.g. for tests that tamper with a copy) and are listed in
``weights/manifest.json``: one entry per file with its sha256, the backend and size, the
command that made it and its history. A shipped file is checked against its manifest
sha256 before it is loaded (once per process and file state, so repeated loads are
cheap); a mismatch is one error naming the file. Files a user names (``--init``,
``--resume``, paths outside the weights folder) are not checked against anything but are
loaded with ``torch.load(weights_only=True)``: tensors and plain containers only, never
a pickle that runs code.

This module is a low layer: training, export and both runtimes use it; it imports only
hdrcli.errors and hdrcli.io.atomic (and torch inside :func:`load_state`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hdrcli.errors import HdrError

MANIFEST = "manifest.json"
ENV_WEIGHTS_DIR = "HDRCLI_WEIGHTS_DIR"
_DEFAULT_DIR = Path(__file__).resolve().parents[1] / "weights"
# (resolved path, size, mtime_ns, inode) -> sha256 of a file already verified in this process
_VERIFIED: dict[tuple[str, int, int, int], str] = {}


def weights_dir() -> Path:
    """The folder of shipped weights: ``$HDRCLI_WEIGHTS_DIR`` if set, else the repository's ``weights/``."""
    override = os.environ.get(ENV_WEIGHTS_DIR)
    return Path(override) if override else _DEFAULT_DIR


def manifest_path(folder: Path | None = None) -> Path:
    return (folder or weights_dir()) / MANIFEST


def weights_path(name: str, size: str) -> Path:
    """Shipped PyTorch weights of a learned backend: ``weights/<name>-<size>.pt``."""
    return weights_dir() / f"{name}-{size}.pt"


def onnx_path(name: str, size: str, tile: int) -> Path:
    """Shipped ONNX export for square ``tile`` inputs: ``weights/<name>-<size>-t<tile>.onnx``."""
    return weights_dir() / f"{name}-{size}-t{tile}.onnx"


def synthesis_onnx_path(name: str, size: str) -> Path:
    """Shipped ONNX export of a bracket network's reduced-resolution part (synthesis and ghost
    gate, any size a multiple of 16): ``weights/<name>-<size>-synthesis.onnx``."""
    return weights_dir() / f"{name}-{size}-synthesis.onnx"


def head_onnx_path(name: str, size: str) -> Path:
    """Shipped ONNX export of a bracket network's merge head (3 frames, any size; the runtime feeds
    it the upsampled synthesis and gate per full-resolution tile): ``weights/<name>-<size>-head.onnx``."""
    return weights_dir() / f"{name}-{size}-head.onnx"


def whole_onnx_path(name: str, size: str) -> Path:
    """Shipped ONNX export of a single-image network for a whole photo of any size (twostage; the
    stack model's exposure stack): ``weights/<name>-<size>-whole.onnx``."""
    return weights_dir() / f"{name}-{size}-whole.onnx"


def is_shipped(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is inside the shipped weights folder (so it must match the manifest)."""
    try:
        Path(path).resolve().relative_to(weights_dir().resolve())
    except ValueError:
        return False
    return True


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- manifest

def read_manifest(manifest: Path | None = None) -> dict[str, dict]:
    """The manifest's ``weights`` mapping (file name -> entry); empty when there is no manifest."""
    manifest = manifest or manifest_path()
    if not manifest.is_file():
        return {}
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HdrError(f"weights manifest is unreadable ({exc})", manifest) from None
    weights = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict):
        raise HdrError("weights manifest has no 'weights' mapping", manifest)
    return weights


def manifest_entry(path: str | os.PathLike[str]) -> dict | None:
    """The manifest entry of a file in the weights folder, or None."""
    return read_manifest(manifest_path(Path(path).resolve().parent)).get(Path(path).name)


def edit_manifest(change: Callable[[dict[str, dict]], None], manifest: Path | None = None) -> None:
    """Apply ``change`` to the manifest's ``weights`` mapping (file name -> entry) and write it
    back atomically (a crash never leaves a half-written manifest)."""
    from hdrcli.io.atomic import atomic_path

    manifest = manifest or manifest_path()
    weights = read_manifest(manifest)  # validated; {} when there is no manifest yet
    data = json.loads(manifest.read_text()) if manifest.is_file() else {}  # keeps other top-level keys
    data["weights"] = weights
    change(weights)
    with atomic_path(manifest) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def update_manifest(entry: dict, manifest: Path | None = None) -> None:
    """Add or replace one file's entry. A replaced entry is not lost: it is appended (without
    its own history) to the new entry's ``history`` list, after the history it carried."""

    def change(weights: dict[str, dict]) -> None:
        old = weights.get(entry["file"])
        new = dict(entry)
        if old is not None and old.get("sha256") != new.get("sha256"):
            earlier = {k: v for k, v in old.items() if k != "history"}
            new["history"] = [*old.get("history", []), earlier]
        elif old is not None and "history" in old:
            new.setdefault("history", old["history"])
        weights[entry["file"]] = new

    edit_manifest(change, manifest)


def mark_stale_exports(weights_file: str, sha256: str, manifest: Path | None = None) -> list[str]:
    """Mark the ONNX exports of ``weights_file`` made from other weights as stale; returns their names."""
    stale: list[str] = []

    def change(weights: dict[str, dict]) -> None:
        for name, entry in weights.items():
            source = entry.get("exported_from") or {}
            if entry.get("format") == "onnx" and source.get("file") == weights_file and source.get("sha256") != sha256:
                entry["stale"] = True
                entry["status"] = ("STALE: exported from earlier weights; re-export with "
                                   f"`hdr export --backend {entry.get('backend')} --tile {entry.get('tile')} -f`")
                stale.append(name)

    edit_manifest(change, manifest)
    return stale


# ----------------------------------------------------------------------------- verification

def verify_shipped(path: str | os.PathLike[str]) -> Path:
    """Check a file of the weights folder against its manifest sha256 (cached per process).

    Raises HdrError naming the file when it is not listed, or its contents differ.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise HdrError(f"cannot read weights ({exc.strerror})", path) from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    entry = manifest_entry(path)
    if entry is None or not entry.get("sha256"):
        raise HdrError(f"shipped weights file is not listed in {MANIFEST}; refusing to load it", path)
    if _VERIFIED.get(key) == entry["sha256"]:
        return path
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise HdrError(f"weights file does not match its sha256 in {MANIFEST} (corrupted or modified; "
                       "restore it from the repository)", path)
    _VERIFIED[key] = actual
    return path


def _export_option(entry: dict) -> str:
    """The `hdr export` option that rewrites one export (its manifest entry)."""
    if entry.get("tile"):
        return f"--tile {entry['tile']}"
    return "--head" if str(entry.get("file", "")).endswith("-head.onnx") else "--synthesis"


def check_export_current(path: str | os.PathLike[str]) -> Path:
    """Verify a shipped ONNX export and refuse it when its source weights have changed since."""
    path = verify_shipped(path)
    entry = manifest_entry(path) or {}
    source = entry.get("exported_from") or {}
    weights = read_manifest(manifest_path(path.resolve().parent)).get(source.get("file", ""), {})
    if entry.get("stale") or (weights and weights.get("sha256") != source.get("sha256")):
        raise HdrError(f"ONNX export is stale: {source.get('file')} was retrained after it was exported; run "
                       f"`hdr export --backend {entry.get('backend')} "
                       f"{_export_option(entry)} -f`", path)
    return path


# ----------------------------------------------------------------------------- loading

def load_state(path: str | os.PathLike[str], map_location: Any = "cpu", *, verify: bool | None = None) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, numbers, strings and plain containers.

    ``verify`` (default: whether ``path`` is in the weights folder) checks the manifest
    sha256 first. A file that needs arbitrary objects (a pickle that could run code) or is
    not a PyTorch file is refused with one HdrError line naming it.
    """
    import torch

    path = Path(path)
    if verify if verify is not None else is_shipped(path):
        verify_shipped(path)
    elif not path.is_file():
        raise HdrError("no such weights file" if not path.exists() else "not a regular file", path)
    import numpy as np

    # numpy scalars (scores in older checkpoints) are rebuilt from their bytes: no code runs.
    numpy_scalars = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64)),
                     (np._core if hasattr(np, "_core") else np.core).multiarray.scalar]
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(numpy_scalars):
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": our one error line says enough
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = [line.strip() for line in str(exc).split("\n")]
        reason = next((line for line in detail if "GLOBAL" in line), None)
        if reason is None:
            reason = next((line for line in detail if "Unsupported" in line), detail[0])
            raise HdrError(f"not a readable PyTorch weights file ({reason[:160]})", path) from None
        raise HdrError(f"refused: this file needs more than plain tensors to load (a pickle that could run code; "
                       f"{reason[:120]})", path) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError,
            AttributeError, TypeError, IndexError, KeyError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise HdrError(f"not a readable PyTorch weights file ({first})", path) from None


def state_dict_of(state: Any, path: str | os.PathLike[str]) -> dict:
    """The model state dict in a loaded file: a ``{"model": ...}`` checkpoint or a bare state dict."""
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        return state["model"]
    if isinstance(state, dict) and state and all(isinstance(k, str) for k in state):
        return state
    raise HdrError("no model state dict in this file", path)
