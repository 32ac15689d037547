"""`hdr batch --engine ray`: a local Ray instance with 2 CPUs gives byte-identical outputs to a
local run, retries a group whose worker dies, and fails fast and cleanly without Ray or a cluster."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from hdrcli.errors import HdrError
from tests.test_batch import shoot_folder  # noqa: F401 - fixture
from tests.test_cli import HDR, hdr


def test_missing_ray_is_one_line_with_the_install_hint(monkeypatch):
    from hdrcli import batch_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(HdrError) as info:
        batch_ray.import_ray()
    assert "pip install 'hdrcli[cluster]'" in str(info.value)


def test_unreachable_address_fails_fast_and_writes_nothing(shoot_folder, tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = hdr("batch", shoot_folder, "-o", out, "--engine", "ray", "--address", f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 30
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the Ray cluster" in errors[0], r.stderr
    assert not out.exists()


def test_silent_head_times_out_within_30_s(shoot_folder, tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as server:  # accepts connections, never answers: a hung head or a wrong service
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        out = tmp_path / "out"
        t0 = time.monotonic()
        r = hdr("batch", shoot_folder, "-o", out, "--engine", "ray", "--address", f"127.0.0.1:{server.getsockname()[1]}")
        assert time.monotonic() - t0 < 30
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 1 and len(errors) == 1 and "cannot connect to the Ray cluster" in errors[0], r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_ray_outputs_match_a_local_run_and_survive_a_dead_worker(shoot_folder, tmp_path):
    pytest.importorskip("ray")
    common = ["--align", "none", "--threads", "1", "--jobs", "2"]
    local, remote = tmp_path / "local", tmp_path / "ray"
    r = hdr("batch", shoot_folder, "-o", local, *common)
    assert r.returncode == 1  # group 5 mixes cameras
    marker = tmp_path / "crashed"
    env = dict(os.environ, HDRCLI_TEST_CRASH_ONCE=str(marker), COLUMNS="200", NO_COLOR="1")
    r = subprocess.run([*HDR, "batch", str(shoot_folder), "-o", str(remote), "--engine", "ray", *common],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert marker.exists(), "no Ray worker was killed"
    report = json.loads((remote / "hdr-batch-report.json").read_text())
    status = {row["group"]: row["status"] for row in report if row["group"] is not None}
    assert status == {1: "done", 2: "done", 3: "done", 4: "done", 5: "failed"}, report
    written = sorted(p.name for p in local.iterdir() if p.suffix in (".exr", ".jpg"))
    assert len(written) == 8 and written == sorted(p.name for p in remote.iterdir() if p.suffix in (".exr", ".jpg"))
    for name in written:
        assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    assert not [p for p in remote.iterdir() if p.name.startswith(".")]  # no temp of the killed attempt
    assert (remote / "index.html").is_file()
    # Resume on Ray: everything exists, nothing is fused again.
    r = hdr("batch", shoot_folder, "-o", remote, "--engine", "ray", "--skip-existing", *common)
    report = json.loads((remote / "hdr-batch-report.json").read_text())
    assert all(row["status"].startswith("skipped") for row in report if row["group"] in (1, 2, 3, 4))
