"""Running learned models on whole images: torch or ONNX Runtime, tiled with bounded memory."""

from __future__ import annotations

import re

from hdrcli.errors import HdrError
from hdrcli.models import get_spec
from hdrcli.models.registry import MULTI_EXPOSURE
from hdrcli.runtime.tiling import run_tiled, tile_weights
from hdrcli.runtime.torch_runtime import TorchRunner, load_model

RUNTIMES = ("torch", "onnx")

# The faster CPU runtime per backend for `--runtime auto`, measured with bench/speed.py
# (1500x1000 bracket, frames in memory, 2-core machine, session 25, 6 runs): dfgnet with ONNX
# Runtime 0.73-0.83 s against torch 0.77-1.14 s (its synthesis export runs 1.3-1.5x faster
# than torch); lffnet 0.82-1.12 s against 0.76-1.05 s (a tie at best); tunet 1.08-1.25 s
# against 0.92-1.30 s and twice the memory (ONNX Runtime's convolutions with few channels
# are slower than torch's channels-last ones). The single-image backends stay on torch
# (their tile exports: 1.7x slower, see README).
FASTER_RUNTIME = {"lffnet": "torch", "dfgnet": "onnx", "tunet": "torch", "twostage": "torch", "stack": "torch"}


def auto_runtime(name: str, size: str | None = None, tile: int | None = None) -> str:
    """The runtime ``--runtime auto`` uses for a backend: the measured faster one
    (FASTER_RUNTIME), torch when that is ONNX Runtime but its exports are missing or stale."""
    choice = FASTER_RUNTIME.get(name, "torch")
    if choice == "onnx":
        from hdrcli.runtime.torch_runtime import DEFAULT_TILE, available_sizes
        from hdrcli.weights import check_export_current, onnx_path, synthesis_onnx_path

        sizes = [size] if size else available_sizes(name)
        if not sizes:
            return "torch"
        needed = [onnx_path(name, sizes[0], tile or DEFAULT_TILE.get(name, 512))]
        if get_spec(name).kind == MULTI_EXPOSURE:
            needed.append(synthesis_onnx_path(name, sizes[0]))
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
    import torch

    from hdrcli.threads import configure_torch

    configure_torch()  # torch's pools sized by hdrcli.threads (--threads), not every core
    automatic = runtime == "auto"
    if automatic:  # FASTER_RUNTIME was measured on a CPU: on a GPU torch
        on_gpu = device != "cpu" and torch.cuda.is_available()
        runtime = "torch" if on_gpu else auto_runtime(name, size, tile)
        if runtime == "onnx" and bracket is not None:
            from hdrcli.runtime.onnx_runtime import OnnxRunner

            frames, reference, maps = bracket
            if not OnnxRunner.takes(frames, frames // 2 if reference is None else reference, maps):
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
        elif not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise HdrError(f"--device {device}: torch sees {torch.cuda.device_count() if torch.cuda.is_available() else 0} "
                           "CUDA device(s), numbered from 0")
    if runtime == "onnx":
        from hdrcli.runtime.onnx_runtime import OnnxRunner

        # auto: brackets the exports do not take run on torch (see OnnxRunner)
        fallback = _torch_device(device) if automatic else None
        return OnnxRunner(name, size=size, device=device, tile=tile, fallback_device=fallback)
    return TorchRunner(name, size=size, device=_torch_device(device), tile=tile)


def _torch_device(device: str) -> str:
    """torch's device for --device: auto is CUDA when torch sees one, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise HdrError("--device cuda: no CUDA device is available to torch")
    return device


__all__ = ["FASTER_RUNTIME", "RUNTIMES", "TorchRunner", "auto_runtime", "load_model", "make_runner", "run_tiled", "tile_weights"]
