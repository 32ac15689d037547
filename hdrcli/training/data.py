"""Training data: simulated brackets from radiance maps, and Kalantari-layout datasets.

Both give batches of torch tensors:

* multi-exposure: ``ldr`` (B, N, 3, P, P) frames sorted by exposure, ``exposures`` (B, N)
  relative (shortest = 1), ``hdr`` (B, 3, P, P) ground truth in the reference frame's
  geometry and the shortest exposure's units, ``motion`` (B,) bool, ``reference`` 0-d long
  (index of the reference frame). Simulated batches draw N (2..9) and the reference index
  once per batch (every sample of a batch shares them: the networks take one tensor);
  Kalantari scenes have N = 3, reference 1;
* single-image: ``ldr`` (B, 3, P, P), ``hdr`` (B, 3, P, P) (1 = input clipping level),
  ``stack`` (B, S, 3, P, P) and ``evs`` (S,) noise-free exposures, ``edges`` (B, S, 1, P, P)
  Canny edge maps of the stack (sigma 2).

Multi-exposure frames are re-encoded to the gamma-2.2 convention with each bracket's
self-calibrated camera response, exactly as ``hdr fuse`` does at inference (see
:func:`hdrcli.merge.response.canonical_bracket`): the network never has to guess the
camera curve, and it learns under the calibration's real errors.

Patches get random flips and 90-degree rotations (the simulator does it for radiance
crops; the Kalantari reader here).
"""

from __future__ import annotations

import os
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from hdrcli.errors import HdrError
from hdrcli.io.hdr import read_hdr
from hdrcli.io.scene import EXPOSURE_FILE, find_scenes, read_scene
from hdrcli.merge.response import canonical_bracket
from hdrcli.training.camera import BracketSample, CameraSimulator, draw_frame_count, draw_reference


