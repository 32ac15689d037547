"""Running learned models on whole images: torch or ONNX Runtime, tiled with bounded memory."""

from __future__ import annotations

from hdrcli.errors import HdrError
from hdrcli.runtime.tiling import run_tiled, tile_weights
from hdrcli.runtime.torch_runtime import TorchRunner, load_model

RUNTIMES = ("torch", "onnx")


def make_runner(name: str, runtime: str = "torch", size: str | None = None, device: str = "auto",
                tile: int | None = None):
    """A runner (``fuse``/``expand`` methods) for a learned backend.

    device 'auto' uses CUDA when available, else the CPU.
    """
    import torch

    if runtime not in RUNTIMES:
        raise HdrError(f"unknown runtime '{runtime}' (use {', '.join(RUNTIMES)})")
    if runtime == "onnx":
        from hdrcli.runtime.onnx_runtime import OnnxRunner

        return OnnxRunner(name, size=size, device=device, tile=tile)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise HdrError("--device cuda: no CUDA device is available to torch")
    return TorchRunner(name, size=size, device=device, tile=tile)


__all__ = ["RUNTIMES", "TorchRunner", "load_model", "make_runner", "run_tiled", "tile_weights"]
