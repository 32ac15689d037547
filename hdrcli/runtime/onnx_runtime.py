"""ONNX Runtime backend: CUDA provider when it works, else CPU; no torch for brackets above 1 MP.

Exports (``hdr export``): the whole network for static square tiles, and for bracket networks
with a merge head the reduced-resolution part (synthesis and ghost gate, any size a multiple of
16) and the merge head (any size). A 3-frame bracket above 1 MP runs on the last two as on
torch (:class:`hdrcli.runtime.runner.TiledRunner`), without importing torch (1.0-1.3 s).
The single-image backends have whole-photo exports (any size; the stack model's exposure stack,
whose synthesis runs in torch) and expand photos as torch does (whole up to 2 MP, larger ones
downsized to 1 MP); twostage without torch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hdrcli.backends import get_spec
from hdrcli.errors import HdrError
from hdrcli.io.atomic import private_scratch
from hdrcli.log import info
from hdrcli.runtime.runner import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    ONNX_WHOLE_PIXELS,
    WHOLE_IMAGE_PIXELS,
    TiledRunner,
    available_sizes,
)


def load_onnxruntime():
    """The onnxruntime module, loaded so that it leaves no file behind.

    onnxruntime 1.31 embeds Microsoft's 1DS telemetry SDK, which writes a session file
    (``$TMPDIR/.ses``: first-launch time and an SDK id) when the module loads: a file outside the
    folders the user named (found by scripts/fuzz.py). It is loaded in a private scratch folder,
    removed at once (:func:`hdrcli.io.atomic.private_scratch`; the SDK writes there only while
    loading), and its telemetry events are switched off.
    """
    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]
    with private_scratch():
        import onnxruntime
    if hasattr(onnxruntime, "disable_telemetry_events"):
        onnxruntime.disable_telemetry_events()
    return onnxruntime


def make_session(path: Path, device: str = "auto", once: bool = False, layout: bool = True):
    """An InferenceSession on CUDA if asked/available and working, else CPU; returns (session, provider).

    ``once``: a graph run once per photo, at a size of its own (the synthesis export): no memory
    pattern, which ONNX Runtime plans for repeated shapes (tunet at 512 x 384: peak 1.5 GB with it,
    0.8 GB without, and 20% faster). ``layout`` False (the whole-photo exports): graph optimisations
    up to "extended", without the CPU layout transformations (blocked NCHWc), which on twostage's
    graph cost 4.4-4.9 s and 1.93 GB against 1.6-1.8 s and 1.19 GB at 1024 x 768, and no memory
    arena (below)."""
    ort = load_onnxruntime()

    from hdrcli.runtime.runner import nvidia_device_present
    from hdrcli.threads import current

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a missing CUDA library is reported by us
    # hdrcli's thread count (--threads, or a batch job's share), not ORT's default of every core.
    options.intra_op_num_threads = current()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if layout
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    options.enable_mem_pattern = not once
    # The whole-photo graph runs once per photo: its buffers go back when the run ends, not to an
    # arena that would hold them through the composition (12 MP `hdr expand`: 3.1 GB peak with it).
    options.enable_cpu_mem_arena = layout
    wanted = []
    if device in ("auto", "cuda") and nvidia_device_present() and "CUDAExecutionProvider" in ort.get_available_providers():
        wanted.append("CUDAExecutionProvider")  # without its CUDA libraries it falls back to the CPU (below)
    if device == "cuda" and not wanted:
        raise HdrError("--device cuda: ONNX Runtime has no working CUDA provider here")
    wanted.append("CPUExecutionProvider")
    ort.set_default_logger_severity(4)  # a CUDA provider that fails to load is reported by us, not on stderr
    session = ort.InferenceSession(str(path), options, providers=wanted)
    provider = session.get_providers()[0]
    if device == "cuda" and provider != "CUDAExecutionProvider":
        raise HdrError("--device cuda: ONNX Runtime fell back to the CPU provider")
    return session, provider


class OnnxRunner(TiledRunner):
    """Runs an exported backend with ONNX Runtime (same API as TorchRunner).

    Bracket networks with a merge head and its exports (``hdr export``: synthesis and head) run
    as the torch runtime does above 1 MP: the synthesis and ghost gate once on the reduced
    bracket, the merge head per full-resolution tile, both on ONNX Runtime (without a head
    export, the head runs on torch), with the weight maps when asked. Smaller photos run the
    tile export (no weight maps). ``fallback_device``: brackets the exports do not take (not 3
    frames with the middle reference) run on torch on that device instead of being refused, and
    so do photos up to 1 MP, where the tile export is slower than torch (``--runtime auto``).
    ``reduced_synthesis`` False: the tile export everywhere.
    """

    def __init__(self, name: str, size: str | None = None, device: str = "auto", tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, path: str | Path | None = None, fallback_device: str | None = None,
                 reduced_synthesis: bool = True) -> None:
        from hdrcli.weights import (
            check_export_current,
            head_onnx_path,
            is_shipped,
            onnx_path,
            synthesis_onnx_path,
            verify_shipped,
            whole_onnx_path,
        )

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
        self.head_path, self._head_session, self._head_model = None, None, None
        self.whole_path, self._whole = None, None
        self.size_of_path = next((s for s in sizes if onnx_path(name, s, self.tile) == self.path), None)
        whole = whole_onnx_path(name, self.size_of_path) if self.size_of_path else None
        if tile is None and whole is not None and whole.is_file():  # as torch: the whole photo, no tiles
            self.whole_path = check_export_current(whole)
            self.whole_image_pixels = WHOLE_IMAGE_PIXELS
        synthesis = synthesis_onnx_path(name, self.size_of_path) if self.size_of_path else None
        self.whole_multiple = 1  # the whole-photo export's sides must be multiples of this
        if name == "stack":
            from hdrcli.runtime.torch_runtime import load_model

            stack_model = load_model(name, size)[0]
            # Its export is traced without the model's own padding to a multiple (shape-dependent).
            self.stack_steps, self.whole_multiple = stack_model.steps, stack_model.multiple
        elif reduced_synthesis and synthesis is not None and synthesis.is_file():  # above 1 MP, as torch
            self.synthesis_path = check_export_current(synthesis)  # verified now, opened when first needed
            head = head_onnx_path(name, self.size_of_path)
            self.head_path = check_export_current(head) if head.is_file() else None  # else the head runs on torch
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

    def _open_head(self):
        """The merge head export's session, opened when first needed (photos above 1 MP)."""
        if self._head_session is None:
            self._head_session, provider = make_session(self.head_path, self.device)
            info(f"ONNX Runtime: {self.head_path.name} on {provider}")
        return self._head_session

    def _open_whole(self):
        """The whole-photo export's session (twostage), opened when first needed."""
        if self._whole is None:
            self._whole, provider = make_session(self.whole_path, self.device, once=True, layout=False)
            info(f"ONNX Runtime: {self.whole_path.name} on {provider}")
        return self._whole

    def _padded(self, x: np.ndarray) -> np.ndarray:
        """A tile padded to the export's static shape (edge tiles of images smaller than the tile)."""
        h, w = x.shape[-2:]
        ph, pw = self.tile - h, self.tile - w
        if ph or pw:
            x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
        return np.ascontiguousarray(x, np.float32)

    @staticmethod
    def takes(frames: int, reference: int) -> bool:
        """Whether the exports fuse this bracket: they are traced on a (short, reference, long) input.
        (Weight maps come from the merge head, on photos above 1 MP: :meth:`fuse`.)"""
        return (frames, reference) == (3, 1)

    def _check_bracket(self, frames: int, reference: int, maps: bool) -> None:
        if not self.takes(frames, reference):
            raise HdrError(f"the ONNX export of '{self.name}' fuses 3 frames with the middle reference, not a "
                           f"{frames}-frame bracket with reference {reference}: use --runtime torch (or auto)")

    def _fallback(self, height: int, width: int, frames: int | None = None, reference: int | None = None) -> str | None:
        """Why a job of this shape goes to torch under ``--runtime auto`` (None: it stays here).
        ``frames`` None: a single photo."""
        if not self.fallback_device:
            return None
        if frames is None:
            if self.whole_path is not None and ONNX_WHOLE_PIXELS < height * width <= self.whole_image_pixels:
                return "photos of 1.1-2 MP"
            return None
        taken = self.takes(frames, frames // 2 if reference is None else reference)
        return None if taken and self._reduces(height, width) else "3 frames, middle reference, above 1 MP"

    def prepare(self, height: int, width: int, frames: int | None = None, reference: int | None = None) -> None:
        fallback = self._fallback(height, width, frames, reference)
        if fallback:
            self._torch_runner(fallback)

    def fuse(self, frames: list[np.ndarray], exposures: list[float], *args, reference: int | None = None,
             maps: bool = False, **kwargs) -> np.ndarray:
        fallback = self._fallback(*frames[0].shape[:2], len(frames), reference)
        if fallback:
            return self._torch_runner(fallback).fuse(frames, exposures, *args, reference=reference, maps=maps, **kwargs)
        reduced = self._reduces(*frames[0].shape[:2])
        if maps and not reduced:  # the tile export has no weight maps; the merge head (above 1 MP) has
            raise HdrError(f"the ONNX tile export of '{self.name}' gives no weight maps (photos up to 1 MP): "
                           "use --runtime torch (or auto)")
        return super().fuse(frames, exposures, *args, reference=reference, maps=maps, **kwargs)

    def predict(self, image: np.ndarray, progress=None) -> np.ndarray:
        """As :meth:`TiledRunner.predict`; with a torch fallback (``--runtime auto``), photos run whole
        above ONNX_WHOLE_PIXELS go to torch (ONNX Runtime's whole run takes twice its memory)."""
        fallback = self._fallback(*np.shape(image)[:2])
        if fallback:
            return self._torch_runner(fallback).predict(image, progress)
        return super().predict(image, progress)

    def _torch_runner(self, what: str):
        """The torch runner for what the ONNX exports do not take (made when first needed)."""
        if self._torch is None:
            from hdrcli.runtime.torch_runtime import TorchRunner

            self._torch = TorchRunner(self.name, size=self.size, device=self.fallback_device, tile=self.tile_option)
            info(f"{self.name} runs on torch here (ONNX Runtime: {what})")
        return self._torch

    def _reduces(self, height: int, width: int) -> bool:
        """Whether a photo of this size takes the reduced-synthesis path (where, on a CPU, ONNX
        Runtime beats torch for dfgnet; the tile export does not: 1.65-1.78 s against 1.39-1.44 s
        for the example bracket)."""
        from hdrcli.runtime import runner

        return self.reduced_synthesis and height * width > runner.SYNTHESIS_ABOVE

    def _reduced(self, x: np.ndarray, reference: int) -> tuple[np.ndarray, np.ndarray]:
        synthesis, gate = self._open_synthesis().run(None, {"input": np.ascontiguousarray(x, np.float32)})
        return synthesis, gate

    def _merge(self, synthesis: np.ndarray, learned: np.ndarray, x: np.ndarray, reference: int, maps: bool,
               codes: np.ndarray, t: np.ndarray):
        if self.head_path is None:  # no head export: the head on torch (CPU)
            from hdrcli.runtime.torch_runtime import load_model, merge_head

            if self._head_model is None:
                self._head_model = load_model(self.name, self.size_of_path)[0]
            return merge_head(self._head_model, "cpu", synthesis, learned, x, reference, maps, codes, t)
        feeds = {"synthesis": synthesis, "gate": learned, "x": x, "codes": codes, "t": t}
        out = self._open_head().run(None, {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()})[0]
        return out if maps else out[:, :3]

    def _forward(self, x: np.ndarray, reference: int | None = None, maps: bool = False,
                 codes: np.ndarray | None = None) -> np.ndarray:
        h, w = x.shape[-2:]
        if self.whole_path is not None:  # any size, padded as the model pads itself
            out = self._open_whole().run(None, {"input": _pad_to_multiple(x, self.whole_multiple)})[0]
        else:
            session = self._open_tiles()
            feeds = {"input": self._padded(x)}
            if "codes" in self.inputs:  # exports with a merge head weigh the frames as recorded
                feeds["codes"] = self._padded(x[:, :, :3] if codes is None else codes)
            out = session.run(None, feeds)[0]
        if self.name == "stack":
            out = out.reshape(out.shape[0], -1, *out.shape[-2:])
        return out[..., :h, :w]


def _pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """(..., H, W) padded at the bottom and right to multiples of ``multiple`` as
    :func:`hdrcli.models.blocks.pad_to_multiple` pads (mirrored, or repeated where the image is
    narrower than the padding), float32 contiguous."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "edge"
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode=mode)
    return np.ascontiguousarray(x, np.float32)
