"""hdrcli: high-dynamic-range imaging from the command line.

Data flows one way through the package::

    io (frames, EXIF, RAW)  ->  exposure  ->  align  ->  merge / models  ->  io.writers + tonemap

Each stage is a plain numpy API usable without the CLI (``hdrcli.cli`` only parses
arguments and calls :mod:`hdrcli.pipeline`).
"""

__version__ = "0.1.0"


def _quiet_opencv() -> None:
    # OpenCV prints internal notices (e.g. about multi-channel MatExpr) to stderr; hdrcli
    # reports problems itself.
    try:
        import cv2.utils.logging as cv_logging

        cv_logging.setLogLevel(cv_logging.LOG_LEVEL_ERROR)
    except Exception:  # pragma: no cover - cv2 missing or without the logging API
        pass


_quiet_opencv()
