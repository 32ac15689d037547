"""Camera simulation: real radiance maps -> bracketed LDR frames with exact ground truth.

A sample is rendered from a crop of a real HDR radiance map (``../shared/data/radiance``)
through a randomised camera:

1. **Exposure.** The reference exposure is auto-exposed: the crop is scaled so that its
   log-average luminance lands at 0.18 * 2**U(-1, 1) (as a camera meter, with error).
   The other frames sit -s and +s stops from it, s = 2 or 3 (``ev_steps``).
2. **Motion** (on ``motion_prob`` of the samples): camera shake, a small random
   rotation and translation per non-reference frame, and a moving foreground object (a
   textured ellipse cut from another radiance map) at a different position in each frame.
   The ground truth is the reference frame's geometry.
3. **Sensor**: linear signal clipped at 1, Poisson-Gaussian noise with variance a*x + b
   from a real darktable profile (camera and ISO at random), then clipping again.
4. **Camera response**: one of the 201 DoRF curves (Grossberg & Nayar), the Nikon D7000
   curve (Lin & Brown), sRGB, or a gamma curve; 8-bit quantisation.

Ground truth, in the field's convention: linear radiance in the shortest exposure's
units (a pixel at the short frame's clipping level = 1), clipped to [0, 1] since no frame
holds information beyond it. Single-image samples take the reference frame as input and
return radiance in units of its own clipping level, up to ``max_radiance``.

Camera data are read from ``../shared/data/{crf,noise}`` when present; without them the
simulator falls back to sRGB/gamma curves and a fixed noise level (and says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hdrcli.io.hdr import read_hdr
from hdrcli.log import warn

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
RADIANCE_EXTENSIONS = (".hdr", ".exr", ".pfm")


# ----------------------------------------------------------------------------- camera curves

@dataclass
class CameraCurves:
    """Forward camera response curves f: irradiance [0, 1] -> brightness [0, 1], sampled on 1024 points."""

    curves: np.ndarray  # (K, 1024)
    names: list[str]

    @classmethod
    def load(cls, data_dir: Path = SHARED_DATA) -> "CameraCurves":
        x = np.linspace(0, 1, 1024)
        curves = [np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055), x ** (1 / 2.2)]
        names = ["srgb", "gamma2.2"]
        dorf = data_dir / "crf" / "dorf_201.npz"
        if dorf.is_file():
            d = np.load(dorf)
            for i in range(d["irradiance"].shape[0]):
                curves.append(np.interp(x, d["irradiance"][i], d["brightness"][i]))
                names.append(f"dorf{i:03d}")
        nikon = data_dir / "crf" / "nikon_d7000" / "raw2jpg_respFcns.txt"
        if nikon.is_file():
            table = np.loadtxt(nikon, skiprows=1)[:256].mean(axis=1)
            curves.append(np.interp(x, np.linspace(0, 1, table.size), table))
            names.append("nikon_d7000")
        if len(names) == 2:
            warn("camera response data not found: simulating sRGB and gamma 2.2 cameras only")
        curves = np.maximum.accumulate(np.clip(np.stack(curves), 0, 1), axis=1)
        return cls(curves.astype(np.float32), names)

    def apply(self, index: int, irradiance: np.ndarray) -> np.ndarray:
        table = self.curves[index]
        return np.interp(np.clip(irradiance, 0, 1), np.linspace(0, 1, table.size), table).astype(np.float32)


@dataclass
class NoiseProfiles:
    """Poisson-Gaussian sensor noise parameters (a, b per channel): variance = a*x + b."""

    a: np.ndarray  # (K, 3)
    b: np.ndarray  # (K, 3)

    @classmethod
    def load(cls, data_dir: Path = SHARED_DATA) -> "NoiseProfiles":
        path = data_dir / "noise" / "darktable_noiseprofiles.json"
        a, b = [], []
        if path.is_file():
            for maker in json.loads(path.read_text())["noiseprofiles"]:
                for model in maker["models"]:
                    for profile in model["profiles"]:
                        if len(profile.get("a", [])) == 3 and len(profile.get("b", [])) == 3:
                            a.append(profile["a"])
                            b.append(profile["b"])
        if not a:
            warn("noise profiles not found: using one moderate noise level")
            a, b = [[1e-4] * 3], [[1e-6] * 3]
        return cls(np.abs(np.asarray(a, np.float32)), np.abs(np.asarray(b, np.float32)))


# ----------------------------------------------------------------------------- radiance maps

def list_radiance_maps(root: str | Path) -> list[Path]:
    """All radiance maps under ``root`` (recursively), sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in RADIANCE_EXTENSIONS and p.is_file())


