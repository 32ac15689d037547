"""Hostile-input cases for the `hdr` CLI and the checks every case must pass.

Shared by ``scripts/fuzz.py`` (long runs over mutated copies of the real files in
../shared/data) and ``tests/test_hostile_input.py`` (a fast deterministic subset in CI).
It drives the real CLI in subprocesses (``python -m hdrcli.cli``); hdrcli itself is used
only to write the generated seed files.

A case is built in its own folder::

    CASE/in/    input files (mutated copies, FIFOs, links to /dev/zero, odd names)
    CASE/out/   the only folder the command may write to
    CASE/side/  a sibling folder with one file: must stay as it is
    CASE/tmp/   TMPDIR of the command: must be empty afterwards

and checked for (:func:`check`): exit status 0 or 1; on failure exactly one ``error:`` line;
no ``Traceback`` and no ``internal error``; no time-out; no hidden or temporary file left
in ``out/`` (and nothing at all after a failure, except what `hdr batch` wrote for the
groups that succeeded); nothing created, changed or removed outside ``out/``; inputs
byte-identical (sha256); peak RSS of the command (``os.wait4``) at most ``max_rss_mb``
when it refused the input.

Cases are generated deterministically from (seed, index): ``make_case(seeds, root, seed, i)``
rebuilds case ``i`` exactly, so failures can be re-run by number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANG_FACTOR = 4.0  # wall-clock limit = HANG_FACTOR x the CPU-time limit
SHARED = ROOT.parent / "shared" / "data"
# The CLI run through a launcher that writes its own peak RSS (VmHWM of the process's memory map)
# to $HDRCLI_PEAK_FILE at exit: the ru_maxrss that os.wait4 reports keeps the parent's peak when
# the child is forked (a test process of 1 GB made every refused input "use" 1 GB).
_LAUNCHER = """
import atexit, os, runpy, sys
def _peak():
    try:
        with open('/proc/self/status') as status, open(os.environ['HDRCLI_PEAK_FILE'], 'w') as out:
            out.write(next(line.split()[1] for line in status if line.startswith('VmHWM:')))
    except (OSError, KeyError, StopIteration):
        pass
