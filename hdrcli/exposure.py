"""Exposure of each frame, and ordering frames into a bracket.

Convention: the *relative exposure* of a frame is

    t_eff = t * ISO / 100 / N**2        (t in seconds, N the f-number)

proportional to the light a pixel collects. Frames are ordered by t_eff (never by file
name), and the merged HDR is expressed in the units of the shortest exposure: a pixel
value v in the frame with relative exposure t_eff maps to radiance f^-1(v) * t_min / t_eff.

Exposure sources, in priority order: ``--exposures`` (seconds), ``--ev`` (stops, t =
2**ev), ``--exposure-file``, then EXIF. User-given values are taken as t_eff directly
(same ISO and aperture assumed).

Accepted ``--exposure-file`` formats (``#`` starts a comment):

* ``seconds``: one exposure time per line, in the order the frames were given
  (``1/60``, ``0.25``, ``2``).
* ``ev``: one EV stop value per line, in input order (the Kalantari ``exposure.txt``).
* ``opencv``: ``NAME INV_T`` per line, as in OpenCV's HDR samples: the second column is
  the *inverse* of the exposure time (``memorial00.png 0.03125`` means 32 s); matched to
  frames by file name.

``auto`` picks ``opencv`` for two-column files, ``ev`` for a file named ``exposure.txt``
or with any value <= 0, else ``seconds``, and says which it chose.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from hdrcli.errors import HdrError
from hdrcli.io.frames import Frame
from hdrcli.log import info, warn

DEFAULT_ISO = 100.0
DEFAULT_F_NUMBER = 8.0
EXPOSURE_FILE_FORMATS = ("auto", "seconds", "ev", "opencv")
MAX_STOPS = 64.0  # |EV| limit for user values: 2**64 spans far more than any camera (and than float32 radiance)


def reference_index(reference: str | int | None) -> int | None:
    """The frame index a ``--reference`` value gives, or None when it names a file (or is None).
    ASCII digits only: str.isdigit() accepts '²', which int() refuses."""
    if isinstance(reference, int) or (reference is not None and re.fullmatch(r"-?[0-9]{1,9}", str(reference).strip())):
        return int(reference)
    return None


def parse_number(text: str, what: str = "value") -> float:
    """Parse '1/60', '1/12.5', '0.25', '2' or '-1.5' into a float; HdrError on anything else."""
    text = text.strip()
    try:
        # Fraction is exact; a ratio of decimals ('1/12.5', a shutter speed cameras show) is
        # read as the quotient of its two parts.
        numerator, _, denominator = text.partition("/")
        if "/" in denominator:
            raise ValueError(text)
        value = Fraction(numerator) / Fraction(denominator) if denominator else Fraction(text)
        return float(value)
    except (ValueError, ZeroDivisionError):
        raise HdrError(f"cannot read {what} '{text}' (expected a number such as 1/60, 0.25 or -2)") from None
    except OverflowError:  # Fraction is exact: '1e400' only fails when made a float
        raise HdrError(f"{what} '{text}' is out of range") from None


def check_ev(values: list[float], what: str = "EV") -> list[float]:
    """Refuse EV values that are not finite or beyond +-``MAX_STOPS`` stops (one HdrError line)."""
    for v in values:
        if not (math.isfinite(v) and abs(v) <= MAX_STOPS):
            raise HdrError(f"{what} {v:g} is out of range: use values within +-{MAX_STOPS:g} stops")
    return values


def check_exposure_times(values: list[float], what: str = "exposure time") -> list[float]:
    """Refuse exposure times (seconds, or relative) that are not finite and positive, or
    outside 2**-64 .. 2**64 (+-``MAX_STOPS`` stops around 1 s)."""
    low, high = 2.0**-MAX_STOPS, 2.0**MAX_STOPS
    for v in values:
        if not (math.isfinite(v) and v > 0):
            raise HdrError(f"{what} {v:g} is not a positive number")
        if not low <= v <= high:
            raise HdrError(f"{what} {v:g} is out of range: use values between 2^-{MAX_STOPS:g} and 2^{MAX_STOPS:g}")
    return values


def parse_list(text: str, what: str) -> list[float]:
    """Comma-separated numbers, e.g. '1/60,1/15,1/4' or '-2,0,2'."""
    items = [t for t in text.replace(" ", "").split(",") if t]
    if not items:
        raise HdrError(f"empty {what} list")
    return [parse_number(t, what) for t in items]


def parse_ev_list(text: str) -> list[float]:
    """``--ev``: comma-separated EV stops, each finite and within +-``MAX_STOPS``."""
    return check_ev(parse_list(text, "EV"))


def parse_exposure_list(text: str) -> list[float]:
    """``--exposures``: comma-separated exposure times in seconds (see :func:`check_exposure_times`)."""
    return check_exposure_times(parse_list(text, "exposure time"))


def seconds_from_ev(stops: list[float]) -> list[float]:
    """EV stops (within +-``MAX_STOPS``) to relative exposure times: t = 2**ev."""
    return [2.0**ev for ev in check_ev(stops)]


def read_exposure_file(path: str | os.PathLike[str], frame_names: list[str], fmt: str = "auto") -> list[float]:
    """Exposure times (seconds, relative) for ``frame_names`` from a list file."""
    path = Path(path)
    if fmt not in EXPOSURE_FILE_FORMATS:
        raise HdrError(f"unknown exposure file format '{fmt}' (use {', '.join(EXPOSURE_FILE_FORMATS)})")
    from hdrcli.io.safe_open import read_text_bounded

    text = read_text_bounded(path, "exposure file")  # regular files of at most 1 MiB
    rows = [line.split("#", 1)[0].split() for line in text.splitlines()]
    rows = [r for r in rows if r]
    if not rows:
        raise HdrError("exposure file holds no values", path)
    if fmt == "auto":
        if all(len(r) == 2 for r in rows):
            fmt = "opencv"
        elif all(len(r) == 1 for r in rows):
            values = [parse_number(r[0], "exposure") for r in rows]
            fmt = "ev" if path.name.lower() == "exposure.txt" or any(v <= 0 for v in values) else "seconds"
        else:
            raise HdrError("exposure file mixes one- and two-column lines", path)
        info(f"{path.name}: read as '{fmt}' exposure list")
    if fmt == "opencv":
        table: dict[str, float] = {}
        for row in rows:
            if len(row) != 2:
                raise HdrError(f"expected 'NAME 1/t' lines, got '{' '.join(row)}'", path)
            inverse = parse_number(row[1], "inverse exposure time")
            if inverse <= 0:
                raise HdrError(f"inverse exposure time must be > 0 for {row[0]}", path)
            table[Path(row[0]).name] = 1.0 / inverse
        missing = [n for n in frame_names if n not in table]
        if missing:
            raise HdrError(f"no exposure listed for {', '.join(missing)}", path)
        return [table[n] for n in frame_names]
    if any(len(r) != 1 for r in rows):
        raise HdrError(f"expected one value per line for the '{fmt}' format", path)
    values = [parse_number(r[0], "exposure") for r in rows]
    if len(values) != len(frame_names):
        raise HdrError(f"lists {len(values)} exposures for {len(frame_names)} frames", path)
    return seconds_from_ev(values) if fmt == "ev" else values


def _fill(frames: list[Frame], attr: str, default: float, label: str) -> list[float]:
    values = [getattr(f.exif, attr) for f in frames]
    known = [v for v in values if v is not None]
    if len(known) == len(values):
        return values  # type: ignore[return-value]
    fill = Counter(known).most_common(1)[0][0] if known else default
    missing = [f.name for f, v in zip(frames, values) if v is None]
    source = "the value of the other frames" if known else "the default"
    warn(f"no {label} in EXIF of {', '.join(missing)}: assuming {label} {fill:g} ({source})")
    return [fill if v is None else v for v in values]


def exif_exposures(frames: list[Frame]) -> list[float]:
    """Relative exposures t * ISO/100 / N**2 from EXIF.

    A missing ISO or f-number is filled with the most common value among the other
    frames, or ISO 100 / f/8 when no frame has one (a warning names the files). A
    missing exposure time cannot be guessed and raises HdrError.
    """
    for frame in frames:
        if frame.exif.exposure_time is None:
            raise HdrError(
                "no exposure time in EXIF; give --exposures (seconds), --ev (stops) or --exposure-file",
                frame.path,
            )
    isos = _fill(frames, "iso", DEFAULT_ISO, "ISO")
    f_numbers = _fill(frames, "f_number", DEFAULT_F_NUMBER, "f-number")
    return [f.exif.exposure_time * iso / 100.0 / n**2 for f, iso, n in zip(frames, isos, f_numbers)]  # type: ignore[operator]


@dataclass
class Bracket:
    """Frames of one scene ordered by exposure, shortest first.

    Attributes:
        frames: the frames, sorted by increasing relative exposure.
        exposures: relative exposure t_eff of each frame (arbitrary common unit).
        reference: index (into ``frames``) of the reference frame for alignment and
            for the learned backends.
    """

    frames: list[Frame]
    exposures: list[float]
    reference: int

    @property
    def relative_exposures(self) -> list[float]:
        """Exposures normalised so the shortest is 1 (the HDR output's unit)."""
        shortest = self.exposures[0]
        return [e / shortest for e in self.exposures]

    @property
    def stops(self) -> list[float]:
        """Exposure of each frame in EV stops relative to the shortest."""
        return [math.log2(r) for r in self.relative_exposures]


def make_bracket(frames: list[Frame], exposures: list[float], reference: str | int | None = None) -> Bracket:
    """Order frames by exposure and choose the reference frame.

    Args:
        frames: at least two frames of one scene.
        exposures: relative exposure of each frame, same order as ``frames``.
        reference: None for the middle exposure (index n // 2 of the sorted frames), an
            index into the sorted frames, or a file name.
    """
    if len(frames) < 2:
        name = frames[0].name if frames else "(none)"
        raise HdrError(f"a bracket needs at least 2 frames, got 1 ({name}); add the other exposures")
    if len(exposures) != len(frames):
        raise HdrError(f"{len(exposures)} exposures given for {len(frames)} frames")
    check_exposure_times(list(exposures), "exposure")  # denormal, zero or huge values break the merges
    for frame, value in zip(frames, exposures):
        if not (value > 0 and math.isfinite(value)):
            raise HdrError(f"exposure must be a positive number, got {value:g}", frame.path)
    order = sorted(range(len(frames)), key=lambda i: exposures[i])
    frames = [frames[i] for i in order]
    exposures = [exposures[i] for i in order]
    for a, b, ea, eb in zip(frames, frames[1:], exposures, exposures[1:]):
        if eb / ea < 1.0 + 1e-3:
            raise HdrError(
                f"{a.name} and {b.name} have the same exposure ({describe_frame_exposure(a, ea)}); "
                "each frame of a bracket needs a different exposure"
            )
    n = len(frames)
    if reference is None:
        ref = n // 2
    elif (ref := reference_index(reference)) is not None:
        if not 0 <= ref < n:
            raise HdrError(f"--reference {ref} is out of range: frames are numbered 0..{n - 1} by exposure")
    else:
        names = [f.name for f in frames]
        if Path(str(reference)).name not in names:
            raise HdrError(f"--reference '{reference}' is not one of the frames ({', '.join(names)})")
        ref = names.index(Path(str(reference)).name)
    return Bracket(frames, exposures, ref)


# A longer exposure records every pixel at least as bright (the camera response rises).
# Where two frames differ by more than ORDER_MIN_STEP (display units), the longer one being
# darker on more than ORDER_MAX_DARKER of those pixels (and on at least ORDER_MIN_PIXELS of
# all) means the exposures were given in the wrong order: motion, noise and alignment shift
# the difference both ways and stay far below it.
ORDER_MIN_STEP, ORDER_MAX_DARKER, ORDER_MIN_PIXELS = 4 / 255, 0.8, 0.05
_ORDER_SIDE = 256  # frames are compared on a grid of about this many pixels per side
# Frames given exposures SAME_MIN_RATIO or more apart (half a stop) must differ wherever the
# longer one is well above black (SAME_ABOVE_FLOOR over the shorter frame's 1st percentile,
# the floor of film scans) and neither clips: more than SAME_MAX_UNCHANGED of those pixels
# within ORDER_MIN_STEP means one picture given twice (real brackets: at most 2.1%, Memorial's
# 1-stop pairs included).
SAME_MIN_RATIO, SAME_ABOVE_FLOOR, SAME_MAX_UNCHANGED = 2**0.5, 24 / 255, 0.5


def strided_grid(pixels: np.ndarray, side: int) -> np.ndarray:
    """A view of ``pixels`` (H, W, ...) on every k-th row and column, k chosen so that the
    longer side keeps about ``side`` pixels: statistics of a frame without copying it."""
    step = max(1, max(pixels.shape[:2]) // side)
    return pixels[::step, ::step]


def darker_share(shorter: np.ndarray, longer: np.ndarray) -> tuple[float, float]:
    """(share of the differing pixels where ``longer`` is darker, share of pixels that differ).

    Args:
        shorter, longer: (H, W, 3) frames of one scene in [0, 1] (display-referred or
            linear), the second given the longer exposure. Compared on a strided grid of
            about _ORDER_SIDE pixels per side, on the channel mean.
    """
    a, b = _compared_grids(shorter, longer)
    differ = np.abs(b - a) > ORDER_MIN_STEP
    return _share_of(differ, b < a)


def _compared_grids(shorter: np.ndarray, longer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both frames' channel means on the same strided grid (about _ORDER_SIDE px per side)."""
    h, w = min(shorter.shape[0], longer.shape[0]), min(shorter.shape[1], longer.shape[1])
    return (strided_grid(shorter[:h, :w], _ORDER_SIDE).mean(-1), strided_grid(longer[:h, :w], _ORDER_SIDE).mean(-1))


def _share_of(pixels: np.ndarray, hit: np.ndarray) -> tuple[float, float]:
    """(share of ``pixels`` where ``hit``, share of the grid in ``pixels``); (0, 0) when none."""
    count = int(pixels.sum())
    if count == 0:
        return 0.0, 0.0
    return float(hit[pixels].sum()) / count, count / pixels.size


def unchanged_share(shorter: np.ndarray, longer: np.ndarray) -> tuple[float, float]:
    """(share of the measurable pixels where the two frames differ by at most ORDER_MIN_STEP,
    share of pixels measurable). Measurable: ``longer`` more than SAME_ABOVE_FLOOR above the
    shorter frame's 1st percentile (its black floor) and neither frame clipped (>= 250/255).
    Same grid and channel mean as :func:`darker_share`."""
    a, b = _compared_grids(shorter, longer)
    measurable = (b > np.percentile(a, 1) + SAME_ABOVE_FLOOR) & (np.maximum(a, b) < 250 / 255)
    return _share_of(measurable, np.abs(b - a) <= ORDER_MIN_STEP)


def check_brightness_order(bracket: Bracket, source: str) -> None:
    """Refuse exposures that contradict the frames: a frame given a longer exposure than the
    next shorter one but darker than it almost everywhere (the values were listed in the wrong
    order, or belong to other files), or unchanged though given half a stop more or longer (one
    picture given twice). ``source`` says where the exposures came from, for the message:
    '--exposures', '--ev', 'the exposure file' or 'EXIF'."""
    frames, exposures = bracket.frames, bracket.exposures
    for a, b, ea, eb in zip(frames, frames[1:], exposures, exposures[1:]):
        share, differing = darker_share(a.pixels, b.pixels)
        if share > ORDER_MAX_DARKER and differing >= ORDER_MIN_PIXELS:
            found = f"{b.name} is darker than {a.name} on {100 * share:.0f}% of the pixels where they differ"
        elif eb / ea >= SAME_MIN_RATIO:
            share, measurable = unchanged_share(a.pixels, b.pixels)
            if share <= SAME_MAX_UNCHANGED or measurable < ORDER_MIN_PIXELS:
                continue
            found = f"{b.name} is the same picture as {a.name} ({100 * share:.0f}% of its pixels unchanged)"
        else:
            continue
        if source == "EXIF":
            given = (f"its EXIF exposure ({describe_frame_exposure(b, eb)}) is {eb / ea:.3g}x that of "
                     f"{a.name} ({describe_frame_exposure(a, ea)})")
            fix = "give the exposures with --exposures or --ev"
        else:
            given = f"{source} gives it a {eb / ea:.3g}x longer exposure"
            fix = f"check {source}" + (": its values follow the files in the order given"
                                       if source in ("--exposures", "--ev") else "")
        raise HdrError(f"{found}, though {given}: the exposures contradict the frames; {fix}", b.path)


def describe_frame_exposure(frame: Frame, relative: float) -> str:
    """'1/50 s, f/8, ISO 100' from EXIF, or the relative exposure value when there is none."""
    exif = frame.exif
    if exif.exposure_time is None:
        return f"relative exposure {relative:.4g}"
    parts = [describe_exposure(exif.exposure_time)]
    if exif.f_number:
        parts.append(f"f/{exif.f_number:g}")
    if exif.iso:
        parts.append(f"ISO {exif.iso:g}")
    return ", ".join(parts)


def describe_exposure(t: float) -> str:
    """Human form of an exposure time: '1/60 s', '0.3 s', '8 s'."""
    if t < 0.5 and t > 0:
        inverse = 1.0 / t
        if abs(inverse - round(inverse)) < 0.02 * inverse:
            return f"1/{round(inverse)} s"
    return f"{t:.4g} s"
