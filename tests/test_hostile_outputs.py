"""Hostile requests on the output side (issue 13): outputs that are inputs, silent overwrites,
partial outputs, SIGTERM during a write, names that break the terminal, out-of-range
options, degenerate images for the tone maps, non-finite data for the writers.

Every failing case is checked for: exit code 1, exactly one ``error:`` line, no traceback,
no file left behind (the folder is listed) and inputs unchanged (sha256).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hdrcli.cli import app
from hdrcli.errors import HdrError, printable
from hdrcli.io.atomic import (
    TEMP_PREFIX,
    atomic_path,
    check_outputs,
    find_stale_temps,
    output_transaction,
    remove_stale_temps,
    same_file,
)
from tests.conftest import EXAMPLES, digest, radiance_scene

HDR = [sys.executable, "-m", "hdrcli.cli"]
ENV = dict(os.environ, COLUMNS="200", NO_COLOR="1")


# ----------------------------------------------------------------------------- helpers

def make_bracket(folder: Path, h: int = 40, w: int = 56, names=("f0.png", "f1.png", "f2.png")) -> list[Path]:
    """Three 8-bit PNG frames (-2, 0, +2 EV) of a generated scene, and a camera response
    file ``crf.txt`` (gamma 2.2) so that fusing skips calibration (fast)."""
    from hdrcli.merge import save_response

    folder.mkdir(parents=True, exist_ok=True)
    radiance = radiance_scene(h, w)
    paths = []
    for name, ev in zip(names, (-2, 0, 2)):
        display = np.clip(radiance * 2.0**ev * 0.05, 0, 1) ** (1 / 2.2)
        path = folder / name
        cv2.imwrite(str(path), (display * 255).round().astype(np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        paths.append(path)
    response = np.repeat(((np.arange(256) / 255.0) ** 2.2)[:, None], 3, axis=1)
    response[0] = response[1] / 2
    save_response(folder / "crf.txt", response)
    return paths


FAST = ["--ev", "-2,0,2", "--align", "none"]


def cli(*args, env: dict | None = None):
    """The real Typer app in-process (fast); stderr separate from stdout."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_one_error(result, *fragments: str, code: int = 1) -> str:
    """Exit ``code``, stderr exactly one line starting 'error:' holding ``fragments``."""
    stderr = result.stderr if hasattr(result, "exit_code") else result.stderr
    rc = result.exit_code if hasattr(result, "exit_code") else result.returncode
    stdout = result.stdout
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc == code, (rc, stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stdout + stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    if hasattr(result, "exception") and result.exception is not None:
        assert isinstance(result.exception, SystemExit), result.exception
    return lines[0]


@pytest.fixture
def scene(tmp_path):
    frames = make_bracket(tmp_path)
    return tmp_path, frames, tmp_path / "crf.txt"


# ----------------------------------------------------------------------------- 1. output confinement

def test_output_equal_to_input_refused_even_with_overwrite(scene):
    folder, frames, crf = scene
    inputs = frames + [crf]
    before, names = digest(inputs), listing(folder)
    os.symlink(frames[0], folder / "link.png")
    os.link(frames[2], folder / "hard.png")
    names = listing(folder)
    cases = [
        ["-o", frames[1], "--no-preview"],                                   # output = a frame (.png is an HDR format)
        ["-o", folder / "x.exr", "--preview", frames[0]],                    # preview = a frame
        ["-o", folder / "x.exr", "--crf", crf, "--save-crf", crf],           # --save-crf = --crf
        ["-o", folder / "x.exr", "--save-crf", frames[2]],                   # --save-crf = a frame
        ["-o", folder / "link.png", "--no-preview"],                         # symlink to a frame
        ["-o", folder / "x.exr", "--preview", folder / "link.png"],
        ["-o", folder / "hard.png", "--no-preview"],                         # hard link to a frame
        ["-o", folder / "sub" / ".." / "f1.png", "--no-preview"],            # same file through '..'
    ]
    (folder / "sub").mkdir()
    names = listing(folder)
    for extra in cases:
        for force in ([], ["-f"]):
            r = cli("fuse", *frames, *FAST, "--crf", crf, *extra, *force) if "--crf" not in map(str, extra) else \
                cli("fuse", *frames, *FAST, *extra, *force)
            assert_one_error(r, "input")
            assert listing(folder) == names, extra
    assert digest(inputs) == before


def test_save_crf_equal_to_output_or_preview_refused(scene):
    folder, frames, crf = scene
    names = listing(folder)
    for target in ("x.exr", "x.preview.jpg"):
        for force in ([], ["-f"]):
            r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / "x.exr", "--save-crf", folder / target, *force)
            assert_one_error(r, "same file")
            assert listing(folder) == names
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / "x.png", "--preview", folder / "x.png", "-f")
    assert_one_error(r, "same file")
    assert listing(folder) == names


