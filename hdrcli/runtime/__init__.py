"""Running learned models on whole images: torch or ONNX Runtime, tiled with bounded memory."""

from __future__ import annotations

import re

from hdrcli.errors import HdrError
from hdrcli.runtime.tiling import run_tiled, tile_weights
from hdrcli.runtime.torch_runtime import TorchRunner, load_model

RUNTIMES = ("torch", "onnx")

# The faster CPU runtime per backend for `--runtime auto`, from bench/runtime_threads.py
# (1500x1000 bracket, default tile 256, 2-core machine under load): lffnet torch 6.3 s CPU
# (44.8 s wall) against ONNX Runtime 12.4 s (80.1 s) on 1 thread, 48.7 / 27.4 s CPU on 2
# threads with the default OpenMP spinning. The other backends were not measured in that
# run and stay on torch (the issue's own figures: torch 2.2 s, ONNX Runtime 6.1 s).
FASTER_RUNTIME = {"lffnet": "torch", "dfgnet": "torch", "tunet": "torch", "twostage": "torch", "stack": "torch"}


def auto_runtime(name: str, size: str | None = None, tile: int | None = None) -> str:
    """The runtime ``--runtime auto`` uses for a backend: the measured faster one
    (FASTER_RUNTIME), torch when that is ONNX Runtime but no export for the tile exists."""
    choice = FASTER_RUNTIME.get(name, "torch")
    if choice == "onnx":
        from hdrcli.runtime.torch_runtime import DEFAULT_TILE, available_sizes
        from hdrcli.weights import onnx_path

        sizes = [size] if size else available_sizes(name)
        if not any(onnx_path(name, s, tile or DEFAULT_TILE.get(name, 512)).is_file() for s in sizes):
            return "torch"
    return choice


def make_runner(name: str, runtime: str = "torch", size: str | None = None, device: str = "auto",
                tile: int | None = None):
    """A runner (``fuse``/``expand`` methods) for a learned backend.

    device 'auto' uses CUDA when available, else the CPU.
    """
    import torch

    from hdrcli.threads import configure_torch

    configure_torch()  # torch's pools sized by hdrcli.threads (--threads), not every core
    if runtime == "auto":
        runtime = auto_runtime(name, size, tile)
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

        return OnnxRunner(name, size=size, device=device, tile=tile)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise HdrError("--device cuda: no CUDA device is available to torch")
    return TorchRunner(name, size=size, device=device, tile=tile)


__all__ = ["FASTER_RUNTIME", "RUNTIMES", "TorchRunner", "auto_runtime", "load_model", "make_runner", "run_tiled", "tile_weights"]
