"""Shared fixtures: paths to ../shared data (skipped when absent) and small generated images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
EXAMPLES = ROOT / "examples"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{'/'.join(parts)}")
    return path


@pytest.fixture
def frobisher() -> list[Path]:
    return sorted(shared_path("brackets", "frobisher").glob("*.jpg"))


@pytest.fixture
def example_bracket() -> list[Path]:
    return sorted((EXAMPLES / "bracket").glob("*.jpg"))


def digest(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def radiance_scene(h: int = 96, w: int = 128, seed: int = 0, stops: float = 12.0) -> np.ndarray:
    """Linear RGB radiance spanning ``stops`` stops with texture, colour and a hot spot."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 2.0 ** (stops * (xx / (w - 1)) - stops / 2)  # horizontal exposure ramp
    texture = 0.7 + 0.3 * rng.random((h, w)).astype(np.float32)
    colour = np.stack([0.9 + 0.1 * np.sin(yy / 7), np.full_like(yy, 1.0), 0.8 + 0.2 * np.cos(yy / 5)], axis=-1)
    return (base * texture)[..., None] * colour


def textured_scene(h: int = 120, w: int = 160, seed: int = 0, stops: float = 10.0) -> np.ndarray:
    """Linear RGB radiance with blob texture at several scales spanning ``stops`` stops."""
    import cv2

    rng = np.random.default_rng(seed)
    field = np.zeros((h, w), np.float32)
    for sigma, weight in ((12, 1.0), (4, 0.5), (1.5, 0.25)):
        noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        field += weight * noise / noise.std()
    field = (field - field.min()) / (field.max() - field.min())
    luminance = 2.0 ** (stops * field - stops)  # in (2^-stops, 1]
    tint = 0.8 + 0.2 * rng.random(3).astype(np.float32)
    return (luminance[..., None] * tint).astype(np.float32)
