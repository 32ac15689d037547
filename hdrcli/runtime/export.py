"""ONNX export of the learned backends (``hdr export``).

DO-Conv layers are folded first. FFT blocks export to ONNX DFT nodes with torch's dynamo
exporter; ONNX Runtime runs them only with static shapes (REFERENCE.md), so each file is
exported for one square tile size and inference tiles the image (hdrcli.runtime.tiling).
The stack model exports its network part (the generated exposure stack); its
least-squares HDR synthesis runs in torch after ONNX Runtime.

Bracket networks with a merge head also export their reduced-resolution part (synthesis and
ghost gate, :func:`export_synthesis`) for any size a multiple of 16: there the FFT blocks use
matrix-product transforms (:mod:`hdrcli.models.dft`), which export with symbolic sizes; and
their merge head (:func:`export_head`), which ONNX Runtime runs per full-resolution tile.
The single-image networks also export for a whole photo of any size (:func:`export_whole`;
the stack model's exposure stack, traced without its shape-dependent padding: the runtime pads),
as the torch runtime runs them.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

from hdrcli.errors import HdrError
from hdrcli.io.atomic import atomic_path, private_scratch
from hdrcli.backends import get_spec
from hdrcli.models.registry import MULTI_EXPOSURE
from hdrcli.runtime.runner import SYNTHESIS_MULTIPLE, WHOLE_EXPORTS
from hdrcli.weights import onnx_path, sha256_file, update_manifest

__all__ = ["SYNTHESIS_EXAMPLE", "export_backend", "export_head", "export_model", "export_synthesis", "export_whole",
           "onnx_path", "record_export"]

WHOLE_MAX_SIDE = 16384  # the whole-photo export's largest side (photos above 2 MP are downsized to 1 MP first)


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


class _ReducedSynthesis(torch.nn.Module):
    """A bracket network's synthesis and its merge head's ghost gate for 3 frames, the middle one
    the reference: what the runtime runs once on the reduced bracket (see
    :meth:`hdrcli.runtime.torch_runtime.TiledRunner.fuse`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        torch._check(x.shape[-2] % SYNTHESIS_MULTIPLE == 0)
        torch._check(x.shape[-1] % SYNTHESIS_MULTIPLE == 0)
        return self.model.reduced_maps(x, 1)


class _MergeHead(torch.nn.Module):
    """A bracket network's merge head for 3 frames, the middle one the reference, given the
    synthesis and the ghost gate's maps (upsampled from the reduced bracket): the output with
    the frames' weights and the synthesis share (1, 3 + 3 + 1, H, W), as
    :meth:`~hdrcli.models.blocks.MultiExposureNet.gated_output` with ``return_maps``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, synthesis: torch.Tensor, gate: torch.Tensor, x: torch.Tensor, codes: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        return self.model.gated_output(synthesis, gate, x, 1, True, codes, t)


# The example the synthesis graph is traced on: sides of 16 x an odd number, so the transforms'
# splits are those every multiple of 16 has (see hdrcli.models.dft._split).
SYNTHESIS_EXAMPLE = (SYNTHESIS_MULTIPLE * 23, SYNTHESIS_MULTIPLE * 25)
SYNTHESIS_MAX_SIDE = 8192


def export_synthesis(model: torch.nn.Module, output: str | os.PathLike[str]) -> Path:
    """Export a (folded) bracket network's reduced-resolution part for 3-frame inputs
    (1, 3, 6, H, W), H and W any multiples of 16: outputs ``synthesis`` (1, 3, H, W) and ``gate``
    (1, 3, H, W), as :meth:`~hdrcli.models.blocks.MultiExposureNet.synthesize` and
    :meth:`~hdrcli.models.blocks.ExposureMergeHead.gate_confidence`."""
    from hdrcli.models.blocks import matrix_dfts

    if getattr(model, "merge_head", None) is None:
        raise HdrError("only a bracket network with a merge head has a reduced-resolution part to export")
    limit = SYNTHESIS_MAX_SIDE // SYNTHESIS_MULTIPLE
    rows, cols = torch.export.Dim("rows", min=2, max=limit), torch.export.Dim("cols", min=2, max=limit)
    with matrix_dfts(model), torch.no_grad():
        return _export(_ReducedSynthesis(model), (torch.rand(1, 3, 6, *SYNTHESIS_EXAMPLE),), output, ["input"],
                       ["synthesis", "gate"], ({3: SYNTHESIS_MULTIPLE * rows, 4: SYNTHESIS_MULTIPLE * cols},))


def export_head(model: torch.nn.Module, output: str | os.PathLike[str]) -> Path:
    """Export a (folded) bracket network's merge head for 3 frames of any size: inputs ``synthesis``
    (1, 3, H, W), ``gate`` (1, 3, H, W), ``x`` (1, 3, 6, H, W, the network input), ``codes``
    (1, 3, 3, H, W, the frames as recorded), ``t`` (1, 3, relative exposures); output (1, 7, H, W)."""
    if getattr(model, "merge_head", None) is None:
        raise HdrError("only a bracket network with a merge head has a merge head to export")
    side = 64
    rows = torch.export.Dim("rows", min=8, max=SYNTHESIS_MAX_SIDE)
    cols = torch.export.Dim("cols", min=8, max=SYNTHESIS_MAX_SIDE)
    plane = {2: rows, 3: cols}
    frames = {3: rows, 4: cols}
    example = (torch.rand(1, 3, side, side), torch.rand(1, 3, side, side), torch.rand(1, 3, 6, side, side),
               torch.rand(1, 3, 3, side, side), torch.tensor([[1.0, 4.0, 16.0]]))
    with torch.no_grad():
        return _export(_MergeHead(model), example, output, ["synthesis", "gate", "x", "codes", "t"], ["output"],
                       (plane, plane, frames, frames, None))


def export_whole(model: torch.nn.Module, output: str | os.PathLike[str]) -> Path:
    """Export a (folded) single-image network for a whole photo (1, 3, H, W), H and W any sizes from
    8 to WHOLE_MAX_SIDE; output (1, 3, H, W), or for the stack model its exposure stack
    (1, frames, 3, H, W)."""
    rows = torch.export.Dim("rows", min=8, max=WHOLE_MAX_SIDE)
    cols = torch.export.Dim("cols", min=8, max=WHOLE_MAX_SIDE)
    net = _NetworkPart(model) if hasattr(model, "network_forward") else model
    with torch.no_grad():
        return _export(net, (torch.rand(1, 3, 96, 128),), output, ["input"], ["output"], ({2: rows, 3: cols},))


def _export(net: torch.nn.Module, example: tuple[torch.Tensor, ...], output: str | os.PathLike[str],
            inputs: list[str], outputs: list[str], dynamic_shapes: tuple | None = None) -> Path:
    """torch.onnx.export (dynamo) of ``net`` to ``output`` (.onnx), atomically and quietly."""
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise HdrError("output must end in .onnx", output)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    # private_scratch: the dynamo export fills $TMPDIR/torchinductor_USER, outside the user's folders.
    with atomic_path(output) as tmp, warnings.catch_warnings(), private_scratch():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), example, str(tmp), dynamo=True, input_names=inputs, output_names=outputs,
                          external_data=False, verbose=False, dynamic_shapes=dynamic_shapes)
    return output


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
    return _export(net, example, output, names, ["output"])


def export_backend(name: str, *, output: str | os.PathLike[str] | None = None, size: str | None = None,
                   tile: int | None = None, synthesis: bool = False, head: bool = False, whole: bool = False,
                   overwrite: bool = False) -> list[Path]:
    """``hdr export``: the trained backend's ONNX files; returns the paths written.

    By default the shipped exports, recorded in weights/manifest.json: the tile graph at the
    backend's default tile and, for a bracket network with a merge head, the synthesis graph and
    the head graph; for twostage and stack the whole-photo graph. ``tile`` / ``synthesis`` / ``head`` /
    ``whole``: only that one; ``output``: one file there (tile graph unless another is asked
    for), not recorded. Every target is checked before any is written: an existing one needs
    ``overwrite``, and the weights read are never overwritten.
    """
    from hdrcli.io.atomic import check_outputs
    from hdrcli.runtime.runner import DEFAULT_TILE, available_sizes
    from hdrcli.runtime.torch_runtime import load_model
    from hdrcli.weights import head_onnx_path, manifest_path, synthesis_onnx_path, weights_path, whole_onnx_path

    if sum((synthesis, head, whole, tile is not None)) > 1:
        raise HdrError("export one of --tile, --synthesis, --head, --whole (or all shipped exports without them)")
    sizes = [size] if size else available_sizes(name)
    model, chosen = load_model(name, size)  # refuses a backend without weights before anything is written
    has_head = getattr(model, "merge_head", None) is not None
    if (synthesis or head) and not has_head:
        raise HdrError(f"'{name}' ({chosen}) has no {'synthesis' if synthesis else 'head'} graph to export: only the "
                       "bracket networks with a merge head (lite) have one")
    if whole and name not in WHOLE_EXPORTS:
        raise HdrError(f"'{name}' has no whole-photo graph to export: only {', '.join(WHOLE_EXPORTS)} have one")
    side = tile or DEFAULT_TILE.get(name, 512)
    part_path = {"synthesis": synthesis_onnx_path(name, chosen), "head": head_onnx_path(name, chosen),
                 "whole": whole_onnx_path(name, chosen)}
    asked = "synthesis" if synthesis else "head" if head else "whole" if whole else None
    parts: list[tuple[str, Path]] = []  # (part, path): "tile", "synthesis", "head" or "whole"
    if output is not None:
        parts.append((asked or "tile", Path(output)))
    elif asked:
        parts.append((asked, part_path[asked]))
    else:
        parts.append(("tile", onnx_path(name, chosen, side)))
        if tile is None and has_head:
            parts += [("synthesis", part_path["synthesis"]), ("head", part_path["head"])]
        if tile is None and name in WHOLE_EXPORTS:
            parts.append(("whole", part_path["whole"]))
    check_outputs([p for _, p in parts], [*(weights_path(name, s) for s in sizes), manifest_path()], overwrite)
    written = []
    for part, path in parts:
        if part == "synthesis":
            written.append(export_synthesis(model, path))
        elif part == "head":
            written.append(export_head(model, path))
        elif part == "whole":
            written.append(export_whole(model, path))
        else:
            written.append(export_model(model, get_spec(name).kind, path, side))
        if output is None:
            record_export(name, chosen, side if part == "tile" else None, written[-1], part)
    return written


_EXPORT_STATUS = {
    "tile": "ONNX export of the weights above (DO-Conv folded, static tile input)",
    "synthesis": "ONNX export of the synthesis and ghost gate of the weights above (DO-Conv folded, 3 frames, "
                 "sides any multiples of 16, FFTs as matrix products)",
    "head": "ONNX export of the merge head of the weights above (3 frames, middle reference, any size)",
    "whole": "ONNX export of the weights above for a whole photo of any size",
}


def record_export(name: str, size: str, tile: int | None, path: Path, part: str = "tile") -> None:
    """Add an ONNX file to weights/manifest.json (sha256, source weights, tile, command); ``part``:
    "tile" (the whole network on ``tile``-pixel tiles), "synthesis" (:func:`export_synthesis`),
    "head" (:func:`export_head`) or "whole" (:func:`export_whole`), the last three with ``tile`` None."""
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
        "status": _EXPORT_STATUS[part],
    })