def test_overwrite_replaces_only_earlier_outputs(scene):
    folder, frames, crf = scene
    out = folder / "x.exr"
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", out, "--save-crf", folder / "saved.txt")
    assert r.exit_code == 0, r.stderr
    first = digest([out])
    names = listing(folder)
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", out)  # exists: refused without -f
    assert_one_error(r, "exists", "--overwrite")
    assert digest([out]) == first
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", out, "--save-crf", folder / "saved.txt", "-f")
    assert r.exit_code == 0, r.stderr
    assert listing(folder) == names and not find_stale_temps(folder)


def test_special_file_outputs_refused(scene):
    folder, frames, crf = scene
    os.mkfifo(folder / "fifo.exr")
    names = listing(folder)
    for target, message in ((folder / "fifo.exr", "not a regular file"), (Path("/dev/null"), "/dev/null")):
        r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", target, "--no-preview", "-f")
        assert_one_error(r, message)
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / "x.exr", "--preview", folder / "fifo.exr", "-f")
    assert_one_error(r, "fifo.exr")
    assert listing(folder) == names
    assert Path("/dev/null").is_char_device()


def test_tonemap_output_equal_to_source_refused(scene):
    folder, frames, crf = scene
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / "x.png", "--no-preview")
    assert r.exit_code == 0, r.stderr
    before, names = digest([folder / "x.png"]), listing(folder)
    r = cli("tonemap", folder / "x.png", "-o", folder / "x.png", "-f")
    assert_one_error(r, "input")
    assert digest([folder / "x.png"]) == before and listing(folder) == names


def test_scene_folder_files_are_inputs(tmp_path):
    scene_dir = tmp_path / "001"
    make_bracket(scene_dir, names=("a.tif", "b.tif", "c.tif"))
    (scene_dir / "exposure.txt").write_text("-2\n0\n2\n")
    files = sorted(p for p in scene_dir.iterdir())
    before, names = digest(files), listing(tmp_path)
    for target in ("exposure.txt", "b.tif"):
        r = cli("fuse", scene_dir, "--align", "none", "-o", scene_dir / target, "--no-preview", "-f")
        assert_one_error(r)
    assert digest(files) == before and listing(tmp_path) == names


def test_check_outputs_api(tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "b.png")
    assert same_file(a, tmp_path / "b.png") and same_file(a, tmp_path / "." / "a.png")
    assert not same_file(a, tmp_path / "missing.png")
    with pytest.raises(HdrError, match="input"):
        check_outputs([tmp_path / "b.png"], [a], overwrite=True)
    with pytest.raises(HdrError, match="same file"):
        check_outputs([tmp_path / "o.exr", tmp_path / "o.exr"], [a], overwrite=True)
    with pytest.raises(HdrError, match="exists"):
        check_outputs([tmp_path / "b.png"], [], overwrite=False)
    assert check_outputs([tmp_path / "b.png", None], [], overwrite=True) == [tmp_path / "b.png"]


def test_save_stack_does_not_replace_without_overwrite(tmp_path):
    """Files of an earlier --save-stack are refused without -f, before the network runs
    (the stack's success path is tested in test_cli.py::test_expand_learned_backends)."""
    photo = tmp_path / "p.jpg"
    cv2.imwrite(str(photo), np.full((32, 48, 3), 128, np.uint8))
    stack = tmp_path / "stack"
    stack.mkdir()
    for ev in (-2, -1, 0, 1, 2):
        cv2.imwrite(str(stack / f"p_ev{ev:+d}.png"), np.full((32, 48, 3), 60 + 20 * ev, np.uint8))
    saved = sorted(stack.iterdir())
    before, names = digest(saved + [photo]), listing(tmp_path)
    r = cli("expand", photo, "-b", "stack", "--device", "cpu", "-o", tmp_path / "b.exr", "--save-stack", stack)
    assert_one_error(r, "p_ev", "exists")
    assert listing(tmp_path) == names and digest(saved + [photo]) == before
    r = cli("expand", photo, "-b", "stack", "--device", "cpu", "-o", tmp_path / "b.exr", "--save-stack", photo)
    assert_one_error(r, "not a folder")
    assert listing(tmp_path) == names and digest(saved + [photo]) == before


