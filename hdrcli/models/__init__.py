"""Learned HDR architectures, one module per paper, and the registry that builds them.

>>> from hdrcli.models import create_model
>>> net = create_model("lffnet", "lite")

Multi-exposure models take (B, N, 6, H, W) brackets of N >= 2 frames (see
:func:`hdrcli.models.blocks.exposure_input`) and the reference's index (default the
middle frame); single-image models take (B, 3, H, W) LDR images; both return
(B, 3, H, W) linear HDR.
"""

from hdrcli.models.blocks import exposure_input, fold_do_convs
from hdrcli.models.registry import (
    MULTI_EXPOSURE,
    SINGLE_IMAGE,
    ModelSpec,
    count_parameters,
    create_model,
    get_spec,
    gflops_per_megapixel,
    list_models,
    parameter_count,
    preferred_layout,
)
from hdrcli.models.synthesis import hdr_synthesis, solve_stack_response

__all__ = [
    "MULTI_EXPOSURE",
    "SINGLE_IMAGE",
    "ModelSpec",
    "count_parameters",
    "create_model",
    "exposure_input",
    "fold_do_convs",
    "get_spec",
    "gflops_per_megapixel",
    "hdr_synthesis",
    "list_models",
    "parameter_count",
    "preferred_layout",
    "solve_stack_response",
]
