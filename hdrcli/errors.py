"""User-facing errors.

Everything a user can cause (bad file, missing exposure, unwritable output) raises
:class:`HdrError`; the CLI prints its message as one line and exits non-zero. Any other
exception is a bug in hdrcli.
"""

from __future__ import annotations

import unicodedata
from os import PathLike


class HdrError(Exception):
    """An error caused by the input or the request, reported to the user as one line."""

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class Terminated(KeyboardInterrupt):
    """Raised by the CLI's SIGTERM handler, so that clean-up (temporary files) runs as
    for Ctrl-C. A KeyboardInterrupt subclass: code that cleans up on Ctrl-C handles it."""

    def __init__(self, signum: int = 15) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


# Bidirectional-text controls can make a shown name read differently from the real one.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: object) -> str:
    """``text`` made safe to show on one terminal line.

    Control characters (newline, ESC, DEL...), line/paragraph separators and
    bidirectional controls become escapes (``\\n``, ``\\x1b``, ``\\u202e``); bytes of a
    file name that were not valid UTF-8 (kept by Python as surrogates) become ``\\xNN``.
    Everything else, including non-ASCII letters, is kept.
    """
    text = str(text)
    if text.isprintable():
        return text
    pieces = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape for an undecodable byte
            pieces.append(f"\\x{code - 0xDC00:02x}")
        elif ch in "\n\r\t":
            pieces.append(repr(ch)[1:-1])
        elif ch.isprintable() or ch == " " or (unicodedata.category(ch) == "Zs"):
            pieces.append(ch)
        elif code < 0x100:
            pieces.append(f"\\x{code:02x}")
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp", "Co", "Cn"):
            pieces.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:  # other format characters (zero-width joiner in emoji...) are harmless
            pieces.append(ch)
    return "".join(pieces)
