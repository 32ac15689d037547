"""One backend registry, the weights module (manifest, sha256, safe loading), import layering,
and `hdr train` never touching shipped weights unasked (issues 12 item 9, 13 items 1, 2, 8)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

PACKAGE = ROOT / "hdrcli"
HDR = [sys.executable, "-m", "hdrcli.cli"]


def hdr(*args, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, COLUMNS="200", NO_COLOR="1", **(env or {}))
    full_env.pop("HDRCLI_DEBUG", None)
    return subprocess.run([*HDR, *map(str, args)], capture_output=True, text=True, env=full_env, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The run failed with exit 1 and exactly one `error:` line (no traceback) containing ``needles``."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- registry

def test_one_registry_for_classical_and_learned():
    from hdrcli import backends
    from hdrcli.models import registry

    names = [b.name for b in backends.list_backends()]
    assert names == ["debevec", "robertson", "mertens", "dfgnet", "lffnet", "tunet", "twostage", "stack"]
    assert registry.get_spec is backends.get_spec and registry.create_model is backends.create_model
    lffnet = backends.get_backend("lffnet")
    assert lffnet is backends.get_spec("lffnet") and lffnet.family == "learned" and "lite" in lffnet.configs
    assert lffnet.weights_path("lite").name == "lffnet-lite.pt"
    from hdrcli.merge.classical import merge_debevec, merge_mertens

    assert backends.get_backend("debevec").builder() is merge_debevec
    assert backends.get_backend("mertens").builder() is merge_mertens
    from hdrcli.errors import HdrError

    with pytest.raises(HdrError, match="classical backend, not a learned model"):
        backends.get_spec("debevec")
    with pytest.raises(HdrError, match="unknown backend 'nope'.*lffnet"):
        backends.get_backend("nope")


def test_classical_backends_resolve_without_torch():
    code = ("import sys; from hdrcli.backends import get_backend; b = get_backend('debevec'); "
            "assert b.family == 'classical'; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_backends_json_lists_sizes_and_weights():
    result = hdr("backends", "--json")
    assert result.returncode == 0, result.stderr
    items = {b["name"]: b for b in json.loads(result.stdout)}
    assert items["debevec"]["details"] == {} and items["mertens"]["output"] == "display"
    sizes = items["lffnet"]["details"]["sizes"]
    assert sizes["paper"]["params"] == 1_069_315 and "weights" in sizes["lite"]


# ----------------------------------------------------------------------------- layering

LOWER = ("hdrcli.io", "hdrcli.exposure", "hdrcli.align", "hdrcli.merge", "hdrcli.tonemap", "hdrcli.models",
         "hdrcli.weights", "hdrcli.backends", "hdrcli.errors", "hdrcli.log", "hdrcli.metrics")
HIGHER = ("hdrcli.runtime", "hdrcli.training", "hdrcli.evaluation", "hdrcli.pipeline", "hdrcli.batch", "hdrcli.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every hdrcli module imported anywhere in a file (module level or inside functions)."""
    found = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hdrcli"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("hdrcli"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_lower_layers_never_import_higher_ones():
    bad = sorted((m, dep) for m, deps in _graph().items() if _within(m, LOWER)
                 for dep in deps if _within(dep, HIGHER))
    assert not bad, bad


# Known function-level back-imports that are allowed (none: the Ray engine gets the batch's
# group function passed in rather than importing batch back).
ALLOWED_BACK_EDGES: set[tuple[str, str]] = set()