atexit.register(_peak)
runpy.run_module('hdrcli.cli', run_name='__main__', alter_sys=True)
"""
HDR_CMD = [sys.executable, "-c", _LAUNCHER]
LDR_EXT = (".jpg", ".png", ".tif")
HDR_EXT = (".exr", ".hdr", ".pfm", ".png", ".tif")

MUTATIONS = ("bitflip", "header_bitflip", "truncate", "header_size", "chunk_dup", "zero_tail", "wrong_ext",
             "empty", "devzero_link", "fifo", "folder", "markup_name", "long_name", "nonutf8_name", "intact")
ATTACKS = ("huge_exposure_file", "devzero_exposure_file", "output_is_input", "long_output_name",
           "batch_name_escape", "batch_absolute_name", "markup_output_name", "exposure_overflow", "tile_bad")


# ----------------------------------------------------------------------------- seeds

@dataclasses.dataclass
class Seeds:
    """Real (or generated) files to mutate, by role."""

    brackets: list[tuple[list[Path], list[str]]]  # frames and extra args (e.g. --ev) that make them fuse
    hdr_files: list[Path]  # inputs of `hdr tonemap`
    photos: list[Path]  # inputs of `hdr expand`
    origin: str  # "shared" or "generated"


def generated_seeds(folder: Path) -> Seeds:
    """Small files made here: an 8-bit bracket (JPEG, PNG, TIFF), HDR files in every format
    hdrcli reads, and a photo. Used when ../shared is absent, and by the CI test."""
    import cv2
    import numpy as np

    from hdrcli.io.hdr import write_hdr

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    radiance = (2.0 ** (10 * xx / (w - 1) - 6) * (0.7 + 0.3 * rng.random((h, w))))[..., None] * np.array(
        [0.9, 1.0, 0.8], np.float32)
    radiance = radiance.astype(np.float32)
    brackets = []
    for ext in LDR_EXT:
        frames = []
        for ev in (-2, 0, 2):
            ldr = np.clip(radiance * 2.0**ev, 0, 1) ** (1 / 2.2)
            path = folder / f"frame_{ev:+d}{ext}"
            cv2.imwrite(str(path), np.round(ldr[..., ::-1] * 255).astype(np.uint8))
            frames.append(path)
        brackets.append((frames, ["--ev", "-2,0,2"]))
    hdr_files = []
    for ext in HDR_EXT:
        path = folder / f"radiance{ext}"
        write_hdr(path, radiance)
        hdr_files.append(path)
    photo = folder / "photo.jpg"
    cv2.imwrite(str(photo), np.round(np.clip(radiance * 4, 0, 1) ** (1 / 2.2) * 255)[..., ::-1].astype(np.uint8))
    return Seeds(brackets, hdr_files, [photo], "generated")


def shared_seeds(folder: Path) -> Seeds:
    """Real files from ../shared/data (small ones, so that a case takes seconds), plus the
    generated set; falls back to the generated set alone when ../shared is absent."""
    generated = generated_seeds(folder)
    if not SHARED.is_dir():
        return generated
    brackets = list(generated.brackets)
    frobisher = sorted((SHARED / "brackets" / "frobisher").glob("*.jpg"))
    if len(frobisher) == 3:
        brackets += [(frobisher, [])] * 3  # real EXIF: no exposure arguments
    memorial = sorted((SHARED / "brackets" / "memorial").glob("memorial*.png"))
    if len(memorial) >= 16:
        brackets.append(([memorial[4], memorial[7], memorial[10]], ["--exposures", "4,0.5,0.0625"]))
    example = sorted((ROOT / "examples" / "bracket").glob("*.jpg"))
    if len(example) == 3:
        brackets.append((example, []))
    hdr_files = list(generated.hdr_files)
    for rel in ("formats/GammaChart.exr", "formats/AllHalfValues.exr", "formats/BrightRings.exr",
                "formats/luminance_only_Garden.exr", "brackets/memorial/memorial.hdr",
                "radiance/other/Grace_Cathedral.hdr", "radiance/other/HDRMark_small.hdr"):
        if (SHARED / rel).is_file() and (SHARED / rel).stat().st_size < 3_000_000:
            hdr_files.append(SHARED / rel)
    photos = list(generated.photos) + [p for p in (ROOT / "examples" / "single" / "street.jpg",) if p.is_file()]
    return Seeds(brackets, hdr_files, photos, "shared")


# ----------------------------------------------------------------------------- mutations

def _enlarge_header(data: bytes, rng: random.Random) -> bytes:
    """Declare a huge image in the header, keeping the file small (per format)."""
    b = bytearray(data)
    big = rng.choice([16000, 30000, 65000, 65535])
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) > 33:
        struct.pack_into(">II", b, 16, big, rng.choice([big, 1, 10_000_000]))
        struct.pack_into(">I", b, 29, zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
        return bytes(b)
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                break
            marker, length = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                struct.pack_into(">HH", b, i + 5, big, big)
                return bytes(b)
            i += 2 + length
        return bytes(b)
    if b[:4] in (b"II*\x00", b"MM\x00*"):
        endian = "<" if b[:2] == b"II" else ">"
        ifd = struct.unpack(endian + "I", b[4:8])[0]
        if ifd + 2 <= len(b):
            count = struct.unpack(endian + "H", b[ifd:ifd + 2])[0]
            for k in range(min(count, 64)):
                entry = ifd + 2 + 12 * k
                if entry + 12 > len(b):
                    break
                tag, kind = struct.unpack(endian + "HH", b[entry:entry + 4])
                if tag in (256, 257):  # ImageWidth, ImageLength
                    if kind == 3:
                        struct.pack_into(endian + "H", b, entry + 8, min(big, 65535))
                    else:
                        struct.pack_into(endian + "I", b, entry + 8, big * 4)
        return bytes(b)
    if b[:2] in (b"PF", b"Pf"):
        lines = bytes(b).split(b"\n", 3)
        if len(lines) == 4:
            return b"\n".join([lines[0], f"{big} {big}".encode(), lines[2], lines[3]])
    if b"#?RADIANCE" in b[:64] or b"#?RGBE" in b[:64]:
        text = bytes(b)
        end = text.find(b"\n\n")
        nl = text.find(b"\n", end + 2)
        if end > 0 and nl > 0:
            return text[:end + 2] + f"-Y {big} +X {big}".encode() + text[nl:]
    if b[:4] == b"\x76\x2f\x31\x01":  # OpenEXR: dataWindow box2i
        at = b.find(b"dataWindow\x00box2i\x00")
        if at > 0:
            struct.pack_into("<iiii", b, at + len(b"dataWindow\x00box2i\x00") + 4, 0, 0, big * 10, big * 10)
        return bytes(b)
    return bytes(b)


def mutate_bytes(data: bytes, kind: str, rng: random.Random) -> bytes:
    """Bytes of a mutated copy (only the byte-level mutations)."""
    n = len(data)
    if kind == "bitflip" and n:
        b = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "header_bitflip" and n:
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(n, 256))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "truncate":
        return data[: int(n * rng.choice([0.0, 0.01, 0.1, 0.3, 0.5, 0.9, 0.99]))]
    if kind == "header_size":
        return _enlarge_header(data, rng)
    if kind == "chunk_dup" and n > 32:
        start = rng.randrange(n - 16)
        chunk = data[start:start + rng.randint(16, 4096)]
        at = rng.randrange(n)
        return data[:at] + chunk * rng.randint(1, 3) + data[at:]
    if kind == "zero_tail":
        keep = int(n * rng.uniform(0.1, 0.9))
        return data[:keep] + b"\x00" * (n - keep)
    if kind == "empty":
        return b""
    return data


def place_input(source: Path, folder: Path, kind: str, rng: random.Random, stem: str | None = None) -> bytes | str:
    """Write a (mutated) copy of ``source`` into ``folder``; returns its path (bytes for non-UTF-8 names)."""
    ext = source.suffix.lower()
    stem = stem or source.stem
    if kind == "wrong_ext":
        ext = rng.choice([e for e in (".jpg", ".png", ".tif", ".exr", ".hdr", ".pfm", ".cr2") if e != ext])
    if kind == "markup_name":
        stem = rng.choice(["[bold red]x[/]", "[/x]", "a[link=file:///etc/passwd]b", "\x1b[31mred\x1b[0m",
                           "tab\there", "new\nline", "%s%n{0}", "\u202egnp.exe"]) + "_" + stem
    if kind == "long_name":
        stem = (stem + "_" + "x" * 300)[: 250 - len(ext)]
    path = folder / (stem + ext)
    path.parent.mkdir(parents=True, exist_ok=True)  # markup like "[/]" puts a "/" in the path: a sub-folder
    if kind == "nonutf8_name":
        raw = os.fsencode(folder) + b"/\xff\xfe" + os.fsencode(stem + ext)
        with open(raw, "wb") as handle:
            handle.write(source.read_bytes())
        return raw
    if kind == "devzero_link":
        os.symlink("/dev/zero", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(mutate_bytes(source.read_bytes(), kind, rng))
    return str(path)


# ----------------------------------------------------------------------------- cases

@dataclasses.dataclass
class Case:
    index: int
    command: str  # fuse, tonemap, expand, batch
    kind: str  # mutation or attack class
    args: list  # arguments after `hdr` (str or bytes)
    folder: Path
    timeout: float
    description: str = ""

    @property
    def klass(self) -> str:
        return f"{self.command}:{self.kind}"


def make_case(seeds: Seeds, root: Path, seed: int, index: int, timeout: float = 10.0,
              weights: dict[str, float] | None = None, force: tuple[str, str] | None = None) -> Case:
    """Build case ``index`` of run ``seed`` under ``root`` (deterministic). ``force`` = (command,
    kind) fixes the command and the mutation/attack class; the rest stays random."""
    rng = random.Random(f"{seed}-{index}")
    folder = root / f"case{index:05d}"
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("in", "out", "side", "tmp"):
        (folder / sub).mkdir(parents=True)
    (folder / "side" / "keep.txt").write_text("sibling file\n")
    inp, out = folder / "in", folder / "out"
    weights = weights or {"tonemap": 0.45, "fuse": 0.4, "batch": 0.1, "expand": 0.05}
    command = rng.choices(list(weights), list(weights.values()))[0]
    attack = rng.random() < 0.15
    if force is not None:
        command, attack = force[0], force[1] in ATTACKS

    def pick(choices: list[str] | tuple[str, ...]) -> str:
        chosen = rng.choice(choices)
        return force[1] if force is not None else chosen
    if command == "tonemap":
        source = rng.choice(seeds.hdr_files)
        kind = pick(["output_is_input", "long_output_name", "markup_output_name"] if attack else MUTATIONS)
        if kind == "output_is_input":  # needs an input whose extension is also an output's
            source = rng.choice([p for p in seeds.hdr_files if p.suffix in (".png", ".tif")])
        src = place_input(source, inp, "intact" if attack else kind, rng)
        output: str = str(out / f"tm{rng.choice(['.jpg', '.png', '.tif'])}")
        extra = []
        if kind == "output_is_input":  # an input named as the output, with -f: must be refused, input intact
            extra, output = ["-f"], src
        elif kind == "long_output_name":
            output = str(out / ("o" * rng.choice([240, 245, 251, 260]) + ".jpg"))
        elif kind == "markup_output_name":
            output = str(out / "[bold]x[/x]\x1b[2J.jpg")
        ops = rng.choice([[], ["--tonemap", "drago"], ["--tonemap", "mantiuk"], ["--tonemap", "filmic"],
                          ["--exposure", "2"]])
        return Case(index, command, kind, ["tonemap", src, "-o", output, *ops, *extra], folder, timeout)
    if command == "expand":
        source = rng.choice(seeds.photos)
        kind = pick(MUTATIONS)
        src = place_input(source, inp, kind, rng)
        return Case(index, command, kind, ["expand", src, "-o", str(out / "x.exr"), "-b", "twostage",
                                           "--device", "cpu"], folder, timeout * 3)
    frames, extra = rng.choice(seeds.brackets)
    if command == "batch":
        kind = pick(["batch_name_escape", "batch_absolute_name"] if attack else MUTATIONS)
        shoot = inp / "shoot"
        shoot.mkdir()
        victim = rng.randrange(len(frames))
        for i, frame in enumerate(frames):
            place_input(frame, shoot, kind if (i == victim and not attack) else "intact", rng, stem=f"f{i}_{frame.stem}")
        name = {"batch_name_escape": "../x_{index}", "batch_absolute_name": str(folder / "side" / "abs_{index}")}.get(
            kind, "{first}-{last}")
        args = ["batch", str(shoot), "-o", str(out / "res"), "--align", "none", "--name", name, "--count",
                str(len(frames))]
        return Case(index, command, kind, args, folder, timeout * 2)
    # fuse
    kind = pick(["huge_exposure_file", "devzero_exposure_file", "output_is_input", "long_output_name",
                 "markup_output_name", "exposure_overflow", "tile_bad"] if attack else MUTATIONS)
    victim = rng.randrange(len(frames))
    paths = [place_input(f, inp, kind if (i == victim and not attack) else "intact", rng, stem=f"{i}_{f.stem}")
             for i, f in enumerate(frames)]
    output = str(out / rng.choice(["x.exr", "x.hdr", "x.pfm", "x.png", "x.tif"]))
    backend = rng.choice(["debevec", "debevec", "mertens", "robertson"])
    if backend == "mertens":
        output = str(out / "x.jpg")
    options = ["--align", rng.choice(["none", "none", "mtb", "ecc"]), "-b", backend]
    if rng.random() < 0.3:
        options.append("--no-preview")
    if kind == "huge_exposure_file":
        big = inp / "exposures.txt"
        with open(big, "w") as handle:
            handle.write("1/60\n" * rng.choice([3_000_000, 20_000]))
        extra = ["--exposure-file", str(big)]
    elif kind == "devzero_exposure_file":
        link = inp / "exposure.txt"
        os.symlink("/dev/zero", link)
        extra = ["--exposure-file", str(link)]
    elif kind == "output_is_input":
        output = paths[0] if isinstance(paths[0], str) else output
        options += ["-f"]
    elif kind == "long_output_name":
        output = str(out / ("o" * rng.choice([240, 245, 251, 260]) + Path(output).suffix))
    elif kind == "markup_output_name":
        output = str(out / ("[red]x[/x]\x1b]0;t\x07" + Path(output).suffix))
    elif kind == "exposure_overflow":
        extra = rng.choice([["--ev", "2000,0,1"], ["--exposures", "1e400,1,2"], ["--ev", "nan,0,2"],
                            ["--exposures", "0,1,2"], ["--ev", "-1e-320,0,1"], ["--reference", "\u00b2"]])
        if extra[0] == "--reference":
            extra = [*extra, "--ev", "-2,0,2"]
    elif kind == "tile_bad":
        options += rng.choice([["--tile", "-1"], ["--tile", "16"], ["--device", "xyz"], ["--tonemap", "nan"]])
    return Case(index, "fuse", kind, ["fuse", *paths, "-o", output, *options, *extra], folder, timeout)


# ----------------------------------------------------------------------------- running and checking

def _snapshot(folder: Path, skip: Path | None = None) -> dict[bytes, tuple]:
    """Every entry under ``folder`` (not following links) with type, size and content hash."""
    found: dict[bytes, tuple] = {}
    base = os.fsencode(folder)
    skip_b = os.fsencode(skip) if skip else None
    for dirpath, dirnames, filenames in os.walk(base):
        if skip_b is not None and (dirpath == skip_b or dirpath.startswith(skip_b + b"/")):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if skip_b is not None and path == skip_b:
                continue
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                found[path] = ("file", info.st_size, digest.hexdigest())
            else:
                found[path] = (stat.S_IFMT(info.st_mode), os.readlink(path) if stat.S_ISLNK(info.st_mode) else None)
    return found


@dataclasses.dataclass
class Result:
    index: int
    klass: str
    returncode: int | None
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    problems: list[str]
    stderr_tail: str
    args: list[str]


def run_case(case: Case, max_rss_mb: float = 1024.0) -> Result:
    """Run one case through the CLI and check it."""
    outside_before = _snapshot(case.folder, skip=case.folder / "out")
    parent_before = sorted(os.listdir(case.folder.parent))
    peak_fd, peak_file = tempfile.mkstemp(prefix="hdrcli-peak-")  # the harness's temp folder, not the case's
    os.close(peak_fd)
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1", TMPDIR=str(case.folder / "tmp"), PYTHONHASHSEED="0",
               HDRCLI_PEAK_FILE=peak_file)
    env.pop("HDRCLI_DEBUG", None)
    stdout_path, stderr_path = case.folder.parent / f".stdout{case.index}", case.folder.parent / f".stderr{case.index}"
    args = [a if isinstance(a, bytes) else str(a) for a in case.args]
    t0 = time.perf_counter()
    with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
        proc = subprocess.Popen([*HDR_CMD, *args], stdout=so, stderr=se, stdin=subprocess.DEVNULL, cwd=case.folder / "side",
                                env=env, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        # Wall time on a shared, loaded machine says little: the limit on CPU time is
        # ``timeout`` (checked after), and a process still running after 4 x timeout of wall
        # time (a blocked FIFO read uses no CPU) is killed as hung.
        timer = threading.Timer(case.timeout * HANG_FACTOR, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        try:  # children it left behind (e.g. batch workers) die with the case
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    seconds = time.perf_counter() - t0
    stderr = stderr_path.read_bytes().decode("utf-8", "replace")
    stdout_path.unlink()
    stderr_path.unlink()
    code = proc.returncode
    problems = []
    cpu = usage.ru_utime + usage.ru_stime
    if timed_out.is_set():
        problems.append(f"hang: killed after {case.timeout * HANG_FACTOR:.0f} s")
    elif cpu > case.timeout:
        problems.append(f"slow: {cpu:.1f} s of CPU time (limit {case.timeout:.0f} s)")
    if not timed_out.is_set() and code not in (0, 1):
        problems.append(f"exit status {code}")
    if "Traceback" in stderr:
        problems.append("traceback")
    if "internal error" in stderr:
        problems.append("internal error")
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if code == 1 and case.command != "batch" and len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    if code == 0 and errors:
        problems.append("error line with exit 0")
    out_files = [p for p in (case.folder / "out").rglob("*")]
    hidden = [p for p in out_files if p.name.startswith(".") or ".tmp" in p.name or "hdrcli-" in p.name]
    if hidden:
        problems.append(f"leftover temp files: {', '.join(p.name[:40] for p in hidden)}")
    if code not in (0, None) and case.command != "batch" and [p for p in out_files if p.is_file()]:
        problems.append(f"leftover output after failure: {', '.join(p.name[:40] for p in out_files)}")
    outside_after = _snapshot(case.folder, skip=case.folder / "out")
    created = sorted(set(outside_after) - set(outside_before))
    removed = sorted(set(outside_before) - set(outside_after))
    changed = sorted(p for p in set(outside_before) & set(outside_after) if outside_before[p] != outside_after[p])
    inputs_changed = [p for p in changed if b"/in/" in p]
    if created:
        problems.append("written outside the output folder: " + ", ".join(os.fsdecode(p)[-60:] for p in created[:3]))
    if inputs_changed:
        problems.append("input modified: " + ", ".join(os.fsdecode(p)[-60:] for p in inputs_changed[:3]))
    if removed or (set(changed) - set(inputs_changed)):
        problems.append("files outside the output folder removed or changed")
    if sorted(os.listdir(case.folder.parent)) != parent_before:
        problems.append("written beside the case folder")
    rss = usage.ru_maxrss / 1024.0  # kB; only if the launcher could not tell (killed)
    try:
        rss = int(Path(peak_file).read_text()) / 1024.0
    except (OSError, ValueError):
        pass
    finally:
        Path(peak_file).unlink(missing_ok=True)
    if code == 1 and rss > max_rss_mb:
        problems.append(f"peak RSS {rss:.0f} MB on a refused input")
    return Result(case.index, case.klass, code, round(seconds, 2), round(cpu, 2),
                  round(rss, 1), problems, stderr[-600:], [os.fsdecode(a) if isinstance(a, bytes) else a for a in args])


def cleanup(case: Case) -> None:
    """Remove a case folder (FIFOs, links and non-UTF-8 names included)."""
    shutil.rmtree(os.fsencode(case.folder), ignore_errors=True)
