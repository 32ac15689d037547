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


def make_session(path: Path, device: str = "auto", once: bool = False):
    """An InferenceSession on CUDA if asked/available and working, else CPU; returns (session, provider).

    ``once``: a graph run once per photo, at a size of its own (the synthesis export): no memory
    pattern, which ONNX Runtime plans for repeated shapes (tunet at 512 x 384: peak 1.5 GB with it,
    0.8 GB without, and 20% faster)."""
    import onnxruntime as ort

    from hdrcli.threads import current

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a missing CUDA library is reported by us
    # hdrcli's thread count (--threads, or a batch job's share), not ORT's default of every core.
    options.intra_op_num_threads = current()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = not once
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
    """Runs an exported backend with ONNX Runtime (same API as TorchRunner).

    Bracket networks with a merge head and a synthesis export (``hdr export --synthesis``) run
    as the torch runtime does above 1 MP: the synthesis and ghost gate once on the reduced
    bracket with ONNX Runtime, the merge head per full-resolution tile (torch, CPU). Smaller
    photos run the tile export. ``fallback_device``: brackets the exports do not take (not 3
    frames with the middle reference, or weight maps) run on torch on that device instead of
    being refused, and so do photos up to 1 MP, where the tile export is slower than torch
    (``--runtime auto``). ``reduced_synthesis`` False: the tile export everywhere.
    """

    def __init__(self, name: str, size: str | None = None, device: str = "auto", tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, path: str | Path | None = None, fallback_device: str | None = None,
                 reduced_synthesis: bool = True) -> None:
        from hdrcli.weights import check_export_current, is_shipped, onnx_path, synthesis_onnx_path, verify_shipped

        self.name, self.spec = name, get_spec(name)
        self.tile, self.tile_option = tile or DEFAULT_TILE.get(name, 512), tile
        self.overlap = overlap
        self.fallback_device, self._torch = fallback_device, None
        self.size = size
        sizes = [size] if size else available_sizes(name)
        if path is None:
            candidates = [onnx_path(name, s, self.tile) for s in sizes]
            found = [p for p in candidates if p.is_file()]
            if not found:
                raise HdrError(f"no ONNX export of '{name}' for tile {self.tile}; run `hdr export --backend {name} --tile {self.tile}`")
            path = check_export_current(found[0])  # sha256 as in the manifest, exported from today's weights
        elif is_shipped(path):
            verify_shipped(path)
        self.path, self.device = Path(path), device
        self._session = None
        if device == "cuda":  # a missing CUDA provider is reported before any work
            self._open_tiles()
        self.stack_steps = None
        self.synthesis_path, self._synthesis = None, None
        size_of_path = next((s for s in sizes if onnx_path(name, s, self.tile) == self.path), None)
        synthesis = synthesis_onnx_path(name, size_of_path) if size_of_path else None
        if name == "stack":
            from hdrcli.runtime.torch_runtime import load_model

            self.stack_steps = load_model(name, size)[0].steps
        elif reduced_synthesis and synthesis is not None and synthesis.is_file():  # above 1 MP, as torch
            from hdrcli.runtime.torch_runtime import load_model

            self.synthesis_path = check_export_current(synthesis)  # verified now, opened when first needed
            self.head_model = load_model(name, size_of_path)[0]
            self.reduced_synthesis = True

    def _open_tiles(self):
        """The tile export's session, opened when first needed (photos above 1 MP with a synthesis
        export never need it: 0.1-0.3 s and its memory saved)."""
        if self._session is None:
            self._session, provider = make_session(self.path, self.device)
            self.inputs = {i.name for i in self._session.get_inputs()}
            info(f"ONNX Runtime: {self.path.name} on {provider}")
        return self._session

    def _open_synthesis(self):
        """The synthesis export's session, opened when first needed (photos above 1 MP)."""
        if self._synthesis is None:
            self._synthesis, provider = make_session(self.synthesis_path, self.device, once=True)
            info(f"ONNX Runtime: {self.synthesis_path.name} on {provider}")
        return self._synthesis

    def _padded(self, x: torch.Tensor) -> np.ndarray:
        """A tile padded to the export's static shape (edge tiles of images smaller than the tile)."""
        h, w = x.shape[-2:]
        ph, pw = self.tile - h, self.tile - w
        if ph or pw:
            flat = F.pad(x.reshape(-1, *x.shape[-3:]), (0, pw, 0, ph), mode="replicate")
            x = flat.reshape(*x.shape[:-2], self.tile, self.tile)
        return x.numpy().astype(np.float32)

    @staticmethod
    def takes(frames: int, reference: int, maps: bool) -> bool:
        """Whether the exports fuse this bracket: they are traced on a (short, reference, long) input."""
        return (frames, reference) == (3, 1) and not maps

    def _check_bracket(self, frames: int, reference: int, maps: bool) -> None:
        if not self.takes(frames, reference, maps):
            what = "weight maps" if maps else f"a {frames}-frame bracket with reference {reference}"
            raise HdrError(f"the ONNX export of '{self.name}' fuses 3 frames with the middle reference, not {what}: "
                           "use --runtime torch (or auto)")

    def fuse(self, frames: list[np.ndarray], exposures: list[float], *args, reference: int | None = None,
             maps: bool = False, **kwargs) -> np.ndarray:
        n = len(frames)
        taken = self.takes(n, n // 2 if reference is None else reference, maps)
        if self.fallback_device and not (taken and self._reduces(*frames[0].shape[:2])):
            if self._torch is None:
                from hdrcli.runtime.torch_runtime import TorchRunner

                self._torch = TorchRunner(self.name, size=self.size, device=self.fallback_device, tile=self.tile_option)
                info(f"{self.name} runs this bracket on torch (ONNX Runtime: 3 frames, middle reference, above 1 MP)")
            return self._torch.fuse(frames, exposures, *args, reference=reference, maps=maps, **kwargs)
        return super().fuse(frames, exposures, *args, reference=reference, maps=maps, **kwargs)

    def _reduces(self, height: int, width: int) -> bool:
        """Whether a photo of this size takes the reduced-synthesis path (where, on a CPU, ONNX
        Runtime beats torch for dfgnet; the tile export does not: 1.65-1.78 s against 1.39-1.44 s
        for the example bracket)."""
        from hdrcli.runtime import torch_runtime

        return self.reduced_synthesis and height * width > torch_runtime.SYNTHESIS_ABOVE

    def _reduced(self, x: torch.Tensor, reference: int) -> tuple[torch.Tensor, torch.Tensor]:
        synthesis, gate = self._open_synthesis().run(None, {"input": x.numpy().astype(np.float32, copy=False)})
        return torch.from_numpy(synthesis), torch.from_numpy(gate)

    def _forward(self, x: torch.Tensor, reference: int | None = None, maps: bool = False,
                 codes: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        session = self._open_tiles()
        feeds = {"input": self._padded(x)}
        if "codes" in self.inputs:  # exports with a merge head weigh the frames as recorded
            feeds["codes"] = self._padded(x[:, :, :3] if codes is None else codes)
        out = torch.from_numpy(session.run(None, feeds)[0])
        if self.name == "stack":
            out = out.flatten(1, 2)
        return out[..., :h, :w]
