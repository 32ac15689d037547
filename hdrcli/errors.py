"""User-facing errors.

Everything a user can cause (bad file, missing exposure, unwritable output) raises
:class:`HdrError`; the CLI prints its message as one line and exits non-zero. Any other
exception is a bug in hdrcli.
"""

from __future__ import annotations

from os import PathLike


class HdrError(Exception):
    """An error caused by the input or the request, reported to the user as one line."""

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
