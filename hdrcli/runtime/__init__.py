"""Running learned models on whole images: tiling with bounded memory, torch inference."""

from hdrcli.runtime.tiling import run_tiled, tile_weights
from hdrcli.runtime.torch_runtime import TorchRunner, load_model

__all__ = ["TorchRunner", "load_model", "run_tiled", "tile_weights"]
