"""ONNX export of the learned backends (``hdr export``).

DO-Conv layers are folded first. FFT blocks export to ONNX DFT nodes with torch's dynamo
exporter; ONNX Runtime runs them only with static shapes (REFERENCE.md), so each file is
exported for one square tile size and inference tiles the image (hdrcli.runtime.tiling).
The stack model exports its network part (the generated exposure stack); its
least-squares HDR synthesis runs in torch after ONNX Runtime.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from hdrcli.errors import HdrError
from hdrcli.io.atomic import atomic_path
from hdrcli.models import get_spec
from hdrcli.models.registry import MULTI_EXPOSURE
from hdrcli.weights import onnx_path, sha256_file, update_manifest

__all__ = ["export_model", "export_onnx", "onnx_path", "record_export"]


class _NetworkPart(torch.nn.Module):
    """Wraps a model's ``network_forward`` (stack model) so it exports as ``forward``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.network_forward(x)


class _RecordedCodes(torch.nn.Module):
    """A bracket network with the frames as recorded as a second input, ``codes`` (see
    :meth:`hdrcli.models.blocks.ExposureMergeHead.maps`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.model(x, codes=codes)


def export_onnx(name: str, output: str | os.PathLike[str], *, size: str | None = None, tile: int = 512) -> Path:
    """Export the trained ``name`` model for tile x tile inputs to ``output`` (atomic)."""
    from hdrcli.runtime.torch_runtime import load_model

    model, _ = load_model(name, size)
    return export_model(model, get_spec(name).kind, output, tile)


def export_model(model: torch.nn.Module, kind: str, output: str | os.PathLike[str], tile: int = 512) -> Path:
    """Export any (folded) model of a kind ('multi-exposure' / 'single-image') for tile x tile inputs."""
    if tile % 16 or tile < 64:
        raise HdrError(f"--tile must be a multiple of 16 and at least 64, got {tile}")
    shape = (1, 3, 6, tile, tile) if kind == MULTI_EXPOSURE else (1, 3, tile, tile)
    example: tuple[torch.Tensor, ...] = (torch.rand(*shape),)
    names = ["input"]
    if hasattr(model, "network_forward"):
        net = _NetworkPart(model)
    elif getattr(model, "merge_head", None) is not None:  # the head weighs the frames as recorded
        net = _RecordedCodes(model)
        example += (torch.rand(1, 3, 3, tile, tile),)
        names.append("codes")
    else:
        net = model
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise HdrError("output must end in .onnx", output)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with atomic_path(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), example, str(tmp), dynamo=True, input_names=names,
                          output_names=["output"], external_data=False, verbose=False)
    return output


def record_export(name: str, size: str, tile: int, path: Path) -> None:
    """Add an ONNX file to weights/manifest.json (sha256, source weights, tile, command)."""
    import shlex
    import sys

    source = get_spec(name).weights_path(size)
    update_manifest({
        "file": path.name,
        "sha256": sha256_file(path),
        "backend": name,
        "size": size,
        "format": "onnx",
        "tile": tile,
        "exported_from": {"file": source.name, "sha256": sha256_file(source)},
        "command": " ".join(shlex.quote(a) for a in ["hdr", *sys.argv[1:]]),
        "status": "ONNX export of the weights above (DO-Conv folded, static tile input)",
    })
