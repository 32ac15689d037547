"""Input and output: reading frames (LDR, RAW, scene folders), EXIF, and HDR writers/readers."""

from hdrcli.io.exif import ExifInfo, read_exif
from hdrcli.io.frames import Frame, read_frame, read_frames
from hdrcli.io.hdr import read_hdr, write_hdr, HDR_EXTENSIONS

__all__ = [
    "ExifInfo",
    "Frame",
    "HDR_EXTENSIONS",
    "read_exif",
    "read_frame",
    "read_frames",
    "read_hdr",
    "write_hdr",
]
