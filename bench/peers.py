"""hdrcli against other HDR tools, on the same brackets in one run: seconds, peak RSS, PSNR-mu.

Brackets (written once to a temporary folder; exposures 1 : 4 : 16):

* simulated, with ground truth (8-bit TIFFs): hdrcli's camera simulator (hdrcli.training.camera) renders a
  held-out radiance map of ../shared/data/radiance through a real camera curve with sensor
  noise, ``static`` (tripod) or ``handheld`` (the long and short frames rotated and shifted,
  an object moving), at 1.5 MP (1224^2) and 12 MP (3464^2);
* real, without ground truth: ../shared/data/brackets/iphone_handheld (3 x 12 MP JPEGs).

Tools (each a child process, timed by wall clock; peak RSS by ``/usr/bin/time -f %M``,
the largest process among the child and the programs it ran); tools that are not
installed are skipped:

* ``luminance-hdr-cli`` (Debevec model, sRGB response; no alignment, ``-a MTB``, ``-a AIS``);
* ``align_image_stack`` + ``enfuse`` (exposure fusion: a display image, so no PSNR-mu);
* pfstools: ``pfsinhdrgen`` | ``pfshdrcalibrate`` (Robertson self-calibration) | ``pfsout``;
* OpenCV's CalibrateDebevec + MergeDebevec (no alignment; Python child);
* ``hdr fuse`` with ``debevec`` (default ECC alignment) and the default learned backend
  ``lffnet`` (both ``--no-preview``, as the others write no preview).

PSNR-mu (mu = 5000): the result is scaled by its median ratio to the ground truth (tools
disagree on units; hdrcli.metrics.scale_aligned), then scored with hdrcli.metrics.hdr_scores
in the shortest exposure's units, where the truth is clipped to [0, 1].

    python bench/peers.py [--sizes 1.5,12] [--kinds static,handheld,iphone] [--tools all]

Install the peers with ``apt-get install -y luminance-hdr enfuse hugin-tools pfstools``.
Other jobs on the machine make wall times noisy: compare rows within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from hdrcli.io.hdr import read_hdr
from hdrcli.metrics import hdr_scores, scale_aligned
from hdrcli.training.camera import SHARED_DATA, CameraSimulator, list_radiance_maps, split_maps

IPHONE = SHARED_DATA / "brackets" / "iphone_handheld"
SIDES = {"1.5": 1224, "12": 3464}
BASE_TIME = 1 / 1000  # seconds of the shortest simulated exposure (tools that need EXIF-like times)

OPENCV_CHILD = """
import sys, cv2, numpy as np
from hdrcli.io.hdr import write_hdr
out, times, files = sys.argv[1], [float(t) for t in sys.argv[2].split(',')], sys.argv[3:]
images = [cv2.imread(f, cv2.IMREAD_COLOR) for f in files]
t = np.float32(times)
response = cv2.createCalibrateDebevec().process(images, t)
hdr = cv2.createMergeDebevec().process(images, t, response)
write_hdr(out, cv2.cvtColor(hdr, cv2.COLOR_BGR2RGB))
"""


def simulated(folder: Path, side: int, motion: bool, seed: int = 7) -> tuple[list[Path], list[float], np.ndarray]:
    """A simulated bracket as PNGs in ``folder``: (paths, exposure seconds, ground truth)."""
    _, held_out = split_maps(list_radiance_maps(SHARED_DATA / "radiance"))
    sim = CameraSimulator(held_out[:1], patch=side, max_side=max(side + side // 4 + 8, 1024), motion_prob=0.0)
    sample = sim.legacy_bracket(np.random.default_rng(seed), motion=motion)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(sample.ldr):
        path = folder / f"frame{i}.tif"  # 8-bit TIFF: luminance-hdr-cli has no PNG reader
        cv2.imwrite(str(path), cv2.cvtColor(np.round(frame * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths, [BASE_TIME * float(e) for e in sample.exposures], sample.hdr


def iphone() -> tuple[list[Path], list[float], None]:
    from hdrcli.exposure import exif_exposures
    from hdrcli.io.exif import parse_exif_bytes

    paths = sorted(IPHONE.glob("*.jpeg"))

    class _F:  # exif_exposures needs .exif and .name only
        def __init__(self, p: Path) -> None:
            self.exif, self.name, self.path = parse_exif_bytes(p.read_bytes()), p.name, p

    times = [float(t) for t in exif_exposures([_F(p) for p in paths])]
    order = np.argsort(times)
    return [paths[i] for i in order], [times[i] for i in order], None


def commands(tool: str, files: list[Path], times: list[float], work: Path) -> tuple[list[str] | str, Path] | None:
    """The command line of a tool (a list, or a shell string for pipelines) and its output."""
    evs = ",".join(f"{np.log2(t / times[0]):.4f}" for t in times)
    names = [str(f) for f in files]
    out = work / f"{tool}.exr"
    if tool.startswith("luminance"):
        if not shutil.which("luminance-hdr-cli"):
            return None
        align = {"luminance": [], "luminance-mtb": ["-a", "MTB"], "luminance-ais": ["-a", "AIS"]}[tool]
        return ["luminance-hdr-cli", *align, "-e", evs, "--hdrModel", "debevec", "--hdrResponseCurve", "srgb",
                "-s", str(out), *names], out
    if tool == "ais-enfuse":
        if not (shutil.which("align_image_stack") and shutil.which("enfuse")):
            return None
        prefix = work / "ais_"
        out = work / "enfuse.tif"
        script = (f"align_image_stack -a {prefix} {' '.join(names)} >/dev/null 2>&1 && "
                  f"enfuse -o {out} {prefix}*.tif >/dev/null 2>&1")
        return script, out
    if tool == "pfstools":
        if not all(shutil.which(c) for c in ("pfsinhdrgen", "pfshdrcalibrate", "pfsout")):
            return None
        hdrgen = work / "bracket.hdrgen"
        hdrgen.write_text("".join(f"{f} {1 / t:.6f} 8 100 0\n" for f, t in zip(names, times)))
        return f"pfsinhdrgen {hdrgen} | pfshdrcalibrate | pfsout {out}", out
    if tool == "opencv-debevec":
        return [sys.executable, "-c", OPENCV_CHILD, str(out), ",".join(f"{t:.8g}" for t in times), *names], out
    if tool in ("hdrcli-debevec", "hdrcli-lffnet"):
        backend = tool.split("-")[1]
        return [sys.executable, "-m", "hdrcli.cli", "fuse", *names, "-o", str(out), "-b", backend, "--no-preview",
                "--exposures", ",".join(f"{t:.8g}" for t in times), "--device", "cpu"], out
    raise ValueError(tool)


def run(command: list[str] | str, work: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MB of the child and what it ran, exit status).

    GNU time measures RSS after exec (a forked Python child would count the parent's
    pages); a pipeline runs under bash, whose children's peak is included."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    argv = ["bash", "-c", command] if isinstance(command, str) else command
    rss_file = work / "rss.txt"
    t0 = time.perf_counter()
    status = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    seconds = time.perf_counter() - t0
    try:
        rss = float(rss_file.read_text().split()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        rss = float("nan")
    return seconds, rss, status


TOOLS = ("luminance", "luminance-mtb", "luminance-ais", "ais-enfuse", "pfstools", "opencv-debevec",
         "hdrcli-debevec", "hdrcli-lffnet")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1.5,12", help="simulated bracket sizes in MP (1.5, 12)")
    parser.add_argument("--kinds", default="static,handheld,iphone")
    parser.add_argument("--tools", default="all")
    args = parser.parse_args()
    tools = TOOLS if args.tools == "all" else tuple(args.tools.split(","))
    print("| bracket | tool | seconds | peak RSS MB | PSNR-mu dB |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for kind in args.kinds.split(","):
            if kind == "iphone":
                if IPHONE.is_dir():
                    cases.append(("iphone_handheld 12 MP (real)", *iphone()))
                continue
            for size in args.sizes.split(","):
                folder = Path(tmp) / f"{kind}-{size}"
                cases.append((f"simulated {kind} {size} MP", *simulated(folder, SIDES[size], kind == "handheld")))
        for label, files, times, truth in cases:
            for tool in tools:
                work = Path(tempfile.mkdtemp(dir=tmp))
                spec = commands(tool, files, times, work)
                if spec is None:
                    print(f"| {label} | {tool} | not installed | | |", flush=True)
                    continue
                command, out = spec
                seconds, rss, status = run(command, work)
                if status != 0 or not out.exists():
                    print(f"| {label} | {tool} | failed (exit {status}) | {rss:.0f} | |", flush=True)
                    continue
                score = "-"
                if truth is not None and out.suffix == ".exr":
                    result = read_hdr(out)
                    if result.shape == truth.shape:
                        score = f"{hdr_scores(scale_aligned(result, truth), truth)['psnr_mu']:.2f}"
                    else:
                        score = f"(size {result.shape[1]}x{result.shape[0]})"
                elif out.suffix != ".exr":
                    score = "(display image)"
                print(f"| {label} | {tool} | {seconds:.2f} | {rss:.0f} | {score} |", flush=True)
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
