"""The backend registry: every way hdrcli can turn frames into an image, in one place.

One entry per backend name, classical or learned (timm-style: architecture modules
register themselves with :func:`register_model`; callers use :func:`get_backend`,
:func:`list_backends`, :func:`create_model`). An entry holds:

* ``kind``: ``multi-exposure`` (brackets) or ``single-image``;
* ``family``: ``classical`` (OpenCV-based merges) or ``learned`` (networks);
* ``output``: ``radiance`` (linear HDR in the shortest exposure's units) or ``display``
  (a tone-mapped-looking LDR image in [0, 1]);
* ``builder``: learned: ``f(**config) -> nn.Module``; classical: ``f() -> merge function``
  (imported on demand, so listing backends loads neither OpenCV merges nor torch models);
* ``configs``: learned sizes (``paper``: the paper's widths and depths; ``lite``: sized for
  CPU training and fast inference) -> builder keyword arguments;
* weights: ``weights/<name>-<size>.pt`` and ONNX exports (:mod:`hdrcli.weights`).

This module imports no torch: learned backends are declared here (name, kind, sizes), and an
architecture module is imported the first time its builder, configs or paper are asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrcli.errors import HdrError
from hdrcli.weights import onnx_path as _onnx_path
from hdrcli.weights import weights_path as _weights_path

MULTI_EXPOSURE = "multi-exposure"
SINGLE_IMAGE = "single-image"
CLASSICAL = "classical"
LEARNED = "learned"
# The learned backends, declared here so that resolving a name (kind, sizes, weights) needs no
# torch: `hdr fuse` on ONNX Runtime never imports it (1.0-1.3 s). Each name is an
# architecture module of hdrcli.models, imported the first time its builder or configs are
# asked for; it registers them with :func:`register_model`. Listing order.
_LEARNED_KINDS = {"dfgnet": MULTI_EXPOSURE, "lffnet": MULTI_EXPOSURE, "tunet": MULTI_EXPOSURE,
                  "twostage": SINGLE_IMAGE, "stack": SINGLE_IMAGE}
LEARNED_SIZES = ("lite", "paper")  # every learned backend's configs, in the order weights are looked for


@dataclass(frozen=True)
class _Architecture:
    """What an architecture module registers: its builder and per-size configs, and the paper."""

    builder: Callable[..., Any]
    configs: dict[str, dict[str, Any]]
    paper: str
    description: str
    stated_params: dict[str, int]


_ARCHITECTURES: dict[str, _Architecture] = {}


def _architecture(name: str) -> _Architecture:
    """The registered architecture of a learned backend, importing its module on first use."""
    if name not in _ARCHITECTURES:
        importlib.import_module(f"hdrcli.models.{name}")
    return _ARCHITECTURES[name]


@dataclass(frozen=True)
class BackendSpec:
    """What the registry knows about one backend. Learned entries read their builder, configs,
    paper and description from the architecture module (imported on first use)."""

    name: str
    kind: str
    family: str
    output: str
    summary: str = ""  # classical: the description
    merge: Callable[..., Any] | None = field(default=None, repr=False, compare=False)  # classical: f() -> merge
    needs_exposures: bool = True

    @property
    def learned(self) -> bool:
        return self.family == LEARNED

    @property
    def builder(self) -> Callable[..., Any] | None:
        """Learned: ``f(**config) -> nn.Module``; classical: ``f() -> merge function``."""
        return _architecture(self.name).builder if self.learned else self.merge

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        return _architecture(self.name).configs if self.learned else {}

    @property
    def paper(self) -> str:
        return _architecture(self.name).paper if self.learned else ""

    @property
    def description(self) -> str:
        return _architecture(self.name).description if self.learned else self.summary

    @property
    def stated_params(self) -> dict[str, int]:
        """Parameter counts printed in the paper, per size."""
        return _architecture(self.name).stated_params if self.learned else {}

    def weights_path(self, size: str) -> Path:
        """Shipped weights file of a size (whether or not it exists)."""
        return _weights_path(self.name, size)

    def onnx_path(self, size: str, tile: int) -> Path:
        return _onnx_path(self.name, size, tile)

    def sizes_with_weights(self) -> list[str]:
        """Sizes whose shipped weights exist, lite first (no torch needed)."""
        return [size for size in (LEARNED_SIZES if self.learned else ()) if self.weights_path(size).is_file()]

    @property
    def details(self) -> dict[str, Any]:
        """Learned: the paper and, per size, parameters (counted on the meta device) and weight status."""
        if not self.learned:
            return {}
        sizes = {size: {"params": parameter_count(self.name, size), "weights": self.weights_path(size).is_file()}
                 for size in self.configs}
        return {"paper": self.paper, "sizes": sizes}

    def as_dict(self) -> dict[str, Any]:
        """The ``hdr backends --json`` record."""
        return {"name": self.name, "kind": self.kind, "family": self.family, "output": self.output,
                "description": self.description, "needs_exposures": self.needs_exposures, "details": self.details}


BackendInfo = BackendSpec  # earlier name of the record
ModelSpec = BackendSpec  # the models' name for it

_REGISTRY: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add a backend; a name can be registered once (re-registering the same module is allowed)."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old.family != spec.family:
        raise ValueError(f"backend name '{spec.name}' is already registered as {old.family}")
    _REGISTRY[spec.name] = spec
    return spec


def register_model(
    name: str, *, kind: str, configs: dict[str, dict[str, Any]], paper: str, description: str,
    stated_params: dict[str, int] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a learned builder ``f(**config) -> nn.Module`` under ``name`` (a name
    declared in this module, with the same kind and sizes)."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if _LEARNED_KINDS.get(name) != kind or set(configs) != set(LEARNED_SIZES):
            raise ValueError(f"learned backend '{name}' must be declared in hdrcli.backends with kind {kind} "
                             f"and sizes {', '.join(LEARNED_SIZES)}")
        _ARCHITECTURES[name] = _Architecture(builder, configs, paper, description, stated_params or {})
        return builder

    return wrap


def _classical_merge(function: str) -> Callable[[], Callable[..., Any]]:
    def build() -> Callable[..., Any]:
        return getattr(importlib.import_module("hdrcli.merge.classical"), function)

    return build


for _spec in (
    BackendSpec("debevec", MULTI_EXPOSURE, CLASSICAL, "radiance",
                "Debevec & Malik 1997 calibration + merge, highlight guard", _classical_merge("merge_debevec")),
    BackendSpec("robertson", MULTI_EXPOSURE, CLASSICAL, "radiance",
                "Robertson et al. 2003 calibration + merge (OpenCV)", _classical_merge("merge_robertson")),
    BackendSpec("mertens", MULTI_EXPOSURE, CLASSICAL, "display",
                "Mertens et al. 2007 exposure fusion (OpenCV): LDR in [0, 1]", _classical_merge("merge_mertens"),
                needs_exposures=False),
):
    register_backend(_spec)
for _name, _kind in _LEARNED_KINDS.items():
    register_backend(BackendSpec(_name, _kind, LEARNED, "radiance"))
CLASSICAL_BACKENDS: dict[str, BackendSpec] = {n: s for n, s in _REGISTRY.items() if s.family == CLASSICAL}


def _names() -> str:
    return ", ".join(_REGISTRY)


def get_backend(name: str) -> BackendSpec:
    """The registry entry of a backend name (imports no model: see BackendSpec)."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise HdrError(f"unknown backend '{name}' (available: {_names()})")
    return spec