def test_stack_names_checked_like_other_outputs(tmp_path):
    """The late check (names known once the network ran) refuses a stack file that is an input."""
    (tmp_path / "p.jpg").write_bytes(b"photo")
    stack = tmp_path / "stack"
    stack.mkdir()
    os.symlink(tmp_path / "p.jpg", stack / "p_ev+0.png")
    with pytest.raises(HdrError, match="input"):
        check_outputs([tmp_path / "o.exr", None, stack / "p_ev-1.png", stack / "p_ev+0.png"], [tmp_path / "p.jpg"],
                      overwrite=True)


# ----------------------------------------------------------------------------- 2. transactional outputs

def test_failing_preview_leaves_no_hdr(scene, monkeypatch):
    folder, frames, crf = scene
    names = listing(folder)

    def broken_tonemap(*args, **kwargs):
        raise HdrError("tone map failed (test)")

    monkeypatch.setattr("hdrcli.pipeline.tonemap_image", broken_tonemap)
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / "x.exr", "--save-crf", folder / "c.txt")
    assert_one_error(r, "tone map failed")
    assert listing(folder) == names  # the EXR was written to a temp file, then removed


def test_disk_full_during_second_output(scene, monkeypatch):
    folder, frames, crf = scene
    names = listing(folder)
    import hdrcli.pipeline as pipeline

    real = pipeline.write_ldr

    def full_disk(path, *args, **kwargs):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "write_ldr", full_disk)
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / "x.exr")
    assert_one_error(r, "x.preview.jpg", "No space left on device")
    assert listing(folder) == names


def test_file_size_limit_is_one_line(tmp_path):
    """A real write failure (RLIMIT_FSIZE: EFBIG, as a full disk would) in a subprocess."""
    import resource

    frames = make_bracket(tmp_path, 120, 160)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    names = listing(tmp_path)
    r = subprocess.run([*HDR, "fuse", *map(str, frames), *FAST, "--crf", str(tmp_path / "crf.txt"), "--float32",
                        "-o", str(tmp_path / "x.exr")], capture_output=True, text=True, env=ENV, preexec_fn=limit,
                       timeout=120)
    assert_one_error(r, "x.exr", "File too large")
    assert listing(tmp_path) == names


@pytest.mark.parametrize("length", [245, 251])
def test_long_output_names(scene, length):
    folder, frames, crf = scene
    out = folder / ("n" * length + ".exr")  # 249 and 255 bytes: the limit itself
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", out, "--no-preview")
    assert r.exit_code == 0, r.stderr
    assert out.is_file() and not find_stale_temps(folder)


def test_too_long_names_fail_with_one_line(scene):
    folder, frames, crf = scene
    names = listing(folder)
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / ("n" * 252 + ".exr"), "--no-preview")
    assert_one_error(r, "file name too long")
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", folder / ("n" * 245 + ".exr"))  # preview name: 257 bytes
    assert_one_error(r, ".preview.jpg", "file name too long")
    assert listing(folder) == names


