"""The backend registry: every way hdrcli can turn frames into an image.

A backend has a name, a kind (``multi-exposure`` brackets or ``single-image``), a family
(``classical`` OpenCV methods or ``learned`` networks) and what it outputs (``radiance``:
linear HDR in the shortest exposure's units; ``display``: a tone-mapped-looking LDR image).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hdrcli.errors import HdrError


@dataclass(frozen=True)
class BackendInfo:
    name: str
    kind: str
    family: str
    output: str
    description: str
    needs_exposures: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CLASSICAL_BACKENDS: dict[str, BackendInfo] = {
    b.name: b
    for b in (
        BackendInfo(
            "debevec", "multi-exposure", "classical", "radiance",
            "Debevec & Malik 1997 calibration + merge (OpenCV), highlight guard",
        ),
        BackendInfo(
            "robertson", "multi-exposure", "classical", "radiance",
            "Robertson et al. 2003 calibration + merge (OpenCV)",
        ),
        BackendInfo(
            "mertens", "multi-exposure", "classical", "display",
            "Mertens et al. 2007 exposure fusion (OpenCV): LDR in [0, 1]",
            needs_exposures=False,
        ),
    )
}


def learned_backends() -> list[BackendInfo]:
    """The learned architectures of hdrcli.models, with parameter counts and weight status."""
    from hdrcli.models.registry import list_models, parameter_count

    backends = []
    for spec in list_models():
        sizes = {
            size: {"params": parameter_count(spec.name, size), "weights": spec.weights_path(size).is_file()}
            for size in spec.configs
        }
        backends.append(
            BackendInfo(
                spec.name, spec.kind, "learned", "radiance", spec.description,
                details={"paper": spec.paper, "sizes": sizes},
            )
        )
    return backends


def list_backends(include_learned: bool = True) -> list[BackendInfo]:
    """All backends: classical first, then learned (whose listing builds models on the meta device)."""
    classical = list(CLASSICAL_BACKENDS.values())
    return classical + learned_backends() if include_learned else classical


def get_backend(name: str) -> BackendInfo:
    if name in CLASSICAL_BACKENDS:
        return CLASSICAL_BACKENDS[name]
    for backend in learned_backends():
        if backend.name == name:
            return backend
    names = ", ".join(b.name for b in list_backends())
    raise HdrError(f"unknown backend '{name}' (available: {names})")