def list_backends(include_learned: bool = True) -> list[BackendSpec]:
    """All backends: classical first, then learned in a fixed order."""
    classical = [s for s in _REGISTRY.values() if s.family == CLASSICAL]
    return classical + list_models() if include_learned else classical


def learned_backends() -> list[BackendSpec]:
    return list_models()


# ----------------------------------------------------------------------------- learned models

def list_models() -> list[BackendSpec]:
    """The learned backends, in a fixed order."""
    return [_REGISTRY[name] for name in _LEARNED_KINDS]


def get_spec(name: str) -> BackendSpec:
    """The entry of a learned backend (a model); classical names are refused."""
    spec = _REGISTRY.get(name)
    if spec is None or not spec.learned:
        what = f"'{name}' is a classical backend, not a learned model" if spec else f"unknown model '{name}'"
        raise HdrError(f"{what} (learned: {', '.join(s.name for s in list_models())})")
    return spec


def create_model(name: str, size: str = "lite", *, pretrained: bool = False, **overrides: Any):
    """Build a learned model by name and size; ``pretrained`` loads the shipped weights
    (checked against weights/manifest.json, loaded with weights_only=True)."""
    spec = get_spec(name)
    if size not in spec.configs:
        raise HdrError(f"model '{name}' has no size '{size}' (sizes: {', '.join(spec.configs)})")
    model = spec.builder(**{**spec.configs[size], **overrides})
    if pretrained:
        from hdrcli.weights import load_state, state_dict_of

        path = spec.weights_path(size)
        if not path.is_file():
            raise HdrError(f"no weights for {name} ({size}); train them with `hdr train --backend {name} --size {size}`", path)
        try:
            model.load_state_dict(state_dict_of(load_state(path, verify=True), path))
        except RuntimeError as exc:
            raise HdrError(f"weights do not fit {name}-{size} ({(str(exc).splitlines() or [''])[0][:160]})", path) from None
    return model


def parameter_count(name: str, size: str) -> int:
    """Trainable parameters of a configuration, counted without allocating (meta device)."""
    import torch

    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.builder(**spec.configs[size])
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
