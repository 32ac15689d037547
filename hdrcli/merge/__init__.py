"""Classical merges: camera response calibration and radiance merging (OpenCV based)."""

from hdrcli.merge.classical import merge_debevec, merge_mertens, merge_robertson
from hdrcli.merge.response import (
    calibrate_response,
    canonical_bracket,
    canonical_frames,
    canonical_luts,
    linear_response,
    load_response,
    save_response,
    self_calibrate,
)

__all__ = [
    "calibrate_response",
    "canonical_bracket",
    "canonical_frames",
    "canonical_luts",
    "linear_response",
    "load_response",
    "merge_debevec",
    "merge_mertens",
    "merge_robertson",
    "save_response",
    "self_calibrate",
]