def test_transaction_api(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with output_transaction():
            with atomic_path(tmp_path / "a.txt") as tmp:
                tmp.write_text("a")
            assert (tmp_path / "a.txt").exists() is False and len(find_stale_temps(tmp_path)) == 1
            raise KeyboardInterrupt
    assert listing(tmp_path) == ["keep.txt"]
    with output_transaction():
        for name in ("a.txt", "keep.txt"):
            with atomic_path(tmp_path / name) as tmp:
                tmp.write_text("new")
    assert listing(tmp_path) == ["a.txt", "keep.txt"] and (tmp_path / "keep.txt").read_text() == "new"
    stale = tmp_path / f"{TEMP_PREFIX}abcd1234-x.exr"
    stale.write_bytes(b"left by SIGKILL")
    assert remove_stale_temps(tmp_path) == [stale] and not stale.exists()


def test_fuse_and_expand_remove_only_old_temps_of_killed_runs(scene):
    """Temp files a SIGKILL left in the output folder more than an hour ago are removed (with a
    warning) when a job writes there; younger ones (a job running now), symbolic links and the
    job's inputs, whatever their names, stay. Failing jobs remove nothing."""
    folder, frames, crf = scene
    hour_ago = time.time() - 3700
    old, young = folder / f"{TEMP_PREFIX}old12345-x.exr", folder / f"{TEMP_PREFIX}new12345-x.exr"
    old_input = folder / f"{TEMP_PREFIX}input-f1.png"  # an input with a temp-like name
    old_input.write_bytes(frames[1].read_bytes())
    for path in (old, young):
        path.write_bytes(b"left by SIGKILL")
    os.symlink(frames[0], folder / f"{TEMP_PREFIX}link-x.png")
    for path in (old, old_input, folder / f"{TEMP_PREFIX}link-x.png"):
        os.utime(path, (hour_ago, hour_ago), follow_symlinks=False)
    inputs = [frames[0], old_input, frames[2]]
    before = digest(inputs)
    r = cli("fuse", *inputs, *FAST, "--crf", "/nonexistent/crf.txt", "-o", folder / "x.exr")
    assert r.exit_code == 1 and old.exists()  # a failing job touches nothing
    r = cli("fuse", *inputs, *FAST, "--crf", crf, "-o", folder / "x.exr")
    assert r.exit_code == 0, r.stderr
    assert "removed 1 temporary file(s)" in r.stderr and old.name in r.stderr
    assert not old.exists() and young.exists() and (folder / f"{TEMP_PREFIX}link-x.png").is_symlink()
    assert digest(inputs) == before
    young.write_bytes(b"left by SIGKILL")
    os.utime(young, (hour_ago, hour_ago))
    r = cli("expand", old_input, "-o", folder / "e.exr", "--no-preview")
    assert r.exit_code == 0, r.stderr
    assert not young.exists() and "removed 1 temporary file(s)" in r.stderr
    assert digest(inputs) == before and old_input.exists()


def test_remove_stale_temps_by_age_keeps_inputs(tmp_path):
    old, new = tmp_path / f"{TEMP_PREFIX}a-x.exr", tmp_path / f"{TEMP_PREFIX}b-x.exr"
    for path in (old, new):
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert find_stale_temps(tmp_path, older_than=3600) == [old]
    assert remove_stale_temps(tmp_path, older_than=3600, keep=[old]) == [] and old.exists()
    assert remove_stale_temps(tmp_path, older_than=3600) == [old] and new.exists()


# ----------------------------------------------------------------------------- 3. SIGTERM

def test_sigterm_during_write_leaves_nothing(tmp_path):
    """SIGTERM while the EXR temp exists (the preview's Mantiuk tone map runs): exit 143,
    no temp, no output. The signal is sent when the temp file appears, so the test does not
    depend on the machine's speed."""
    frames = make_bracket(tmp_path, 600, 800)
    before, names = digest(frames), listing(tmp_path)
    # One thread: the job leaves this process a core to watch for the temp file (on a 2-core machine
    # a job on both cores once kept the watcher off the CPU for the temp file's whole life).
    proc = subprocess.Popen([*HDR, "fuse", *map(str, frames), *FAST, "--crf", str(tmp_path / "crf.txt"),
                             "--tonemap", "mantiuk", "--float32", "--threads", "1", "-o", str(tmp_path / "x.exr")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not find_stale_temps(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert find_stale_temps(tmp_path), f"the job ended before its first temp file was seen: {proc.communicate(timeout=60)}"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip() == "error: terminated" and "Traceback" not in stderr
    assert listing(tmp_path) == names and digest(frames) == before


# ----------------------------------------------------------------------------- 4. one error style

def test_markup_and_control_characters_in_names(tmp_path):
    folder = tmp_path / "d["
    # the folder "d[" and the names "x]..." make paths holding "[/x]": rich would read a closing tag
    frames = make_bracket(folder, names=("x][red]a.png", "b\x1b[2Jc.png", ":smile:.png"))
    crf = folder / "crf.txt"
    out = folder / "x]" / "[bold]o.exr"
    out.parent.mkdir()
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", out)
    assert r.exit_code == 0, r.stderr
    assert f"wrote {out}" in r.stdout  # literally, markup not interpreted
    assert "x][red]a.png" in r.stdout and ":smile:.png" in r.stdout
    assert "\x1b" not in r.stdout and "b\\x1b[2Jc.png" in r.stdout
    r = cli("fuse", *frames, *FAST, "--crf", crf, "-o", out)  # exists
    assert_one_error(r, "[bold]o.exr", "exists")
    r = cli("fuse", folder / "no\nsuch.png", *frames[1:], *FAST, "-o", folder / "y.exr")
    line = assert_one_error(r, "d[/no\\nsuch.png")
    assert "\n" not in line
    # warnings and notes through the rich handler: a note names the exposure file
    exposure_file = folder / "[red]ev.txt"
    exposure_file.write_text("-2\n0\n2\n")
    r = cli("-v", "fuse", *frames, "--align", "none", "--crf", crf, "--exposure-file", exposure_file,
            "--exposure-file-format", "auto", "-o", folder / "z.exr")
    assert r.exit_code == 0, r.stderr
    assert "[red]ev.txt" in r.stderr


def test_non_utf8_names_and_ascii_terminal(tmp_path):
    frames = make_bracket(tmp_path)
    raw = os.fsencode(tmp_path) + b"/\xff\xfe-\xc3\xa9.png"
    os.rename(frames[0], raw)
    args = [*HDR, "fuse", raw, str(frames[1]), str(frames[2]), *FAST, "--crf", str(tmp_path / "crf.txt")]
    r = subprocess.run([*args, "-o", os.fsencode(tmp_path) + b"/\xff-out.exr"], capture_output=True, env=ENV,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"\\xff\\xfe-\xc3\xa9.png" in r.stdout and b"wrote " in r.stdout and b"\\xff-out.exr" in r.stdout
    # a non-UTF-8 name in an error, on a terminal that takes ASCII only
    env = dict(ENV, PYTHONIOENCODING="ascii")
    r = subprocess.run([*args, "-o", os.fsencode(tmp_path) + b"/\xff-out.exr"], capture_output=True, env=env,
                       timeout=120)
    assert_one_error(subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode("ascii"),
                                                 r.stderr.decode("ascii")), "\\xff-out.exr", "exists")


def test_internal_errors_and_debug(scene, monkeypatch):
    folder, frames, crf = scene

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("hdrcli.pipeline.fuse", bug)
    r = cli("fuse", *frames, *FAST, "-o", folder / "x.exr")
    assert_one_error(r, "internal error: ZeroDivisionError", "HDRCLI_DEBUG=1", code=3)
    r = cli("fuse", *frames, *FAST, "-o", folder / "x.exr", env={"HDRCLI_DEBUG": "1"})
    assert isinstance(r.exception, ZeroDivisionError)  # the traceback is shown

    def memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("hdrcli.pipeline.fuse", memory)
    assert_one_error(cli("fuse", *frames, *FAST, "-o", folder / "x.exr"), "not enough memory")


def test_usage_errors_are_one_line():
    """Typer's own usage errors, through the console entry point (hdrcli.cli.run)."""
    for args in (["fuse", "a.png", "--tile", "abc", "-o", "x.exr"], ["fuse", "a.png", "--bogus"]):
        r = subprocess.run([*HDR, *args], capture_output=True, text=True, env=ENV, timeout=60)
        assert_one_error(r, "--help")


def test_printable():
    assert printable("plain é 日本 [/x]") == "plain é 日本 [/x]"
    assert printable("a\nb\x1b[31m\u202e\x7f") == "a\\nb\\x1b[31m\\u202e\\x7f"
    assert printable(os.fsdecode(b"\xff.png")) == "\\xff.png"


# ----------------------------------------------------------------------------- 5. option validation

@pytest.mark.parametrize("args, message", [
    (["--tile", "16", "-b", "lffnet"], "--tile: tile side 16 is too small"),
    (["--tile", "-1"], "--tile"),
    (["--tile", "0"], "--tile"),
    (["--ev", "2000,0,1"], "--ev: EV 2000 is out of range"),
    (["--ev", "nan,0,1"], "--ev"),
    (["--ev", "1e400,0,1"], "--ev"),
    (["--exposures", "1e400,1,2"], "--exposures"),
    (["--exposures", "0,1,2"], "--exposures"),
    (["--exposures", "1e-310,1e-309,1e-308", "-b", "mertens"], "--exposures"),  # denormal exposures
    (["--ev", "-2,0,2", "--reference", "²"], "--reference '²'"),
    (["--ev", "-2,0,2", "--reference", "3"], "--reference 3 is out of range"),
    (["--ev", "-2,0,2", "--reference", "-1"], "--reference -1 is out of range"),
    (["--device", "xyz"], "--device: unknown device 'xyz'"),
    (["--device", "cuda:x"], "--device"),
    (["--runtime", "tensorflow"], "--runtime: unknown runtime"),
])
def test_fuse_option_validation(scene, args, message):
    folder, frames, crf = scene
    names = listing(folder)
    r = cli("fuse", *frames, "--align", "none", *args, "-o", folder / "x.exr")
    assert_one_error(r, message)
    assert listing(folder) == names


@pytest.mark.parametrize("args", [["--exposure", "nan"], ["--exposure", "inf"], ["--exposure", "-1e400"],
                                  ["--exposure", "65"]])
def test_tonemap_exposure_validation(scene, args):
    folder, frames, crf = scene
    (folder / "x.exr").write_bytes(b"never read")
    r = cli("tonemap", folder / "x.exr", "-o", folder / "t.jpg", *args)
    assert_one_error(r, "--exposure")
    assert not (folder / "t.jpg").exists()


@pytest.mark.parametrize("args", [["--gap", "-1"], ["--gap", "nan"], ["--count", "1"], ["--count", "0"],
                                  ["--jobs", "0"]])
def test_batch_option_validation(tmp_path, args):
    r = cli("batch", tmp_path, "-o", tmp_path / "out", *args)
    assert r.exit_code != 0 and "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


def test_expand_and_export_option_validation(tmp_path):
    photo = EXAMPLES / "single" / "street.jpg"
    for args in (["--tile", "100"], ["--device", "gpu"], ["--runtime", "tvm"]):
        assert_one_error(cli("expand", photo, "-o", tmp_path / "x.exr", *args), args[0])
    assert_one_error(cli("export", "-b", "lffnet", "--tile", "64", "-o", tmp_path / "x.onnx"), "--tile")
    assert_one_error(cli("train", "-b", "lffnet", "--device", "xyz", "--run-dir", tmp_path / "runs"), "--device")
    assert not list(tmp_path.iterdir())


def test_export_never_replaces_the_weights_it_reads():
    from hdrcli.runtime.runner import available_sizes
    from hdrcli.weights import manifest_path, weights_path

    sizes = available_sizes("lffnet")
    if not sizes:
        pytest.skip("no weights for lffnet")
    shipped = [weights_path("lffnet", sizes[0]), manifest_path()]
    before = digest(shipped)
    for target in shipped:
        assert_one_error(cli("export", "-b", "lffnet", "-o", target, "-f"), "input")
    assert digest(shipped) == before


def test_export_by_default_refreshes_every_shipped_export_and_needs_f():
    """`hdr export -b lffnet` writes the tile, synthesis and head graphs: existing ones need -f,
    checked for all before any is written."""
    from hdrcli.runtime.runner import available_sizes
    from hdrcli.weights import head_onnx_path, manifest_path, onnx_path, synthesis_onnx_path

    sizes = available_sizes("lffnet")
    targets = [onnx_path("lffnet", sizes[0], 256), synthesis_onnx_path("lffnet", sizes[0]),
               head_onnx_path("lffnet", sizes[0])] if sizes else []
    if not targets or not all(t.is_file() for t in targets):
        pytest.skip("no shipped exports of lffnet")
    before = digest([*targets, manifest_path()])
    assert_one_error(cli("export", "-b", "lffnet"), targets[0].name)
    assert_one_error(cli("export", "-b", "lffnet", "--synthesis", "--tile", "256"), "--synthesis")
    assert_one_error(cli("export", "-b", "twostage", "--synthesis"), "no synthesis graph")
    assert_one_error(cli("export", "-b", "lffnet", "--head", "--synthesis"), "--head")
    assert_one_error(cli("export", "-b", "twostage", "--head"), "no head graph")
    assert digest([*targets, manifest_path()]) == before


def test_runtimes_list_matches_library():
    from hdrcli.cli import _RUNTIMES
    from hdrcli.runtime import RUNTIMES

    assert set(_RUNTIMES) == set(RUNTIMES) | {"auto"}  # auto: make_runner picks one


# ----------------------------------------------------------------------------- 6. tone maps on degenerate images

def _degenerate_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "black": np.zeros((16, 16, 3), np.float32),
        "constant": np.full((16, 16, 3), 0.5, np.float32),
        "1x1": np.full((1, 1, 3), 2.0, np.float32),
        "1x1 black": np.zeros((1, 1, 3), np.float32),
        "1x50": rng.random((1, 50, 3)).astype(np.float32),
        "nan": np.where(rng.random((16, 16, 3)) > 0.5, np.nan, 1.0).astype(np.float32),
        "all nan": np.full((8, 8, 3), np.nan, np.float32),
        "inf": np.where(rng.random((16, 16, 3)) > 0.5, np.inf, 1.0).astype(np.float32),
        "huge": np.full((8, 8, 3), 3e38, np.float32),
        "denormal": (rng.random((8, 8, 3)) * 1e-42).astype(np.float32),
        "negative": -rng.random((8, 8, 3)).astype(np.float32),
        "1e-30 and 1e30": np.concatenate([np.full((4, 8, 3), 1e-30, np.float32), np.full((4, 8, 3), 1e30, np.float32)]),
    }


def test_tonemaps_on_degenerate_images():
    import warnings

    from hdrcli.tonemap import TONEMAPS, tonemap

    for name, image in _degenerate_images().items():
        for method in TONEMAPS:
            for exposure in (0.0, 3.0, -64.0, 64.0):
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # no RuntimeWarning (overflow...) either
                    display = tonemap(image, method, exposure)
                assert display.shape == image.shape and display.dtype == np.float32, (name, method)
                assert np.isfinite(display).all() and display.min() >= 0 and display.max() <= 1, (name, method)
    for method in TONEMAPS:  # black stays black; a constant image is middle grey, not black or white
        assert tonemap(np.zeros((8, 8, 3), np.float32), method).max() == 0
        if method != "mulaw":  # mu-law normalises by the image's own maximum
            grey = tonemap(np.full((8, 8, 3), 0.5, np.float32), method).mean()
            assert 0.3 < grey < 0.6, (method, grey)


@pytest.mark.parametrize("method", ["drago", "mantiuk"])
def test_tonemap_cli_on_black_and_constant(tmp_path, method):
    from hdrcli.io import write_hdr

    for name, value in (("black", 0.0), ("constant", 0.25)):
        source = tmp_path / f"{name}.exr"
        write_hdr(source, np.full((8, 12, 3), value, np.float32))
        r = cli("tonemap", source, "-o", tmp_path / f"{name}-{method}.png", "-t", method)
        assert r.exit_code == 0, r.stderr
        shown = cv2.imread(str(tmp_path / f"{name}-{method}.png"))
        assert (shown.max() == 0) if value == 0 else (60 < shown.mean() < 160)


def test_fuse_black_bracket_with_drago_preview(tmp_path):
    """An all-black bracket: the preview's tone map must not fail after the EXR was written."""
    frames = []
    for i in range(3):
        frames.append(tmp_path / f"k{i}.png")
        cv2.imwrite(str(frames[-1]), np.zeros((24, 32, 3), np.uint8))
    make_bracket(tmp_path / "c")
    for method in ("drago", "mantiuk"):
        r = cli("fuse", *frames, *FAST, "--crf", tmp_path / "c" / "crf.txt", "--tonemap", method,
                "-o", tmp_path / f"{method}.exr")
        assert r.exit_code == 0, r.stderr
        assert (tmp_path / f"{method}.preview.jpg").is_file()


# ----------------------------------------------------------------------------- 7. writers and non-finite data

@pytest.mark.parametrize("ext", [".exr", ".hdr", ".pfm", ".png", ".tif"])
def test_writers_clamp_non_finite(tmp_path, ext):
    from hdrcli.io import read_hdr, write_hdr

    image = np.ones((6, 8, 3), np.float32)
    image[0, 0] = np.nan
    image[1, 1] = np.inf
    image[2, 2] = -np.inf
    image[3, 3] = 4.0
    write_hdr(tmp_path / f"x{ext}", image, float32=True)
    back = read_hdr(tmp_path / f"x{ext}")
    assert np.isfinite(back).all()
    assert back[0, 0].max() == 0 and back[2, 2].max() == 0
    assert np.allclose(back[1, 1], 4.0, rtol=0.02)  # +inf -> the largest finite value


def test_ldr_writer_clamps_non_finite(tmp_path):
    from hdrcli.io.ldr import write_ldr

    image = np.full((4, 4, 3), 0.5, np.float32)
    image[0, 0], image[1, 1] = np.nan, np.inf
    write_ldr(tmp_path / "x.png", image)
    shown = cv2.imread(str(tmp_path / "x.png"))
    assert shown[0, 0].max() == 0 and shown[1, 1].min() == 255
