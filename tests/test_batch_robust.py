"""`hdr batch` against hostile names, bad report paths, kills and crashes (issue 13 item 9, 14 item 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from hdrcli.batch import check_batch_files, plan, stale_temp_files, threads_per_job
from hdrcli.errors import HdrError
from tests.conftest import textured_scene
from tests.test_batch import T0, shoot, shoot_folder  # noqa: F401 - shoot_folder is a fixture
from tests.test_cli import HDR, hdr


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("template", [
    "../x_{index}", "/tmp/x_{index}", "/dev/null", "sub/{index}", "..", ".", ".hidden{index}", "a\x01{index}",
    "{first:>999999999}", "{first.__class__}", "{nope}", "{index!r}", "x" * 250 + "{index}",
])
def test_name_templates_are_confined(shoot_folder, tmp_path, template):
    with pytest.raises(HdrError) as info:
        plan(shoot_folder, tmp_path / "out", template=template)
    assert "--name template" in str(info.value) and "\n" not in str(info.value)


def test_name_collisions_symlinks_and_reserved_names(shoot_folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(HdrError, match="groups 1 and 2 the same output"):
        plan(shoot_folder, out, template="{count}")  # every good group has 3 frames
    # An existing output that is a symlink to a file elsewhere resolves outside the folder.
    out.mkdir()
    outside = tmp_path / "victim.exr"
    outside.write_text("keep")
    (out / "k7-x9.exr").symlink_to(outside)
    with pytest.raises(HdrError, match="outside the output folder"):
        plan(shoot_folder, out)
    assert outside.read_text() == "keep"
    # The batch's own files and the input frames are never a group's output.
    single = tmp_path / "single"
    single.mkdir()
    for name in ("k7.jpg", "b2.jpg", "x9.jpg", "noexif.png"):
        (single / name).write_bytes((shoot_folder / name).read_bytes())
    with pytest.raises(HdrError, match="the batch's own index.html"):
        plan(single, tmp_path / "o2", template="index", extension=".html")
    with pytest.raises(HdrError, match="replace an input frame"):
        plan(single, single, template="noexif", extension=".png")


def test_bad_name_on_the_command_line_writes_nothing(shoot_folder, tmp_path):
    before = tree(tmp_path)
    r = hdr("batch", shoot_folder, "-o", tmp_path / "out", "--name", "../x_{index}")
    assert "outside" in one_error_line(r) or "is a path" in one_error_line(r)
    assert tree(tmp_path) == before


def test_report_path_checked_before_any_work(shoot_folder, tmp_path):
    out = tmp_path / "out"
    scan = plan(shoot_folder, out)
    cases = {
        tmp_path / "missing" / "r.json": "report folder does not exist",
        tmp_path: "report path is a folder",
        shoot_folder / "k7.jpg": "report path is an input frame",
        out / "k7-x9.exr": "report path is a group's output",
        out / "k7-x9.preview.jpg": "report path is a group's output",
        out / "index.html": "report path is the contact sheet",
        Path("/dev/null"): "not a regular file",
        tmp_path / ("r" * 300 + ".json"): "too long",
    }
    for path, message in cases.items():
        with pytest.raises(HdrError, match=message):
            check_batch_files(scan, out, path)
    mine = tmp_path / "notes.json"
    mine.write_text('{"mine": true}')
    with pytest.raises(HdrError, match="not an hdr batch report"):
        check_batch_files(scan, out, mine)
    assert check_batch_files(scan, out, mine, overwrite=True) == mine
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps([{"group": 1, "frames": [], "status": "done"}]))
    assert check_batch_files(scan, out, earlier) == earlier  # an earlier run's report is replaced (resume)
    # On the command line: one line, exit 1, the input and the user's file untouched, nothing fused.
    before = tree(tmp_path)
    original = (shoot_folder / "k7.jpg").read_bytes()
    r = hdr("batch", shoot_folder, "-o", out, "--report", shoot_folder / "k7.jpg", "-f")
    assert "input frame" in one_error_line(r)
    r = hdr("batch", shoot_folder, "-o", out, "--report", mine)
    assert "not an hdr batch report" in one_error_line(r)
    assert tree(tmp_path) == before and (shoot_folder / "k7.jpg").read_bytes() == original
    assert mine.read_text() == '{"mine": true}'


def test_threads_per_job():
    assert threads_per_job(1, cores=8) == 8
    assert threads_per_job(2, cores=8) == 4
    assert threads_per_job(3, cores=8) == 2
    assert threads_per_job(16, cores=8) == 1
    for jobs in range(1, 9):
        assert jobs * threads_per_job(jobs, cores=8) <= 8


def test_resume_cleans_temps_and_needs_every_output(shoot_folder, tmp_path):
    out = tmp_path / "out"
    args = ("batch", shoot_folder, "-o", out, "--jobs", "2", "--align", "none", "--threads", "1", "--save-weights")
    r = hdr(*args)
    assert r.returncode == 1  # group 5 mixes cameras
    assert (out / "k7-x9.weights.exr").is_file() and "data:image/png" in (out / "index.html").read_text()
    report = json.loads((out / "hdr-batch-report.json").read_text())
    status = {row["group"]: row["status"] for row in report if row["group"] is not None}
    assert status == {1: "done", 2: "done", 3: "done", 4: "done", 5: "failed"}
    assert (out / "index.html").is_file() and "k7-x9.preview.jpg" in (out / "index.html").read_text()
    # What a run killed during its writes leaves: temps (today's prefix and the older naming),
    # and a group whose preview is missing. A user's own hidden file must survive.
    stale = [out / ".hdrcli-tmp-abcd1234-k7-x9.exr", out / ".n1-a3.x1y2z3w4.exr", out / ".hdr-batch-report.json.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    (out / ".keep").write_text("user's")
    (out / "n1-a3.preview.jpg").unlink()
    (out / "r1-r3.weights.exr").unlink()  # every output counts, the maps too
    assert sorted(stale_temp_files(out, [out / "n1-a3.exr"])) == sorted(stale)
    kept = {name: (out / name).stat().st_mtime_ns for name in ("k7-x9.exr", "r4-r6.exr")}
    r = hdr(*args, "--skip-existing")
    report = json.loads((out / "hdr-batch-report.json").read_text())
    status = {row["group"]: row["status"] for row in report if row["group"] is not None}
    assert status[2] == status[3] == "done" and all(status[g].startswith("skipped") for g in (1, 4)), status
    assert (out / "n1-a3.preview.jpg").is_file() and (out / "r1-r3.weights.exr").is_file()
    assert not any(p.exists() for p in stale) and (out / ".keep").read_text() == "user's"
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept
    # Without --skip-existing or -f, existing outputs are never replaced.
    r = hdr(*args)
    report = json.loads((out / "hdr-batch-report.json").read_text())
    assert all("output file exists" in row["error"] for row in report if row["group"] in (1, 2, 3, 4))
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept


def test_a_worker_that_dies_is_retried(shoot_folder, tmp_path):
    out = tmp_path / "out"
    marker = tmp_path / "crashed"
    env = dict(os.environ, HDRCLI_TEST_CRASH_ONCE=str(marker), COLUMNS="200", NO_COLOR="1")
    r = subprocess.run([*HDR, "batch", str(shoot_folder), "-o", str(out), "--jobs", "2", "--align", "none"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert marker.exists(), "the fault hook did not run"
    report = json.loads((out / "hdr-batch-report.json").read_text())
    status = {row["group"]: row["status"] for row in report if row["group"] is not None}
    assert status == {1: "done", 2: "done", 3: "done", 4: "done", 5: "failed"}, r.stderr
    assert any(row.get("retries") for row in report)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def _children(pid: int) -> list[int]:
    """Live descendants of ``pid`` (from /proc; zombies count as dead)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
