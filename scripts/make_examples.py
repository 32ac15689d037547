"""Render the bundled example photos in examples/ from a procedural HDR scene.

The scene is a room lit by a window onto a bright sky with the sun, a lamp, a colour
chart and textured walls: about 17 stops from the darkest corner to the sun. It is
photographed by a simple camera model: exposure t * ISO/100 / N^2, Poisson-Gaussian
sensor noise, clipping, a camera response curve (sRGB with a soft shoulder), 8-bit
quantisation and JPEG compression, with real EXIF exposure tags (Pillow). The
longest frame is shifted and rotated slightly, as a hand-held shot would be.

Outputs (deterministic for a given seed):
    examples/bracket/room_-2ev.jpg, room_0ev.jpg, room_+2ev.jpg   1/200, 1/50, 1/12.5 s
    examples/single/street.jpg                                  one exposure, clipped sky
    examples/room_radiance.npy is NOT written: the radiance is re-created on demand.

Run:  python scripts/make_examples.py [--out examples] [--seed 7]
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

WIDTH, HEIGHT = 720, 480


def _value_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random texture in [0, 1] (bicubic-upsampled random grid)."""
    h, w = shape
    grid = rng.random((cells, max(2, round(cells * w / h)))).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def room_scene(seed: int = 7) -> np.ndarray:
    """Linear RGB radiance (HEIGHT, WIDTH, 3) of the room scene, relative units."""
    rng = np.random.default_rng(seed)
    h, w = HEIGHT, WIDTH
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Walls: warm plaster lit from the window, falling off to the right; floor darker.
    texture = 0.85 + 0.15 * _value_noise((h, w), 40, rng) + 0.05 * _value_noise((h, w), 160, rng)
    light = 0.5 * np.exp(-((xx - 180) / 520) ** 2) + 0.02
    scene = np.stack([0.75, 0.62, 0.48]) * (light * texture)[..., None]
    floor = yy > 0.78 * h
    scene[floor] = (np.stack([0.35, 0.22, 0.14]) * (0.3 * light * texture)[..., None])[floor]
    # Window: sky gradient, sun, distant hills.
    x0, x1, y0, y1 = 60, 300, 50, 260
    win = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    sky = np.stack([0.55, 0.75, 1.3]) * (3.5 + 3.0 * (1 - (yy - y0) / (y1 - y0)))[..., None]
    clouds = _value_noise((h, w), 12, rng)[..., None] ** 3 * 5
    outside = sky + clouds
    hills = yy > y1 - 60 + 25 * np.sin(xx / 37.0)
    outside = np.where(hills[..., None], np.stack([0.25, 0.4, 0.12]) * 3.0 * (0.7 + 0.3 * _value_noise((h, w), 50, rng))[..., None], outside)
    sun = np.exp(-(((xx - 250) ** 2 + (yy - 95) ** 2) / (2 * 7.0**2)))
    outside = outside + (20000 * sun)[..., None] * np.stack([1.0, 0.95, 0.85])
    scene = np.where(win[..., None], outside, scene)
    frame = win ^ ((xx >= x0 + 8) & (xx < x1 - 8) & (yy >= y0 + 8) & (yy < y1 - 8))
    mullion = win & ((np.abs(xx - (x0 + x1) / 2) < 4) | (np.abs(yy - (y0 + y1) / 2) < 4))
    scene[frame | mullion] = np.array([0.9, 0.9, 0.88]) * 0.4
    # Colour chart (4 x 6 patches) on the wall.
    patches = np.array([
        [0.40, 0.26, 0.20], [0.77, 0.58, 0.50], [0.36, 0.48, 0.61], [0.35, 0.42, 0.25], [0.51, 0.50, 0.69], [0.38, 0.74, 0.67],
        [0.85, 0.47, 0.17], [0.29, 0.36, 0.66], [0.76, 0.33, 0.38], [0.37, 0.24, 0.42], [0.62, 0.73, 0.25], [0.88, 0.63, 0.18],
        [0.22, 0.24, 0.58], [0.27, 0.58, 0.29], [0.69, 0.20, 0.22], [0.93, 0.78, 0.12], [0.73, 0.33, 0.58], [0.00, 0.52, 0.65],
        [0.95, 0.95, 0.95], [0.78, 0.78, 0.78], [0.63, 0.63, 0.63], [0.47, 0.47, 0.47], [0.33, 0.33, 0.33], [0.20, 0.20, 0.20],
    ]) ** 2.2
    cx, cy, size = 400, 110, 26
    for i, colour in enumerate(patches):
        r, c = divmod(i, 6)
        px, py = cx + c * (size + 4), cy + r * (size + 4)
        scene[py : py + size, px : px + size] = colour * 0.9 * np.exp(-((px - 180) / 520) ** 2)
    # Lamp on a table at the right: bright bulb with a glow, in the dark part of the room.
    lamp = np.exp(-(((xx - 610) ** 2) / (2 * 18.0**2) + ((yy - 250) ** 2) / (2 * 12.0**2)))
    scene += (300 * lamp)[..., None] * np.stack([1.0, 0.8, 0.5])
    glow = np.exp(-(((xx - 610) ** 2 + (yy - 250) ** 2) / (2 * 90.0**2)))
    scene += (0.6 * glow)[..., None] * np.stack([1.0, 0.75, 0.45])
    table = (yy > 300) & (yy < 315) & (np.abs(xx - 610) < 90)
    scene[table] = np.array([0.3, 0.18, 0.1]) * 0.5
    return scene.astype(np.float32)