def test_no_import_cycle_between_modules():
    """No cycle among hdrcli modules, counting imports inside functions too (a package's
    __init__ re-exporting its own submodules is not a cycle)."""
    graph = _graph()
    for name in graph:  # drop edges from a submodule to its own package __init__
        graph[name] = {d for d in graph[name] if not name.startswith(d + ".") and (name, d) not in ALLOWED_BACK_EDGES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("first", ["hdrcli.runtime.export", "hdrcli.training.trainer", "hdrcli.evaluation",
                                   "hdrcli.weights", "hdrcli.models", "hdrcli.runtime.onnx_runtime"])
def test_each_entry_point_imports_first_in_a_fresh_interpreter(first):
    result = subprocess.run([sys.executable, "-c", f"import {first}"], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- safe loading

class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    import torch

    from hdrcli.models import create_model

    state = {"model": create_model("lffnet", "lite").state_dict(), "optimizer": {}, "schedule": {}, "step": 1,
             "payload": _Payload(marker)}
    torch.save(state, path)
    return path


def test_load_state_refuses_a_pickle_payload(tmp_path):
    from hdrcli.errors import HdrError
    from hdrcli.weights import load_state

    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(HdrError, match="refused") as info:
        load_state(evil)
    assert str(evil) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04not a zip" * 10)
    with pytest.raises(HdrError, match="not a readable PyTorch"):
        load_state(tmp_path / "junk.pt")


def _write_maps(folder: Path, count: int = 3) -> Path:
    import cv2
    import numpy as np

    from tests.conftest import textured_scene

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        scene = textured_scene(96, 128, seed=i, stops=12) * 50
        cv2.imwrite(str(folder / f"map{i}.hdr"), scene[..., ::-1].astype(np.float32))
    return folder


@pytest.mark.parametrize("option", ["--init", "--resume"])
def test_train_refuses_pickle_payloads(tmp_path, option):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    maps = _write_maps(tmp_path / "maps")
    result = hdr("train", "--backend", "lffnet", "--data", maps, "--steps", "1", "--batch", "1", "--patch", "32",
                 "--run-dir", tmp_path / "runs", "--no-export", "--val-scenes", "1", option, evil)
    one_error_line(result, str(evil), "refused")
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()


def test_checkpoints_and_exports_load_with_weights_only(tmp_path):
    """A real `hdr train` run: its checkpoint resumes under weights_only=True, weights go to the
    run folder (never weights/), with a manifest there."""
    maps = _write_maps(tmp_path / "maps")
    weights = _weights_copy(tmp_path)
    before = {p.name: p.read_bytes() for p in weights.iterdir()}
    common = ["--backend", "lffnet", "--data", maps, "--batch", "1", "--patch", "32", "--val-scenes", "1",
              "--run-dir", tmp_path / "runs"]
    result = hdr("train", *common, "--steps", "1", env={"HDRCLI_WEIGHTS_DIR": str(weights)})
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "lffnet-lite"
    assert (run / "lffnet-lite.pt").is_file() and (run / "last.pt").is_file()
    entry = json.loads((run / "manifest.json").read_text())["weights"]["lffnet-lite.pt"]
    assert entry["steps"] == 1 and entry["validation"]["scenes"] == 1
    result = hdr("train", *common, "--steps", "2", "--resume", run / "last.pt", env={"HDRCLI_WEIGHTS_DIR": str(weights)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[result.stdout.index("{"):])["steps_done"] == 2
    assert {p.name: p.read_bytes() for p in weights.iterdir()} == before  # shipped weights untouched
    # --export to an existing file needs --overwrite, and is refused before any training
    result = hdr("train", *common, "--steps", "1", "--export", run / "lffnet-lite.pt")
    one_error_line(result, "exists", "--overwrite")


# ----------------------------------------------------------------------------- verification

def _weights_copy(tmp_path: Path, names: tuple[str, ...] = ("lffnet-lite.pt", "lffnet-lite-t256.onnx")) -> Path:
    source = ROOT / "weights"
    if not all((source / n).is_file() for n in names):
        pytest.skip("shipped lffnet weights are absent")
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in (*names, "manifest.json"):
        shutil.copy2(source / name, folder / name)
    return folder


def _flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_shipped_weights_are_verified_once_per_process(tmp_path, monkeypatch):
    from hdrcli import weights as weight_files
    from hdrcli.backends import create_model
    from hdrcli.errors import HdrError

    folder = _weights_copy(tmp_path)
    monkeypatch.setenv("HDRCLI_WEIGHTS_DIR", str(folder))
    calls = []
    real = weight_files.sha256_file
    monkeypatch.setattr(weight_files, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    create_model("lffnet", "lite", pretrained=True)
    create_model("lffnet", "lite", pretrained=True)
    assert len(calls) == 1  # cached: the second load does not hash again
    _flip_byte(folder / "lffnet-lite.pt")
    with pytest.raises(HdrError, match="does not match its sha256") as info:
        create_model("lffnet", "lite", pretrained=True)
    assert "lffnet-lite.pt" in str(info.value)


@pytest.mark.parametrize("runtime, name", [("torch", "lffnet-lite.pt"), ("onnx", "lffnet-lite-t256.onnx")])
def test_fuse_refuses_tampered_shipped_weights(tmp_path, runtime, name):
    folder = _weights_copy(tmp_path)
    _flip_byte(folder / name)
    frames = sorted((EXAMPLES / "bracket").glob("*.jpg"))
    out = tmp_path / "out" / "x.exr"
    out.parent.mkdir()
    result = hdr("fuse", *frames, "-b", "lffnet", "--runtime", runtime, "--align", "none", "-o", out,
                 env={"HDRCLI_WEIGHTS_DIR": str(folder)})
    line = one_error_line(result, name, "sha256")
    assert str(folder) in line
    assert list(out.parent.iterdir()) == []


def test_train_overwrite_keeps_history_and_marks_onnx_stale(tmp_path):
    from hdrcli.weights import check_export_current

    folder = _weights_copy(tmp_path)
    old = json.loads((folder / "manifest.json").read_text())["weights"]["lffnet-lite.pt"]
    maps = _write_maps(tmp_path / "maps")
    result = hdr("train", "--backend", "lffnet", "--data", maps, "--steps", "1", "--batch", "1", "--patch", "32",
                 "--val-scenes", "1", "--run-dir", tmp_path / "runs", "--init", folder / "lffnet-lite.pt",
                 "--overwrite", env={"HDRCLI_WEIGHTS_DIR": str(folder)})
    assert result.returncode == 0, result.stderr
    assert "stale" in result.stderr
    manifest = json.loads((folder / "manifest.json").read_text())["weights"]
    new = manifest["lffnet-lite.pt"]
    assert new["sha256"] != old["sha256"] and new["steps"] == 1
    assert new["history"][-1]["sha256"] == old["sha256"]  # the replaced entry is kept
    assert new["history"][-1]["total_steps"] == old["total_steps"]
    assert new["total_steps"] == old["total_steps"] + 1  # fine-tuning adds to the record
    assert manifest["lffnet-lite-t256.onnx"]["stale"] is True
    from hdrcli.errors import HdrError

    os.environ["HDRCLI_WEIGHTS_DIR"] = str(folder)
    try:
        with pytest.raises(HdrError, match="stale"):
            check_export_current(folder / "lffnet-lite-t256.onnx")
    finally:
        del os.environ["HDRCLI_WEIGHTS_DIR"]
