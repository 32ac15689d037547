"""Hostile input, fast and deterministic (issue 13, item 10): a fixed subset of the fuzz
classes of scripts/fuzz.py, on small generated files, through the real CLI.

Every case must: exit 0 or 1; on failure print exactly one `error:` line; never print a
traceback or `internal error`; finish within its time limit; leave no temporary file and
(after a failure) no output; write nothing outside its output folder (the input folder, a
sibling folder, the working folder and TMPDIR are compared before/after); leave the inputs
byte-identical; stay under 1 GB peak RSS when it refuses the input. The checks are
scripts/fuzzlib.py's, the same as the long fuzz run's.
"""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("fuzzlib", ROOT / "scripts" / "fuzzlib.py")
fuzzlib = importlib.util.module_from_spec(_spec)
sys.modules["fuzzlib"] = fuzzlib
_spec.loader.exec_module(fuzzlib)

TONEMAP = ["bitflip", "header_bitflip", "truncate", "chunk_dup", "zero_tail", "wrong_ext", "empty", "devzero_link",
           "fifo", "folder", "markup_name", "long_name", "nonutf8_name", "intact", "output_is_input",
           "long_output_name", "markup_output_name"]
FUSE = ["truncate", "header_size", "bitflip", "devzero_link", "fifo", "markup_name", "nonutf8_name", "long_name",
        "intact", "huge_exposure_file", "devzero_exposure_file", "output_is_input", "long_output_name",
        "exposure_overflow", "tile_bad"]
BATCH = ["truncate", "fifo", "batch_name_escape", "batch_absolute_name"]
# (command, kind, index): the index varies the seed file and options drawn for the case
CASES = ([("tonemap", k, 0) for k in TONEMAP]
         + [("tonemap", "header_size", i) for i in range(6)]  # over the generated formats
         + [("fuse", k, 0) for k in FUSE] + [("fuse", "header_size", i) for i in (1, 2)]
         + [("batch", k, 0) for k in BATCH] + [("expand", "truncate", 0)])
SEED = 20261201


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every case once (two at a time: each case has its own folders)."""
    root = tmp_path_factory.mktemp("hostile")
    seeds = fuzzlib.generated_seeds(root / "seeds")

    def run(item):
        number, (command, kind, index) = item
        case = fuzzlib.make_case(seeds, root / f"r{number}", SEED, index, timeout=20.0, force=(command, kind))
        result = fuzzlib.run_case(case, max_rss_mb=1024.0)
        fuzzlib.cleanup(case)
        return (command, kind, index), result

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, enumerate(CASES)))


@pytest.mark.parametrize("command, kind, index", CASES, ids=[f"{c}-{k}-{i}" for c, k, i in CASES])
def test_hostile_case(results, command, kind, index):
    result = results[(command, kind, index)]
    assert not result.problems, (result.problems, result.args, result.stderr_tail)


def test_the_checks_catch_what_they_should(tmp_path):
    """The checker is not blind: a command that writes outside its output folder, leaves a
    temp file, prints a traceback or modifies its input is flagged."""
    seeds = fuzzlib.generated_seeds(tmp_path / "seeds")
    case = fuzzlib.make_case(seeds, tmp_path / "r", SEED, 0, force=("tonemap", "intact"))
    source = next(p for p in (case.folder / "in").iterdir())
    script = (f"import pathlib, sys; pathlib.Path({str(case.folder / 'side' / 'x')!r}).write_text('x'); "
              f"pathlib.Path({str(case.folder / 'out' / '.tmp1')!r}).write_text('x'); "
              f"open({str(source)!r}, 'ab').write(b'!'); "
              "print('Traceback (most recent call last):', file=sys.stderr); sys.exit(2)")
    original = fuzzlib.HDR_CMD
    fuzzlib.HDR_CMD = [sys.executable, "-c", script]
    try:
        result = fuzzlib.run_case(case)
    finally:
        fuzzlib.HDR_CMD = original
    text = " | ".join(result.problems)
    for needle in ("exit status 2", "traceback", "leftover temp", "written outside", "input modified"):
        assert needle in text, text
    case.timeout = 1.0
    fuzzlib.HDR_CMD = [sys.executable, "-c", "import time; time.sleep(30)"]
    try:
        assert any(p.startswith("hang") for p in fuzzlib.run_case(case).problems)
    finally:
        fuzzlib.HDR_CMD = original


def test_generated_seeds_without_shared_data(tmp_path, monkeypatch):
    monkeypatch.setattr(fuzzlib, "SHARED", tmp_path / "absent")
    seeds = fuzzlib.shared_seeds(tmp_path / "seeds")
    assert seeds.origin == "generated" and len(seeds.hdr_files) == 5 and all(p.is_file() for p in seeds.hdr_files)
    assert all(Path(f).is_file() for frames, _ in seeds.brackets for f in frames)