def street_scene(seed: int = 11) -> np.ndarray:
    """Linear RGB radiance of a sunlit street: a bright sky that a single photo clips."""
    rng = np.random.default_rng(seed)
    h, w = HEIGHT, WIDTH
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    horizon = 0.45 * h + 30 * np.sin(xx / 90.0)
    sky = np.stack([0.6, 0.8, 1.25]) * (8 + 10 * (1 - yy / h))[..., None] + (_value_noise((h, w), 10, rng) ** 4 * 25)[..., None]
    sun = np.exp(-(((xx - 560) ** 2 + (yy - 70) ** 2) / (2 * 10.0**2)))
    sky = sky + (5000 * sun)[..., None]
    ground = np.stack([0.5, 0.45, 0.38]) * (1.2 * (0.6 + 0.4 * _value_noise((h, w), 80, rng)))[..., None]
    scene = np.where((yy < horizon)[..., None], sky, ground)
    for i, x in enumerate(range(40, w, 130)):  # building facades with windows
        top = horizon.min() - 60 - 40 * ((i * 37) % 3)
        facade = (xx >= x) & (xx < x + 100) & (yy >= top) & (yy < 0.85 * h)
        tone = np.array([[0.6, 0.4, 0.3], [0.5, 0.5, 0.55], [0.7, 0.6, 0.4]][i % 3])
        windows = ((xx - x) % 25 < 12) & ((yy - top) % 30 < 14)
        scene[facade] = tone * (0.9 + 0.2 * rng.random())
        scene[facade & windows] = np.array([0.05, 0.06, 0.08])
    return scene.astype(np.float32)


def camera_response(irradiance: np.ndarray) -> np.ndarray:
    """Camera curve: a soft highlight shoulder 2x / (1 + x), then sRGB encoding; [0, 1] -> [0, 1]."""
    x = np.clip(irradiance, 0, 1)
    x = 2.0 * x / (1.0 + x)  # like in-camera JPEG curves: lifts mid-tones, compresses highlights
    v = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(v, 0, 1)


def expose(radiance: np.ndarray, t: float, rng: np.random.Generator, iso: float = 100.0, n: float = 8.0) -> np.ndarray:
    """Photograph ``radiance``: 8-bit RGB after noise, clipping and the camera response."""
    signal = radiance * (t * iso / 100.0 / n**2) * 1600.0  # scene calibration constant
    # Poisson-Gaussian noise (variance a*x + b on [0, 1] sensor values).
    a, b = 2e-4 * iso / 100.0, 4e-7
    noisy = signal + rng.normal(size=signal.shape) * np.sqrt(np.maximum(a * np.clip(signal, 0, 1) + b, 0))
    return np.clip(np.rint(camera_response(noisy) * 255.0), 0, 255).astype(np.uint8)


def shake(image: np.ndarray, dx: float, dy: float, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    matrix[:, 2] += (dx, dy)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def save_jpeg(path: Path, rgb: np.ndarray, t: float, stamp: datetime, iso: int = 100, n: float = 8.0) -> None:
    exif = Image.Exif()
    exif[0x010F] = "hdrcli"
    exif[0x0110] = "procedural camera (scripts/make_examples.py)"
    exif[0x0132] = stamp.strftime("%Y:%m:%d %H:%M:%S")
    sub = exif.get_ifd(0x8769)
    ratio = Fraction(t).limit_denominator(100000)
    sub[0x829A] = IFDRational(ratio.numerator, ratio.denominator)  # ExposureTime
    sub[0x829D] = IFDRational(int(n * 10), 10)  # FNumber
    sub[0x8827] = iso  # ISOSpeedRatings
    sub[0x9003] = stamp.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    sub[0x9291] = f"{stamp.microsecond // 10000:02d}"  # SubSecTimeOriginal
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=88, exif=exif.tobytes(), optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    room = room_scene(args.seed)
    start = datetime(2026, 11, 1, 10, 30, 0)
    for name, t, move in (("room_-2ev", 1 / 200, None), ("room_0ev", 1 / 50, None), ("room_+2ev", 1 / 12.5, (2.5, -1.5, 0.25))):
        shot = expose(room, t, rng)
        if move:
            shot = shake(shot, *move)
        save_jpeg(args.out / "bracket" / f"{name}.jpg", shot, t, start)
        start += timedelta(seconds=t + 0.35)
    street = expose(street_scene(args.seed + 4), 1 / 60, rng)
    save_jpeg(args.out / "single" / "street.jpg", street, 1 / 60, start + timedelta(minutes=5))
    for p in sorted(args.out.rglob("*.jpg")):
        print(f"{p.relative_to(args.out.parent)}  {p.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
