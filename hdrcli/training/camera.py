"""Camera simulation: real radiance maps -> bracketed LDR frames with exact ground truth.

A sample is rendered from a crop of a real HDR radiance map (``../shared/data/radiance``)
through a randomised camera. Brackets (:meth:`CameraSimulator.bracket`) imitate real
multi-exposure shooting:

1. **Frames and exposure.** N frames (2..9 at random, 3 and 5 a bit more often; or as
   asked), sorted by exposure. Neighbouring frames are 0.7 to 4 stops apart, all gaps
   equal (half of the samples, as auto-bracketing does) or each drawn on its own (as
   hand-picked or phone brackets); the whole span is capped at 16 stops (gaps rescaled).
   One frame is the *reference* (the geometry of the ground truth and of the merge): the
   middle one (N // 2) in 70% of the samples, any one (ends included) otherwise. The
   reference is auto-exposed: the crop is scaled so that its log-average luminance lands
   at 0.18 * 2**U(``reference_ev``) (a meter, with error and exposure compensation).
2. **Motion** (on ``motion_prob`` of the samples): a moving foreground object (a textured
   ellipse cut from another radiance map) at a different position in every frame, and
   camera shake, a small random rotation and translation per non-reference frame.
3. **Sensor**: linear signal clipped at 1, Poisson-Gaussian noise with variance
   a*x + b from a real darktable profile (camera and ISO at random) times an ISO-like
   gain, then clipping again.
4. **Camera response**: one of the 201 DoRF curves (Grossberg & Nayar), the Nikon D7000
   curve (Lin & Brown), sRGB, or a gamma curve; 8-bit quantisation.

Realism steps, each on a share of the samples (decided per sample, see ``REALISM``;
``realism=False`` turns them and random motion off):

* **phone-style processing** (40%): phones do not hand out the sensor's signal. Before
  the curve, a local tone mapping: log luminance is split into a base (Gaussian blur,
  sigma 5-15% of the frame side) and detail; the base is compressed by 0.5-0.9 towards
  its maximum (Durand & Dorsey), detail kept, colour scaled by the luminance ratio:
  shadows are lifted (and their noise with them), white stays white, and frames no longer
  differ by a pure exposure ratio, which the self-calibration must live with. After the
  curve, unsharp-mask sharpening (amount 0.3-1.0, sigma 1-2 px), then JPEG at quality
  80-95 (``cv2.imencode``; 8x8 blocks, chroma subsampling). All frames of a bracket
  share the parameters, as one phone would. The ground truth stays the scene radiance.
* **high ISO** (30%): a darktable profile measured at ISO 800-6400 (strong, signal
  dependent noise, as indoors and at dusk).
* **night** (20%): the reference is exposed 2-4 stops darker than ``reference_ev`` says
  (dark scene, very low key) and 1-6 small bright light sources (soft Gaussian blobs or
  small discs with a faint glow, peak 50-5000x the scene's key, sodium/tungsten warm or LED
  cool) are added to the radiance; always a high-ISO profile, and a bit more shake.

Units: the radiance maps are relative (any scale); frames are display-referred RGB in
[0, 1] (8-bit levels), ``exposures`` relative with the shortest = 1. Ground truth, in the
field's convention: linear radiance of the reference frame's geometry in the shortest
exposure's units (a pixel at the short frame's clipping level = 1), clipped to [0, 1]
since no frame holds information beyond it. Single-image samples take one auto-exposed
frame as input and return radiance in units of its own clipping level, up to
``max_radiance``.

:func:`validation_brackets` gives deterministic sets; with its defaults (3 frames,
``realism=False``) it renders exactly the legacy brackets (short, reference, long, 2 or 3
stops apart from ``ev_steps``), on which published validation scores rest.

Camera data are read from ``../shared/data/{crf,noise}`` when present; without them the
simulator falls back to sRGB/gamma curves and a fixed noise level (and says so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    """Poisson-Gaussian sensor noise parameters (a, b per channel): variance = a*x + b, at ISO ``iso``."""

    a: np.ndarray  # (K, 3)
    b: np.ndarray  # (K, 3)
    iso: np.ndarray  # (K,) the ISO each profile was measured at

    @classmethod
    def load(cls, data_dir: Path = SHARED_DATA) -> "NoiseProfiles":
        path = data_dir / "noise" / "darktable_noiseprofiles.json"
        a, b, iso = [], [], []
        if path.is_file():
            for maker in json.loads(path.read_text())["noiseprofiles"]:
                for model in maker["models"]:
                    for profile in model["profiles"]:
                        if len(profile.get("a", [])) == 3 and len(profile.get("b", [])) == 3:
                            a.append(profile["a"])
                            b.append(profile["b"])
                            iso.append(float(profile.get("iso", 0)))
        if not a:
            warn("noise profiles not found: using one moderate noise level")
            a, b, iso = [[1e-4] * 3], [[1e-6] * 3], [400.0]
        return cls(np.abs(np.asarray(a, np.float32)), np.abs(np.asarray(b, np.float32)), np.asarray(iso, np.float32))

    def in_iso_range(self, low: float, high: float) -> np.ndarray:
        """Indices of the profiles measured at ISO ``low``..``high`` (all profiles when none is)."""
        index = np.flatnonzero((self.iso >= low) & (self.iso <= high))
        return index if index.size else np.arange(len(self.a))


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
    ldr: np.ndarray  # (N, H, W, 3) float32 in [0, 1], sorted by exposure (legacy: short, reference, long)
    exposures: np.ndarray  # (N,) relative, shortest = 1
    hdr: np.ndarray  # (H, W, 3) ground truth, reference geometry, shortest exposure's units, [0, 1]
    motion: bool
    curve: np.ndarray | None = None  # (1024,) the forward camera curve used, when simulated
    reference: int = 1  # index of the reference frame (the ground truth's geometry)
    effects: tuple[str, ...] = ()  # realism steps applied: "phone", "high_iso", "night"
    # (N, H, W, 3): the frames as the camera recorded them, once ``ldr`` is re-encoded to gamma 2.2
    # (hdrcli.training.data.canonical_sample); the merge head weighs these codes.
    recorded: np.ndarray | None = None


@dataclass
class SingleSample:
    ldr: np.ndarray  # (H, W, 3) float32 in [0, 1]
    hdr: np.ndarray  # (H, W, 3) linear, 1 = the input's clipping level
    stack: np.ndarray  # (P, H, W, 3) noise-free renders at EVs ``evs`` (for the stack model)
    evs: np.ndarray
    curve: np.ndarray  # (1024,) the forward camera curve used
    effects: tuple[str, ...] = ()  # realism steps applied: "phone", "high_iso", "night"


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def _warp(image: np.ndarray, angle: float, dx: float, dy: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# -- bracket layout -----------------------------------------------------------------

FRAME_COUNTS = np.arange(2, 10)  # frames per bracket when not asked for
FRAME_WEIGHTS = np.array([1, 2, 1, 2, 1, 1, 1, 1], np.float64) / 10  # 3 and 5 twice as often
GAP_STOPS = (0.7, 4.0)  # stops between neighbouring frames
MAX_SPAN_STOPS = 16.0  # shortest to longest frame
MIDDLE_REFERENCE = 0.7  # share of brackets whose reference is the middle frame (N // 2)
REALISM = {"phone": 0.4, "high_iso": 0.3, "night": 0.2}  # share of samples per realism step
HIGH_ISO = (800.0, 6400.0)
NIGHT_EV = (2.0, 4.0)  # night: the reference this many stops darker
LIGHT_LEVELS = (50.0, 5000.0)  # night light sources, relative to the scene's key
LIGHT_COLOURS = np.array([[1.0, 0.55, 0.15],  # sodium vapour
                          [1.0, 0.72, 0.42],  # tungsten
                          [0.82, 0.92, 1.0]], np.float32)  # cool LED


def draw_frame_count(rng: np.random.Generator) -> int:
    """Frames in a bracket: 2..9, 3 and 5 a bit more often."""
    return int(rng.choice(FRAME_COUNTS, p=FRAME_WEIGHTS))


def draw_reference(rng: np.random.Generator, frames: int) -> int:
    """Reference frame index: the middle one (``frames // 2``) in 70% of draws, any index otherwise."""
    return frames // 2 if rng.random() < MIDDLE_REFERENCE else int(rng.integers(frames))


def draw_gaps(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames - 1,) stops between neighbouring frames: even or uneven, span <= ``MAX_SPAN_STOPS``."""
    if rng.random() < 0.5:
        gaps = np.full(frames - 1, rng.uniform(*GAP_STOPS))
    else:
        gaps = rng.uniform(*GAP_STOPS, frames - 1)
    span = float(gaps.sum())
    return gaps * (MAX_SPAN_STOPS / span) if span > MAX_SPAN_STOPS else gaps


def _realism_shares(realism: bool | Mapping[str, float] | None) -> dict[str, float]:
    if realism is None or realism is True:
        return dict(REALISM)
    if realism is False:
        return {k: 0.0 for k in REALISM}
    unknown = set(realism) - set(REALISM)
    if unknown:
        raise ValueError(f"unknown realism steps {sorted(unknown)} (use {', '.join(REALISM)})")
    return {**REALISM, **{k: float(v) for k, v in realism.items()}}


@dataclass(frozen=True)
class PhoneStyle:
    """Processing parameters a phone applies to every frame of a bracket."""

    compress: float  # local tone mapping: base (log luminance) compression factor, 0.5-0.9
    base_sigma: float  # Gaussian blur of the base, pixels
    amount: float  # unsharp mask amount, 0.3-1.0
    sharpen_sigma: float  # unsharp mask sigma, 1-2 px
    quality: int  # JPEG quality, 80-95

    @classmethod
    def draw(cls, rng: np.random.Generator, side: int) -> "PhoneStyle":
        return cls(float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.05, 0.15) * side), float(rng.uniform(0.3, 1.0)),
                   float(rng.uniform(1.0, 2.0)), int(rng.integers(80, 96)))


def local_tone_map(linear: np.ndarray, compress: float, sigma: float) -> np.ndarray:
    """Base/detail local tone mapping of linear RGB in [0, 1] (Durand & Dorsey 2002, Gaussian base).

    The base (blurred log luminance) is compressed by ``compress`` towards its maximum,
    detail kept, colour scaled by the luminance ratio: shadows are lifted, the brightest
    areas (and clipped white) stay where they are.
    """
    lum = _luminance(linear)
    log_l = np.log(lum + 1e-4)
    base = cv2.GaussianBlur(log_l, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    ratio = np.exp((compress - 1) * (base - base.max()))  # new log = top + compress*(base - top) + detail
    return np.clip(linear * ratio[..., None], 0, 1).astype(np.float32)


def unsharp_mask(image: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """image + amount * (image - blur(image)), clipped to [0, 1]."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return np.clip(image + np.float32(amount) * (image - blurred), 0, 1).astype(np.float32)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """RGB in [0, 1] through 8-bit JPEG compression at ``quality`` and back."""
    u8 = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(u8[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return (cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1] / np.float32(255)).astype(np.float32)


def night_lights(rng: np.random.Generator, side: int, margin: int, key: float, size_factor: float = 1.0) -> np.ndarray:
    """(side, side, 3) radiance of 1-6 small coloured light sources inside the margin, 50-5000x ``key``;
    ``size_factor`` scales their radii (0.8-3% of the side at 1)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    inner = side - 2 * margin
    lights = np.zeros((side, side, 3), np.float32)
    for _ in range(int(rng.integers(1, 7))):
        cy, cx = rng.uniform(margin, side - margin, 2)
        radius = max(1.0, float(rng.uniform(0.008, 0.03)) * inner * size_factor)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        if rng.random() < 0.5:  # soft blob
            shape = np.exp(-d2 / (2 * radius**2))
        else:  # small disc, anti-aliased
            shape = cv2.GaussianBlur((d2 <= radius**2).astype(np.float32), (0, 0), 0.7)
        shape = shape + np.float32(rng.uniform(0.0005, 0.003)) * np.exp(-d2 / (2 * (3 * radius) ** 2))  # glow
        colour = LIGHT_COLOURS[rng.integers(len(LIGHT_COLOURS))] * rng.uniform(0.95, 1.05, 3).astype(np.float32)
        colour /= float(_luminance(colour))
        level = key * 2.0 ** rng.uniform(*np.log2(LIGHT_LEVELS))
        lights += shape[..., None] * (colour * np.float32(level))
    return lights


class CameraSimulator:
    """Renders training and validation samples from a list of radiance maps (see the module docstring).

    ``patch``: output side in pixels; ``reference_ev``: brackets' reference exposure in
    stops around auto-exposure (key 0.18; training passes (-6, 2)); ``motion_prob``: share
    of brackets with motion; ``ev_steps``: frame spacing of the legacy validation brackets.
    """

    def __init__(self, maps: list[Path], patch: int = 128, ev_steps: tuple[int, ...] = (2, 3),
                 motion_prob: float = 0.5, max_radiance: float = 64.0, data_dir: Path = SHARED_DATA,
                 max_side: int = 1024, stack_evs: tuple[float, ...] = (-2, -1, 0, 1, 2),
                 reference_ev: tuple[float, float] = (-1.0, 1.0)) -> None:
        if not maps:
            raise ValueError("no radiance maps to simulate from")
        self.paths = list(maps)
        self.images = [load_radiance(p, max_side) for p in self.paths]
        self.patch, self.motion_prob, self.max_radiance = patch, motion_prob, max_radiance
        self.ev_steps = ev_steps  # legacy validation brackets only: stops between their 3 frames
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
    def _expose(self, rng: np.random.Generator, irradiance: np.ndarray, curve: int, profile: int, gain: float,
                phone: PhoneStyle | None = None) -> np.ndarray:
        signal = np.clip(irradiance, 0, 1)
        variance = (self.noise.a[profile] * gain) * signal + self.noise.b[profile] * gain**2
        noisy = np.clip(signal + rng.standard_normal(signal.shape).astype(np.float32) * np.sqrt(variance), 0, 1)
        if phone is None:
            return np.round(self.curves.apply(curve, noisy) * 255) / 255
        encoded = self.curves.apply(curve, local_tone_map(noisy, phone.compress, phone.base_sigma))
        encoded = unsharp_mask(encoded, phone.amount, phone.sharpen_sigma)
        return jpeg_roundtrip(encoded, phone.quality)

    def bracket(self, rng: np.random.Generator, motion: bool | None = None, frames: int | None = None,
                reference: int | None = None, realism: bool | Mapping[str, float] | None = None) -> BracketSample:
        """One bracket of ``frames`` frames (2..9 at random when None), see the module docstring.

        Args:
            rng: the random generator (the only source of randomness).
            motion: force motion on or off; None: on ``motion_prob`` of the samples
                (never with ``realism=False``).
            frames: number of frames N (>= 2); None: 2..9, 3 and 5 a bit more often.
            reference: index of the reference frame; None: N // 2 in 70% of the samples,
                any index otherwise.
            realism: None or True: the realism steps on their default shares
                (``REALISM``); False: none of them (and no random motion); a mapping
                (e.g. ``{"night": 1.0}``): shares overriding the defaults.

        Returns:
            ``ldr`` (N, H, W, 3) sorted by exposure, ``exposures`` (N,) shortest = 1,
            ``hdr`` (H, W, 3) in the reference's geometry and the shortest exposure's
            units, clipped to [0, 1], ``reference``, ``effects``.
        """
        return self._bracket(rng, motion, frames, reference, realism, legacy=False)

    def legacy_bracket(self, rng: np.random.Generator, motion: bool | None = None) -> BracketSample:
        """The original 3-frame bracket (short, reference, long; ``ev_steps`` stops apart, no realism steps),
        with the original random sequence: the same samples as before N-frame brackets existed."""
        return self._bracket(rng, motion, 3, 1, False, legacy=True)

    def _bracket(self, rng: np.random.Generator, motion: bool | None, frames: int | None, reference: int | None,
                 realism: bool | Mapping[str, float] | None, legacy: bool) -> BracketSample:
        """The renderer; ``legacy`` draws the old 3-frame brackets (2 or 3 stops) with the old random sequence."""
        size = self.patch
        margin = size // 8
        scene = self._crop(rng, size + 2 * margin)
        lum = _luminance(scene)
        key = float(np.exp(np.mean(np.log(lum + 1e-6))))
        effects: list[str] = []
        if legacy:  # the exact random sequence of the original 3-frame simulator
            ev = rng.uniform(*self.reference_ev)
            s = int(rng.choice(self.ev_steps))
            stops, reference, phone, night = np.array([0.0, s, 2.0 * s]), 1, None, False
            motion = bool(rng.random() < self.motion_prob) if motion is None else motion
            curve = int(rng.integers(len(self.curves.names)))
            profile = int(rng.integers(len(self.noise.a)))
            gain = float(2.0 ** rng.uniform(-1, 2))  # ISO-like noise gain
        else:
            shares = _realism_shares(realism)
            n = draw_frame_count(rng) if frames is None else int(frames)
            if n < 2:
                raise ValueError(f"a bracket needs at least 2 frames, not {n}")
            reference = draw_reference(rng, n) if reference is None else int(reference)
            if not 0 <= reference < n:
                raise ValueError(f"reference frame {reference} out of range for {n} frames")
            stops = np.concatenate([[0.0], np.cumsum(draw_gaps(rng, n))])
            night = bool(rng.random() < shares["night"])
            ev = rng.uniform(*self.reference_ev) - (rng.uniform(*NIGHT_EV) if night else 0.0)
            high_iso = night or bool(rng.random() < shares["high_iso"])
            phone = PhoneStyle.draw(rng, size + 2 * margin) if rng.random() < shares["phone"] else None
            if motion is None:
                motion = bool(rng.random() < self.motion_prob) if realism is not False else False
            curve = int(rng.integers(len(self.curves.names)))
            if high_iso:
                profile = int(rng.choice(self.noise.in_iso_range(*HIGH_ISO)))
                gain = float(2.0 ** rng.uniform(-1, 1))
            else:
                profile = int(rng.integers(len(self.noise.a)))
                gain = float(2.0 ** rng.uniform(-1, 2))
            if night:
                scene = scene + night_lights(rng, size + 2 * margin, margin, key)
            effects = [name for name, on in (("phone", phone is not None), ("high_iso", high_iso), ("night", night)) if on]
        n = stops.size
        reference_scale = 0.18 * 2.0**ev / max(key, 1e-9)
        scales = reference_scale * 2.0 ** (stops - stops[reference])
        shake = (1.0, 5.0) if night else (0.6, 3.0)  # max rotation (degrees) and shift (pixels)
        ldr = []
        if motion:
            obj, alpha = self._object(rng, size // 2)
            positions = rng.integers(0, size + 2 * margin - size // 2, (n, 2))
        for i in range(n):
            radiance = scene
            if motion:
                radiance = scene.copy()
                y, x = positions[i]
                part = radiance[y : y + size // 2, x : x + size // 2]
                part[:] = part * (1 - alpha) + obj * alpha
                if i != reference:
                    radiance = _warp(radiance, rng.uniform(-shake[0], shake[0]), *rng.uniform(-shake[1], shake[1], 2))
            if i == reference:
                truth = radiance
            frame = self._expose(rng, radiance * np.float32(scales[i]), curve, profile, gain, phone)
            ldr.append(frame[margin:-margin, margin:-margin])
        hdr = np.clip(truth * np.float32(scales[0]), 0, 1)[margin:-margin, margin:-margin]
        return BracketSample(np.stack(ldr).astype(np.float32), (2.0**stops).astype(np.float32),
                             np.ascontiguousarray(hdr), motion, self.curves.curves[curve], reference, tuple(effects))

    def single(self, rng: np.random.Generator, realism: bool | Mapping[str, float] | None = False) -> SingleSample:
        """One auto-exposed photo of a crop and its radiance (1 = the photo's clipping level).

        ``realism=False`` (the default, and the validation set's) renders the original
        samples with the original random sequence. ``None``/``True``/a mapping turns on the
        realism steps as for brackets (``REALISM``): phone processing (local tone mapping,
        sharpening, JPEG), high ISO, and night (exposed 0-2 stops under auto-exposure, with
        1-6 light sources up to 4x larger than in brackets, so a photo holds large clipped
        lights). ``effects`` names the steps applied.
        """
        size, stack_evs = self.patch, self.stack_evs
        scene = self._crop(rng, size)
        key = float(np.exp(np.mean(np.log(_luminance(scene) + 1e-6))))
        scale = np.float32(0.18 * 2.0 ** rng.uniform(-1, 1.5) / max(key, 1e-9))
        curve = int(rng.integers(len(self.curves.names)))
        profile = int(rng.integers(len(self.noise.a)))
        gain = float(2.0 ** rng.uniform(-1, 1))
        phone, effects = None, []
        if realism is not False:
            shares = _realism_shares(realism)
            night = bool(rng.random() < shares["night"])
            high_iso = night or bool(rng.random() < shares["high_iso"])
            phone = PhoneStyle.draw(rng, size) if rng.random() < shares["phone"] else None
            if high_iso:
                profile = int(rng.choice(self.noise.in_iso_range(*HIGH_ISO)))
            if night:  # a night photo keeps its mood: darker than auto-exposure, lights far above it
                scale = np.float32(scale * 2.0 ** -rng.uniform(0.0, 2.0))
                scene = scene + night_lights(rng, size, size // 16, key, size_factor=float(rng.uniform(1.0, 4.0)))
            effects = [name for name, on in (("phone", phone is not None), ("high_iso", high_iso), ("night", night)) if on]
        radiance = scene * scale
        ldr = self._expose(rng, radiance, curve, profile, gain, phone)
        stack = np.stack([np.round(self.curves.apply(curve, radiance * np.float32(2.0**e)) * 255) / 255 for e in stack_evs])
        return SingleSample(ldr.astype(np.float32), np.minimum(radiance, self.max_radiance).astype(np.float32),
                            stack.astype(np.float32), np.asarray(stack_evs, np.float32), self.curves.curves[curve],
                            tuple(effects))


def validation_brackets(sim: CameraSimulator, per_map: int = 2, seed: int = 1234, frames: int = 3,
                        realism: bool | Mapping[str, float] | None = False) -> list[BracketSample]:
    """Deterministic validation set: ``per_map`` crops per map, alternately static and with motion.

    Every bracket has ``frames`` frames and the middle one as reference. With the
    defaults (3 frames, ``realism=False``) these are exactly the legacy brackets (short,
    reference, long; 2 or 3 stops), on which the bench and trained-model scores rest.
    """
    legacy = frames == 3 and realism is False
    samples = []
    for index in range(len(sim.images)):
        rng = np.random.default_rng(seed + index)
        for k in range(per_map):
            original = sim.images
            sim.images = [original[index]]
            try:
                motion = bool(k % 2)
                samples.append(sim.legacy_bracket(rng, motion) if legacy
                               else sim.bracket(rng, motion, frames, frames // 2, realism))
            finally:
                sim.images = original
    return samples


def validation_singles(sim: CameraSimulator, per_map: int = 1, seed: int = 4321,
                       realism: bool | Mapping[str, float] | None = False) -> list[SingleSample]:
    """Deterministic single-image validation set: ``per_map`` photos per map (``realism`` as for
    :meth:`CameraSimulator.single`; the default False is the set published scores rest on)."""
    samples = []
    for index in range(len(sim.images)):
        rng = np.random.default_rng(seed + index)
        original = sim.images
        sim.images = [original[index]]
        try:
            samples.extend(sim.single(rng, realism) for _ in range(per_map))
        finally:
            sim.images = original
    return samples


def inverse_response_table(forward: np.ndarray) -> np.ndarray:
    """The (256, 3) inverse response (hdrcli.merge.response's form: code -> irradiance, 1 at code
    255) of a simulated camera's forward curve (1024 samples of brightness over irradiance [0, 1])."""
    forward = np.maximum.accumulate(np.asarray(forward, np.float64))
    irradiance = np.linspace(0.0, 1.0, forward.size)
    keep = np.concatenate([[True], np.diff(forward) > 0])  # np.interp needs increasing abscissae
    table = np.interp(np.arange(256) / 255.0, forward[keep], irradiance[keep])
    table = table / max(table[-1], 1e-9)
    return np.repeat(table[:, None], 3, axis=1).astype(np.float32)


def inverse_gamma(ldr: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    """Plain inverse-gamma linearisation (the single-image baseline)."""
    return np.clip(ldr, 0, 1) ** gamma