def test_workers_die_with_a_killed_batch(tmp_path, sig):
    folder = tmp_path / "shoot"
    folder.mkdir()
    scene = textured_scene(480, 640, seed=5, stops=8)
    for i in range(48):  # 16 brackets of 3 frames, 5 minutes apart: more work than the test waits for
        when = T0 + timedelta(minutes=5 * (i // 3), seconds=0.5 * (i % 3))
        shoot(folder / f"f{i:02d}.jpg", scene, [1 / 200, 1 / 50, 1 / 12.5][i % 3], when)
    out = tmp_path / "out"
    proc = subprocess.Popen([*HDR, "batch", str(folder), "-o", str(out), "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)
            if len(workers) >= 2 and (out / "hdr-batch-report.json").exists():
                break
            time.sleep(0.2)
        assert proc.poll() is None and workers, "the batch ended before it could be killed"
        time.sleep(0.5)
        workers = _children(proc.pid)
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=30)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        survivors = [p for p in workers if _alive(p)]
        assert not survivors, f"workers outlived the killed batch: {survivors}"
    finally:
        if proc.poll() is None:
            proc.kill()
    # The report was written at the start, so the interrupted run has one.
    report = json.loads((out / "hdr-batch-report.json").read_text())
    assert [row["group"] for row in report] == list(range(1, 17))
    if sig == signal.SIGKILL:
        assert np.all([row["status"] in ("pending", "done") for row in report])
    else:  # SIGTERM: one line, the workers stopped, no temp file, unfinished groups marked
        assert proc.returncode == 143 and "Traceback" not in stderr, stderr
        assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1, stderr
        assert np.all([row["status"] in ("interrupted", "done") for row in report])
        assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_two_batches_never_share_an_output_folder(shoot_folder, tmp_path):
    from hdrcli.batch import _lock_folder, run_batch

    out = tmp_path / "out"
    out.mkdir()
    held = _lock_folder(out)  # as a running batch holds it
    try:
        scan = plan(shoot_folder, out)
        with pytest.raises(HdrError, match="another hdr batch"):
            run_batch(scan, {"backend": "debevec", "align": "none"}, out_dir=out)
    finally:
        os.close(held)
    assert sorted(p.name for p in out.iterdir()) == []
