"""ONNX Runtime backend: CUDA provider when it works, else CPU; static-shape tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hdrcli.errors import HdrError
from hdrcli.log import info
from hdrcli.models import get_spec
from hdrcli.runtime.torch_runtime import DEFAULT_OVERLAP, DEFAULT_TILE, TiledRunner, available_sizes


def make_session(path: Path, device: str = "auto"):
    """An InferenceSession on CUDA if asked/available and working, else CPU; returns (session, provider)."""
    import onnxruntime as ort

    from hdrcli.threads import current

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a missing CUDA library is reported by us
    # hdrcli's thread count (--threads, or a batch job's share), not ORT's default of every core.
    options.intra_op_num_threads = current()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    wanted = []
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
        wanted.append("CUDAExecutionProvider")
    if device == "cuda" and not wanted:
        raise HdrError("--device cuda: ONNX Runtime has no working CUDA provider here")
    wanted.append("CPUExecutionProvider")
    session = ort.InferenceSession(str(path), options, providers=wanted)
    provider = session.get_providers()[0]
    if device == "cuda" and provider != "CUDAExecutionProvider":
        raise HdrError("--device cuda: ONNX Runtime fell back to the CPU provider")
    return session, provider


class OnnxRunner(TiledRunner):
    """Runs an exported backend over tiles with ONNX Runtime (same API as TorchRunner)."""

    def __init__(self, name: str, size: str | None = None, device: str = "auto", tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, path: str | Path | None = None) -> None:
        from hdrcli.weights import check_export_current, is_shipped, onnx_path, verify_shipped

        self.name, self.spec = name, get_spec(name)
        self.tile = tile or DEFAULT_TILE.get(name, 512)
        self.overlap = overlap
        if path is None:
            sizes = [size] if size else available_sizes(name)
            candidates = [onnx_path(name, s, self.tile) for s in sizes]
            found = [p for p in candidates if p.is_file()]
            if not found:
                raise HdrError(f"no ONNX export of '{name}' for tile {self.tile}; run `hdr export --backend {name} --tile {self.tile}`")
            path = check_export_current(found[0])  # sha256 as in the manifest, exported from today's weights
        elif is_shipped(path):
            verify_shipped(path)
        self.path = Path(path)
        self.session, self.provider = make_session(self.path, device)
        self.inputs = {i.name for i in self.session.get_inputs()}
        info(f"ONNX Runtime: {self.path.name} on {self.provider}")
        self.stack_steps = None
        if name == "stack":
            from hdrcli.runtime.torch_runtime import load_model

            self.stack_steps = load_model(name, size)[0].steps

    def _padded(self, x: torch.Tensor) -> np.ndarray:
        """A tile padded to the export's static shape (edge tiles of images smaller than the tile)."""
        h, w = x.shape[-2:]
        ph, pw = self.tile - h, self.tile - w
        if ph or pw:
            flat = F.pad(x.reshape(-1, *x.shape[-3:]), (0, pw, 0, ph), mode="replicate")
            x = flat.reshape(*x.shape[:-2], self.tile, self.tile)
        return x.numpy().astype(np.float32)

    def _check_bracket(self, frames: int, reference: int, maps: bool) -> None:
        # The export is traced on a (short, reference, long) tile: other bracket shapes and the
        # weight maps run on torch.
        if (frames, reference) != (3, 1) or maps:
            what = "weight maps" if maps else f"a {frames}-frame bracket with reference {reference}"
            raise HdrError(f"the ONNX export of '{self.name}' fuses 3 frames with the middle reference, not {what}: "
                           "use --runtime torch (or auto)")

    def _forward(self, x: torch.Tensor, reference: int | None = None, maps: bool = False,
                 codes: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        feeds = {"input": self._padded(x)}
        if "codes" in self.inputs:  # exports with a merge head weigh the frames as recorded
            feeds["codes"] = self._padded(x[:, :, :3] if codes is None else codes)
        out = torch.from_numpy(self.session.run(None, feeds)[0])
        if self.name == "stack":
            out = out.flatten(1, 2)
        return out[..., :h, :w]
