"""Running learned models on whole images: torch or ONNX Runtime, tiled with bounded memory.

Importing this package imports no torch: the ONNX Runtime path of a bracket needs none.
"""

from __future__ import annotations

import re

from hdrcli.backends import MULTI_EXPOSURE, get_spec
from hdrcli.errors import HdrError
from hdrcli.runtime.tiling import run_tiled, tile_weights

RUNTIMES = ("torch", "onnx")

# The faster CPU runtime per backend for `--runtime auto`, measured per `hdr fuse` call (one
# bracket per process, as a user runs it: bench/profile_fuse.py, 1.5 MP iPhone bracket, session
# 26). Since ONNX Runtime runs the synthesis and the merge head without torch (importing torch
# alone takes 1.0-1.3 s): lffnet 1.6 s end to end against 2.6 s on torch, dfgnet 1.5 s against
# 2.6 s. tunet stays on torch: ONNX Runtime's first run of its synthesis is slow (convolutions
# with 12-48 channels; 1.5-2.3 s of network against 1.0 s) and takes 1.0 GB against 0.6 GB.
# The single-image backends run their whole-photo exports (session 27, `hdr expand` of a 1024 x 768
# photo: twostage 3.1-3.3 s against 5.4-6.1 s on torch, stack 6.4-6.9 s against 8.7-9.4 s; 12 MP
# twostage 12.0-12.3 s against 13.4-15.7 s, stack 15.5 s against 21.3 s; the stack's synthesis runs
# in torch); with an explicit --tile, and for photos of 1.1-2 MP (OnnxRunner.predict: memory), torch.
FASTER_RUNTIME = {"lffnet": "onnx", "dfgnet": "onnx", "tunet": "torch", "twostage": "onnx", "stack": "onnx"}


def auto_runtime(name: str, size: str | None = None, tile: int | None = None) -> str:
    """The runtime ``--runtime auto`` uses for a backend: the measured faster one
    (FASTER_RUNTIME), torch when that is ONNX Runtime but its exports are missing or stale."""
    choice = FASTER_RUNTIME.get(name, "torch")
    if choice == "onnx":
        from hdrcli.runtime.runner import DEFAULT_TILE, WHOLE_EXPORTS, available_sizes
        from hdrcli.weights import check_export_current, onnx_path, synthesis_onnx_path, whole_onnx_path

        sizes = [size] if size else available_sizes(name)
        if not sizes or (name in WHOLE_EXPORTS and tile is not None):  # tiles: torch (measured on whole photos)
            return "torch"
        needed = [onnx_path(name, sizes[0], tile or DEFAULT_TILE.get(name, 512))]
        if get_spec(name).kind == MULTI_EXPOSURE:
            needed.append(synthesis_onnx_path(name, sizes[0]))
        if name in WHOLE_EXPORTS:
            needed.append(whole_onnx_path(name, sizes[0]))
        try:
            for path in needed:
                check_export_current(path)
        except HdrError:
            return "torch"
    return choice


def make_runner(name: str, runtime: str = "auto", size: str | None = None, device: str = "auto",
                tile: int | None = None, bracket: tuple[int, int | None, bool] | None = None):
    """A runner (``fuse``/``expand`` methods) for a learned backend.

    device 'auto' uses CUDA when available, else the CPU. runtime 'auto': torch on a GPU, else
    the faster one for the backend (:data:`FASTER_RUNTIME`) when its exports are current.
    ``bracket``: (frames, reference index or None for the middle one, weight maps) when known
    before the frames are read: ``auto`` then picks torch for a bracket the ONNX exports do not
    take, instead of loading both runtimes.
    """
    automatic = runtime == "auto"
    if automatic:  # FASTER_RUNTIME was measured on a CPU: on a GPU torch
        runtime = "torch" if device != "cpu" and _torch_sees_cuda() else auto_runtime(name, size, tile)
        if runtime == "onnx" and bracket is not None:
            from hdrcli.runtime.onnx_runtime import OnnxRunner

            frames, reference = bracket[:2]  # weight maps: the head export gives them too
            if not OnnxRunner.takes(frames, frames // 2 if reference is None else reference):
                runtime = "torch"
    if runtime not in RUNTIMES:
        raise HdrError(f"unknown runtime '{runtime}' (use {', '.join(RUNTIMES + ('auto',))})")
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]{1,3})?", device):
        raise HdrError(f"unknown device '{device}' (use auto, cpu, cuda, cuda:N)")
    if device.startswith("cuda:"):
        index = int(device[5:])
        if runtime == "onnx":
            if index != 0:
                raise HdrError(f"--device {device}: the onnx runtime uses the first CUDA device only (use cuda)")
            device = "cuda"
        elif index >= (count := _torch_cuda_count()):
            raise HdrError(f"--device {device}: torch sees {count} "
                           "CUDA device(s), numbered from 0")
    if runtime == "onnx":
        from hdrcli.runtime.onnx_runtime import OnnxRunner

        # auto: brackets the exports do not take run on torch (see OnnxRunner)
        fallback = _torch_device(device) if automatic else None
        return OnnxRunner(name, size=size, device=device, tile=tile, fallback_device=fallback)
    from hdrcli.runtime.torch_runtime import TorchRunner

    return TorchRunner(name, size=size, device=_torch_device(device), tile=tile)


def _torch_sees_cuda() -> bool:
    """Whether torch has a CUDA device. Without an NVIDIA device node torch is not imported to ask
    (1.0-1.3 s that the ONNX Runtime path does not need)."""
    from hdrcli.runtime.runner import nvidia_device_present

    if not nvidia_device_present():
        return False
    import torch

    return torch.cuda.is_available()


def _torch_cuda_count() -> int:
    if not _torch_sees_cuda():
        return 0
    import torch

    return torch.cuda.device_count()


def _torch_device(device: str) -> str:
    """torch's device for --device: auto is CUDA when torch sees one, else the CPU."""
    if device == "auto":
        return "cuda" if _torch_sees_cuda() else "cpu"
    if device == "cuda" and not _torch_sees_cuda():
        raise HdrError("--device cuda: no CUDA device is available to torch")
    return device


def __getattr__(name: str):
    """``TorchRunner`` and ``load_model``, imported (with torch) when first asked for."""
    if name in ("TorchRunner", "load_model"):
        from hdrcli.runtime import torch_runtime

        return getattr(torch_runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FASTER_RUNTIME", "RUNTIMES", "TorchRunner", "auto_runtime", "load_model", "make_runner", "run_tiled",
           "tile_weights"]
