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
            "Debevec & Malik 1997: response calibration + log-domain merge (OpenCV), clipped-highlight guard",
        ),
        BackendInfo(
            "robertson", "multi-exposure", "classical", "radiance",
            "Robertson et al. 2003: iterative response calibration + weighted linear merge (OpenCV)",
        ),
        BackendInfo(
            "mertens", "multi-exposure", "classical", "display",
            "Mertens et al. 2007 exposure fusion (OpenCV): an LDR image in [0, 1], no radiance",
            needs_exposures=False,
        ),
    )
}


def list_backends() -> list[BackendInfo]:
    """All registered backends, classical first."""
    return list(CLASSICAL_BACKENDS.values())


def get_backend(name: str) -> BackendInfo:
    for backend in list_backends():
        if backend.name == name:
            return backend
    names = ", ".join(b.name for b in list_backends())
    raise HdrError(f"unknown backend '{name}' (available: {names})")