def canny_edges(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Canny edge map in {0, 1} of an RGB image in [0, 1], after a Gaussian blur of ``sigma``."""
    gray = cv2.cvtColor(np.clip(image * 255, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    gray = cv2.GaussianBlur(gray, (0, 0), sigma)
    return (cv2.Canny(gray, 20, 50) > 0).astype(np.float32)


def canonical_sample(sample: BracketSample) -> BracketSample:
    """A bracket with its frames re-encoded by their self-calibrated response (as at inference), the
    frames as recorded kept in ``recorded`` (the merge head's weights read them, as at inference)."""
    return replace(sample, ldr=np.stack(canonical_bracket(list(sample.ldr), list(sample.exposures))),
                   recorded=sample.ldr)


def bracket_batch(samples: Sequence[BracketSample]) -> dict[str, torch.Tensor]:
    """Brackets of N frames each (N shared by all samples) as a batch of tensors (see the module docstring)."""
    if len({s.ldr.shape for s in samples}) > 1:
        raise ValueError(f"brackets of a batch must share their shape, got {sorted({s.ldr.shape for s in samples})}")
    batch = {
        "ldr": torch.from_numpy(np.stack([s.ldr for s in samples])).permute(0, 1, 4, 2, 3).contiguous(),
        "exposures": torch.from_numpy(np.stack([s.exposures for s in samples])),
        "hdr": torch.from_numpy(np.stack([s.hdr for s in samples])).permute(0, 3, 1, 2).contiguous(),
        "motion": torch.tensor([s.motion for s in samples]),
    }
    if all(s.recorded is not None for s in samples):
        batch["codes"] = torch.from_numpy(np.stack([s.recorded for s in samples]).astype(np.float32)).permute(
            0, 1, 4, 2, 3).contiguous()
    return batch


def single_batch(samples: Sequence) -> dict[str, torch.Tensor]:
    edges = np.stack([[canny_edges(f) for f in s.stack] for s in samples])[:, :, None]
    return {
        "ldr": torch.from_numpy(np.stack([s.ldr for s in samples])).permute(0, 3, 1, 2).contiguous(),
        "hdr": torch.from_numpy(np.stack([s.hdr for s in samples])).permute(0, 3, 1, 2).contiguous(),
        "stack": torch.from_numpy(np.stack([s.stack for s in samples])).permute(0, 1, 4, 2, 3).contiguous(),
        "evs": torch.from_numpy(samples[0].evs),
        "edges": torch.from_numpy(edges),
    }


class SimulatedData:
    """Endless random batches from a :class:`CameraSimulator`.

    Multi-exposure batches: N frames (``frames``, or 2..9 drawn per batch) and one
    reference index (the middle frame in 70% of batches, any otherwise) shared by all
    samples of a batch; each bracket re-encoded by its self-calibrated response.
    """

    def __init__(self, simulator: CameraSimulator, kind: str, seed: int, frames: int | None = None,
                 realism: bool = True) -> None:
        self.sim, self.kind, self.frames, self.realism = simulator, kind, frames, realism
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        if self.kind == "multi-exposure":
            frames = draw_frame_count(self.rng) if self.frames is None else self.frames
            reference = draw_reference(self.rng, frames)
            samples = [canonical_sample(self.sim.bracket(self.rng, frames=frames, reference=reference,
                                                         realism=None if self.realism else False)) for _ in range(size)]
            return {**bracket_batch(samples), "reference": torch.tensor(reference, dtype=torch.long)}
        return single_batch([self.sim.single(self.rng, None if self.realism else False) for _ in range(size)])

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def is_kalantari_root(path: str | os.PathLike[str]) -> bool:
    """A folder with Kalantari-style scenes (``Training/``, ``Test/`` or scene folders)."""
    path = Path(path)
    return any((p / EXPOSURE_FILE).is_file() for p in path.rglob("*") if p.is_dir())


class KalantariData:
    """Random patches from scene folders (three 16-bit TIFFs, exposure.txt in EV stops, HDRImg.hdr)."""

    def __init__(self, root: str | os.PathLike[str], patch: int, seed: int) -> None:
        self.scenes = find_scenes(root)
        if not self.scenes:
            raise HdrError("no scene folders with exposure.txt and HDRImg.hdr", root)
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        self.cache: dict[Path, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _scene(self, folder: Path):
        if folder not in self.cache:
            frames, exposures = read_scene(folder)
            if len(frames) != 3:
                raise HdrError(f"expected 3 frames, found {len(frames)}", folder)
            t = np.asarray(exposures, np.float32)
            recorded = np.stack([f.pixels for f in frames])
            ldr = np.stack(canonical_bracket(list(recorded), list(t)))
            self.cache[folder] = (np.stack([ldr, recorded]), t / t.min(), read_hdr(folder / "HDRImg.hdr"))
        return self.cache[folder]

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        ldrs, exps, hdrs = [], [], []
        for _ in range(size):
            frames, t, hdr = self._scene(self.scenes[self.rng.integers(len(self.scenes))])  # (2, N, H, W, 3)
            h, w = hdr.shape[:2]
            y, x = self.rng.integers(0, h - self.patch + 1), self.rng.integers(0, w - self.patch + 1)
            crop = lambda a: a[..., y : y + self.patch, x : x + self.patch, :]  # noqa: E731
            l, g = crop(frames), crop(hdr)
            k, flip = int(self.rng.integers(4)), bool(self.rng.random() < 0.5)
            l = np.rot90(l[:, :, :, ::-1] if flip else l, k, axes=(2, 3))
            g = np.rot90(g[:, ::-1] if flip else g, k, axes=(0, 1))
            ldrs.append(np.ascontiguousarray(l))
            hdrs.append(np.ascontiguousarray(g))
            exps.append(t)
        both = torch.from_numpy(np.stack(ldrs).astype(np.float32)).permute(1, 0, 2, 5, 3, 4)  # (2, B, N, 3, h, w)
        return {
            "ldr": both[0].contiguous(),
            "codes": both[1].contiguous(),
            "exposures": torch.from_numpy(np.stack(exps)),
            "hdr": torch.from_numpy(np.stack(hdrs)).permute(0, 3, 1, 2).contiguous(),
            "motion": torch.ones(size, dtype=torch.bool),
            "reference": torch.tensor(1, dtype=torch.long),
        }

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state


