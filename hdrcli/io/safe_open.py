"""Opening user files safely: regular files only, never blocking, with bounded reads.

A path may name a FIFO (opening it blocks until a writer appears), a character device
such as ``/dev/zero`` (endless data), a socket, or a symlink to any of those. Every
reader in hdrcli opens input through :func:`open_regular`, which checks ``stat`` before
opening, opens with ``O_NONBLOCK`` (so a FIFO swapped in after the check still cannot
block) and checks ``fstat`` of the opened descriptor again; reads are bounded by a size
limit decided before reading.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from hdrcli.errors import HdrError
from hdrcli.io.limits import MAX_TEXT_BYTES


class UnreadableFileError(HdrError, OSError):
    """A user file that is missing, not a regular file, or cannot be opened.

    An HdrError (one line for the user) that is also an OSError, so callers that skip
    unreadable files with ``except OSError`` (e.g. scanning a folder) keep doing so.
    """

    def __str__(self) -> str:
        return Exception.__str__(self)  # the HdrError text, not OSError's "[Errno ...]" form


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(mode: int, path: Path, what: str) -> UnreadableFileError:
    kind = _kind(mode)
    if kind == "a directory":
        return UnreadableFileError(f"is a directory, not {what}", path)
    return UnreadableFileError(f"is {kind}, not a regular file; hdrcli reads {what}s only from regular files", path)


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """Open a regular file for binary reading; HdrError for anything else.

    Args:
        path: the file (symlinks are followed, then the target must be a regular file).
        what: noun used in messages ("image", "exposure file", ...).
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UnreadableFileError("no such file", path) from None
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file ({exc.strerror})", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(st.st_mode, path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnreadableFileError(f"cannot open file ({exc.strerror})", path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between stat and open
            raise _refuse(st.st_mode, path, what)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(fh: BinaryIO) -> int:
    """Size in bytes of an open file."""
    return os.fstat(fh.fileno()).st_size


def read_bounded(fh: BinaryIO, limit: int, path: str | os.PathLike[str], what: str = "file") -> bytes:
    """Read an open file to its end, refusing it when it holds more than ``limit`` bytes."""
    size = file_size(fh)
    if size > limit:
        raise HdrError(f"{what} is {size:,} bytes, larger than the limit of {limit:,} bytes", path)
    fh.seek(0)
    try:
        data = fh.read(size)  # (read(limit) would allocate the whole limit up front)
        grew = fh.read(1)
    except OSError as exc:
        raise HdrError(f"cannot read file ({exc.strerror})", path) from None
    if grew:  # grew while reading
        raise HdrError(f"{what} is larger than the limit of {limit:,} bytes", path)
    return data


def read_bytes_bounded(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """All bytes of a regular file of at most ``limit`` bytes."""
    with open_regular(path, what) as fh:
        return read_bounded(fh, limit, path, what)


def read_text_bounded(path: str | os.PathLike[str], what: str = "text file", limit: int = MAX_TEXT_BYTES) -> str:
    """A small UTF-8 text file (exposure lists, response curves), at most ``limit`` bytes."""
    data = read_bytes_bounded(path, limit, what)
    if b"\x00" in data:
        raise HdrError(f"{what} is binary data, not text", path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HdrError(f"{what} is not UTF-8 text (byte {exc.start})", path) from None


def descriptor_path(fh: BinaryIO, path: str | os.PathLike[str]) -> str:
    """A name for an open file that C libraries can open: ``/proc/self/fd/N`` on Linux.

    Libraries that only take a file name (OpenEXR) then read the very file that was
    checked, and names that are not valid UTF-8 need not be encoded.
    """
    proc = f"/proc/self/fd/{fh.fileno()}"
    if os.path.exists(proc):
        return proc
    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise HdrError("file name is not valid UTF-8 on this system; rename the file", path) from None
    return name


__all__ = [
    "UnreadableFileError",
    "descriptor_path",
    "file_size",
    "open_regular",
    "read_bounded",
    "read_bytes_bounded",
    "read_text_bounded",
]
