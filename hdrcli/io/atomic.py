"""Output files appear whole or not at all.

Every writer writes to a temporary file in the destination folder (same suffix, so
format-by-extension libraries still pick the right codec) and renames it into place;
on any error the temporary file is removed. :func:`check_output_path` runs the cheap
checks (folder exists and is writable, no silent overwrite) before any work is done.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hdrcli.errors import HdrError


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Fail early, with one clear line, when ``path`` cannot be written.

    Checks that the parent folder exists, is a folder and accepts a new file (by creating
    and removing a probe file: permission bits alone are not enough, e.g. as root or on a
    read-only mount), and that ``path`` does not exist unless ``overwrite``.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise HdrError("output folder does not exist", parent)
    if not parent.is_dir():
        raise HdrError("output folder is not a folder", parent)
    if path.is_dir():
        raise HdrError("output path is a folder", path)
    if path.exists() and not overwrite:
        raise HdrError("output file exists (use --overwrite to replace it)", path)
    try:
        fd, probe = tempfile.mkstemp(prefix=".hdrcli-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HdrError(f"output folder is not writable ({exc.strerror})", parent) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise HdrError("writer produced no data", path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except OSError as exc:
        raise HdrError(f"could not write file ({exc.strerror or exc})", path) from None
    finally:
        if tmp.exists():
            tmp.unlink()