def split_maps(paths: list[Path], every: int = 8) -> tuple[list[Path], list[Path]]:
    """(train, validation): every ``every``-th map (by sorted name) is held out (at least one)."""
    validation = paths[every // 2 :: every] or paths[-1:]
    held = set(validation)
    return [p for p in paths if p not in held], validation


def load_radiance(path: Path, max_side: int = 1024) -> np.ndarray:
    """A radiance map as float32 RGB, latitude-longitude maps cropped to their middle band."""
    hdr = read_hdr(path)
    h, w = hdr.shape[:2]
    if abs(w / h - 2.0) < 0.05:  # equirectangular: keep the less distorted middle band
        hdr = hdr[h // 4 : 3 * h // 4]
    scale = max_side / max(hdr.shape[:2])
    if scale < 1:
        hdr = cv2.resize(hdr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    hdr = np.nan_to_num(hdr, nan=0.0, posinf=0.0)
    return np.maximum(hdr, 0).astype(np.float32)


# ----------------------------------------------------------------------------- samples

@dataclass
class BracketSample:
    ldr: np.ndarray  # (3, H, W, 3) float32 in [0, 1], short, reference, long
    exposures: np.ndarray  # (3,) relative, shortest = 1
    hdr: np.ndarray  # (H, W, 3) ground truth, shortest exposure's units, [0, 1]
    motion: bool
    curve: np.ndarray | None = None  # (1024,) the forward camera curve used, when simulated


@dataclass
class SingleSample:
    ldr: np.ndarray  # (H, W, 3) float32 in [0, 1]
    hdr: np.ndarray  # (H, W, 3) linear, 1 = the input's clipping level
    stack: np.ndarray  # (P, H, W, 3) noise-free renders at EVs ``evs`` (for the stack model)
    evs: np.ndarray
    curve: np.ndarray  # (1024,) the forward camera curve used


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def _warp(image: np.ndarray, angle: float, dx: float, dy: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class CameraSimulator:
    """Renders training and validation samples from a list of radiance maps."""

    def __init__(self, maps: list[Path], patch: int = 128, ev_steps: tuple[int, ...] = (2, 3),
                 motion_prob: float = 0.5, max_radiance: float = 64.0, data_dir: Path = SHARED_DATA,
                 max_side: int = 1024, stack_evs: tuple[float, ...] = (-2, -1, 0, 1, 2),
                 reference_ev: tuple[float, float] = (-1.0, 1.0)) -> None:
        if not maps:
            raise ValueError("no radiance maps to simulate from")
        self.paths = list(maps)
        self.images = [load_radiance(p, max_side) for p in self.paths]
        self.patch, self.ev_steps, self.motion_prob, self.max_radiance = patch, ev_steps, motion_prob, max_radiance
        self.stack_evs = stack_evs  # EVs of the noise-free stack in single-image samples
        self.reference_ev = reference_ev  # brackets: reference exposure, EV around auto-exposure (key 0.18)
        self.curves = CameraCurves.load(data_dir)
        self.noise = NoiseProfiles.load(data_dir)

    # -- scene ------------------------------------------------------------------
    def _crop(self, rng: np.random.Generator, size: int, index: int | None = None) -> np.ndarray:
        image = self.images[rng.integers(len(self.images)) if index is None else index]
        scale = rng.uniform(0.5, 1.0) if min(image.shape[:2]) * 0.5 >= size else 1.0
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        if h < size or w < size:
            image = cv2.resize(image, (max(w, size), max(h, size)), interpolation=cv2.INTER_LINEAR)
            h, w = image.shape[:2]
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crop = image[y : y + size, x : x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(np.rot90(crop, rng.integers(4)))

    def _object(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A textured ellipse (radiance, soft alpha) to move through the scene."""
        texture = self._crop(rng, size)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        ry, rx = rng.uniform(0.15, 0.35, 2) * size
        alpha = (((yy - size / 2) / ry) ** 2 + ((xx - size / 2) / rx) ** 2 <= 1).astype(np.float32)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)[..., None]
        return texture * np.float32(2.0 ** rng.uniform(-2, 2)), alpha

    # -- camera -----------------------------------------------------------------
    def _expose(self, rng: np.random.Generator, irradiance: np.ndarray, curve: int, profile: int, gain: float) -> np.ndarray:
        signal = np.clip(irradiance, 0, 1)
        variance = (self.noise.a[profile] * gain) * signal + self.noise.b[profile] * gain**2
        noisy = np.clip(signal + rng.standard_normal(signal.shape).astype(np.float32) * np.sqrt(variance), 0, 1)
        return np.round(self.curves.apply(curve, noisy) * 255) / 255

    def bracket(self, rng: np.random.Generator, motion: bool | None = None) -> BracketSample:
        size = self.patch
        margin = size // 8
        scene = self._crop(rng, size + 2 * margin)
        lum = _luminance(scene)
        key = float(np.exp(np.mean(np.log(lum + 1e-6))))
        reference_scale = 0.18 * 2.0 ** rng.uniform(*self.reference_ev) / max(key, 1e-9)
        s = int(rng.choice(self.ev_steps))
        scales = reference_scale * 2.0 ** np.array([-s, 0, s], np.float64)
        motion = bool(rng.random() < self.motion_prob) if motion is None else motion
        curve = int(rng.integers(len(self.curves.names)))
        profile = int(rng.integers(len(self.noise.a)))
        gain = float(2.0 ** rng.uniform(-1, 2))  # ISO-like noise gain
        frames = []
        if motion:
            obj, alpha = self._object(rng, size // 2)
            positions = rng.integers(0, size + 2 * margin - size // 2, (3, 2))
        for i in range(3):
            radiance = scene
            if motion:
                radiance = scene.copy()
                y, x = positions[i]
                part = radiance[y : y + size // 2, x : x + size // 2]
                part[:] = part * (1 - alpha) + obj * alpha
                if i != 1:
                    radiance = _warp(radiance, rng.uniform(-0.6, 0.6), *rng.uniform(-3, 3, 2))
            if i == 1:
                truth = radiance
            frames.append(self._expose(rng, radiance * np.float32(scales[i]), curve, profile, gain)[margin:-margin, margin:-margin])
        hdr = np.clip(truth * np.float32(scales[0]), 0, 1)[margin:-margin, margin:-margin]
        return BracketSample(np.stack(frames).astype(np.float32), np.array([1.0, 2.0**s, 4.0**s], np.float32),
                             np.ascontiguousarray(hdr), motion, self.curves.curves[curve])

    def single(self, rng: np.random.Generator) -> SingleSample:
        size, stack_evs = self.patch, self.stack_evs
        scene = self._crop(rng, size)
        key = float(np.exp(np.mean(np.log(_luminance(scene) + 1e-6))))
        scale = np.float32(0.18 * 2.0 ** rng.uniform(-1, 1.5) / max(key, 1e-9))
        curve = int(rng.integers(len(self.curves.names)))
        profile = int(rng.integers(len(self.noise.a)))
        radiance = scene * scale
        ldr = self._expose(rng, radiance, curve, profile, float(2.0 ** rng.uniform(-1, 1)))
        stack = np.stack([np.round(self.curves.apply(curve, radiance * np.float32(2.0**e)) * 255) / 255 for e in stack_evs])
        return SingleSample(ldr.astype(np.float32), np.minimum(radiance, self.max_radiance).astype(np.float32),
                            stack.astype(np.float32), np.asarray(stack_evs, np.float32), self.curves.curves[curve])


def validation_brackets(sim: CameraSimulator, per_map: int = 2, seed: int = 1234) -> list[BracketSample]:
    """Deterministic validation set: ``per_map`` crops per map, one static and one with motion."""
    samples = []
    for index in range(len(sim.images)):
        rng = np.random.default_rng(seed + index)
        for k in range(per_map):
            original = sim.images
            sim.images = [original[index]]
            try:
                samples.append(sim.bracket(rng, motion=bool(k % 2)))
            finally:
                sim.images = original
    return samples


def validation_singles(sim: CameraSimulator, per_map: int = 1, seed: int = 4321) -> list[SingleSample]:
    samples = []
    for index in range(len(sim.images)):
        rng = np.random.default_rng(seed + index)
        original = sim.images
        sim.images = [original[index]]
        try:
            samples.extend(sim.single(rng) for _ in range(per_map))
        finally:
            sim.images = original
    return samples


def inverse_gamma(ldr: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    """Plain inverse-gamma linearisation (the single-image baseline)."""
    return np.clip(ldr, 0, 1) ** gamma

