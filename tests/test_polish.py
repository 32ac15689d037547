"""Issue 15 items 5-6: previews that look right and a CLI a photographer reads without surprise.

Fast tests on small generated images (CliRunner, no subprocess); the real-photo comparison
of preview operators is bench/previews.py (numbers in README / notes).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from hdrcli.cli import _ev_text, _gap_hint, app
from hdrcli.evaluation import global_scale
from hdrcli.tonemap import DEFAULT_TONEMAP, TONEMAPS, tonemap
from tests.conftest import radiance_scene, textured_scene
from tests.test_batch import T0, shoot

COMMANDS = ("backends", "fuse", "expand", "eval", "batch", "info", "export", "tonemap", "train")


def cli(*args, columns: int = 80):
    runner = CliRunner()
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"})


def chroma_lab(display: np.ndarray) -> tuple[float, float]:
    lab = cv2.cvtColor(np.ascontiguousarray(display, np.float32), cv2.COLOR_RGB2LAB)
    return float(lab[..., 1].mean()), float(lab[..., 2].mean())


# ----------------------------------------------------------------------------- tone mapping

def test_default_preview_operator_is_local():
    assert DEFAULT_TONEMAP == "local" and DEFAULT_TONEMAP in TONEMAPS


@pytest.mark.parametrize("method", ["local", "mantiuk"])
def test_luminance_operators_keep_grey_grey(method):
    """A neutral scene stays neutral (no olive veil): channels equal to the 8-bit level."""
    grey = np.repeat(textured_scene(90, 120, seed=1, stops=12)[..., :1], 3, axis=-1)
    display = tonemap(grey, method)
    assert np.isfinite(display).all() and 0.0 <= display.min() and display.max() <= 1.0
    assert np.abs(display - display.mean(-1, keepdims=True)).max() < 1 / 255
    a, b = chroma_lab(display)
    assert abs(a) < 0.5 and abs(b) < 0.5


@pytest.mark.parametrize("method", ["local", "mantiuk"])
def test_luminance_operators_keep_hues_and_limit_clipping(method):
    scene = radiance_scene(96, 128, seed=2, stops=14)
    scene[10:30, 10:40] *= np.array([4.0, 1.0, 0.3], np.float32)  # a saturated orange patch
    display = tonemap(scene, method)
    patch = display[12:28, 12:38].reshape(-1, 3)
    assert (patch[:, 0] >= patch[:, 1]).mean() > 0.95 and (patch[:, 1] >= patch[:, 2]).mean() > 0.95
    clipped = (display.max(-1) >= 254 / 255).mean()
    assert clipped <= 0.04  # the highlight cap: at most ~3% of pixels reach white in a channel


def test_local_is_not_grey_or_washed_out():
    """Against OpenCV Reinhard (the old default): more local contrast, no less colour."""
    scene = radiance_scene(96, 128, seed=4, stops=14) * np.array([1.0, 0.8, 0.5], np.float32)
    local, old = tonemap(scene, "local"), tonemap(scene, "reinhard")
    assert local.mean(-1).std() > 0.9 * old.mean(-1).std()
    sat = lambda d: float(((d.max(-1) - d.min(-1)) / np.maximum(d.max(-1), 1e-6)).mean())  # noqa: E731
    assert sat(local) >= 0.9 * sat(old)
    assert 0.2 < local.mean() < 0.8


def test_local_exposure_changes_brightness():
    scene = textured_scene(60, 80, seed=5, stops=10)
    darker, normal, brighter = (tonemap(scene, "local", ev).mean() for ev in (-1.0, 0.0, 1.0))
    assert darker < normal < brighter


def test_mantiuk_runs_at_reduced_size_on_large_images(monkeypatch):
    """OpenCV's Mantiuk sees at most LOCAL_MAX_SIDE pixels a side (12 MP took 51 s)."""
    import hdrcli.tonemap as tm

    seen = []
    real = cv2.createTonemapMantiuk

    class Spy:
        def __init__(self, op):
            self.op = op

        def process(self, image):
            seen.append(image.shape)
            return self.op.process(image)

    monkeypatch.setattr(tm.cv2, "createTonemapMantiuk", lambda **kw: Spy(real(**kw)))
    tonemap(radiance_scene(900, 1600, seed=6), "mantiuk")
    assert seen and max(seen[0][:2]) <= tm.LOCAL_MAX_SIDE


# ----------------------------------------------------------------------------- help text

@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_readable_at_80_columns(command):
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    text = result.output
    for typer_label in ("<bool>", "<str>", "<int>", "<float>", "<path>", "<list", "{frames}", "{folder}", "{source}"):
        assert typer_label not in text, f"{command} --help shows {typer_label}"
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "--verbose" in text  # -v is accepted after every command


def test_fuse_help_names_arguments_and_defaults():
    text = cli("fuse", "--help").output
    assert "Usage: hdr fuse [OPTIONS] FRAMES..." in text
    assert "EV,EV,..." in text and "PATH" in text
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
    assert "Default: 256 for dfgnet, lffnet and tunet" in flat
    assert "lite for all five" in flat


def test_fuse_help_tile_default_matches_runtime():
    from hdrcli.runtime.runner import DEFAULT_TILE

    assert {DEFAULT_TILE[n] for n in ("dfgnet", "lffnet", "tunet")} == {256}


def test_backends_fits_80_columns():
    result = cli("backends")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.output
    assert any(line.startswith("lffnet") for line in lines) and "multi-exposure" in result.output
    wide = cli("backends", columns=160)
    assert "┃ name" in wide.output and "…" not in wide.output


# ----------------------------------------------------------------------------- fuse table and -v

@pytest.fixture
def png_bracket(tmp_path) -> list[Path]:
    """Three PNG frames without EXIF, 2 stops apart (gamma 2.2 camera)."""
    scene = textured_scene(48, 64, seed=7, stops=9)
    paths = []
    for name, t in (("a_dark.png", 0.25), ("b_mid.png", 1.0), ("c_bright.png", 4.0)):
        pixels = np.clip(scene * t * 3.0, 0, 1) ** (1 / 2.2)
        path = tmp_path / name
        cv2.imwrite(str(path), np.round(pixels[..., ::-1] * 255).astype(np.uint8))
        paths.append(path)
    return paths


def fuse_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().split("│")[1:-1]]
        if len(cells) == 4 and cells[0].endswith(".png"):
            rows[cells[0]] = cells[1:]
    return rows


def test_fuse_table_ev_relative_to_reference_no_invented_shutter(tmp_path, png_bracket):
    result = cli("fuse", *png_bracket, "-e", "-2,0,2", "--align", "none", "-o", tmp_path / "x.exr", "--no-preview",
                 columns=120)
    assert result.exit_code == 0, result.output
    rows = fuse_rows(result.output)
    assert rows["a_dark.png"] == ["-", "-2", ""]
    assert rows["b_mid.png"] == ["-", "0", "*"]
    assert rows["c_bright.png"] == ["-", "+2", ""]
    assert "above the noise floor" in result.output


def test_fuse_table_shows_given_shutter_speeds(tmp_path, png_bracket):
    result = cli("fuse", *png_bracket, "--exposures", "1/200,1/50,0.08", "--align", "none", "-o", tmp_path / "x.exr",
                 "--no-preview", columns=120)
    assert result.exit_code == 0, result.output
    rows = fuse_rows(result.output)
    assert rows["a_dark.png"][:2] == ["1/200 s", "-2"] and rows["b_mid.png"][:2] == ["1/50 s", "0"]


def test_verbose_after_the_command(tmp_path, png_bracket):
    exposure_file = tmp_path / "times.txt"
    exposure_file.write_text("1/200\n1/50\n0.08\n")
    args = ["fuse", *png_bracket, "--exposure-file", exposure_file, "--align", "none", "--no-preview"]
    quiet = cli(*args, "-o", tmp_path / "q.exr")
    loud = cli(*args, "-o", tmp_path / "v.exr", "-v")
    assert quiet.exit_code == 0 and loud.exit_code == 0, loud.output
    assert "note:" not in quiet.output and "note:" in loud.output  # e.g. the list file's format
    assert "1/200 s" in loud.output  # a seconds list gives real shutter speeds
    assert cli("-v", *args, "-o", tmp_path / "w.exr").exit_code == 0  # before the command still works


# ----------------------------------------------------------------------------- batch --gap hint

def test_gap_hint_from_exif_times(tmp_path):
    folder = tmp_path / "phone"
    folder.mkdir()
    scene = textured_scene(32, 48, seed=8, stops=6)
    for i, (t, dt) in enumerate(((1 / 60, 0.0), (1 / 15, 5.0), (1 / 4, 12.5))):
        shoot(folder / f"IMG_{i}.jpg", scene, t, T0 + timedelta(seconds=dt))
    result = cli("batch", folder, "-o", tmp_path / "out", "--dry-run", columns=200)
    assert result.exit_code == 0, result.output
    assert "single frame" in result.output and "--gap 8" in result.output  # pauses 4.98 s and 7.43 s
    grouped = cli("batch", folder, "-o", tmp_path / "out", "--dry-run", "--gap", "8", columns=200)
    assert "hint:" not in grouped.output and "single frame" not in grouped.output


def test_gap_hint_quiet_for_separate_photos():
    def group(seconds: float, exposure: float = 0.01):
        return SimpleNamespace(shots=[SimpleNamespace(start=T0 + timedelta(seconds=seconds), exposure=exposure)])

    assert _gap_hint([group(0), group(3600), group(7200)], 2.0) is None  # an hour apart: photos, not a bracket
    assert "--gap 4" in _gap_hint([group(0), group(3)], 2.0)


def test_ev_text():
    assert [_ev_text(v) for v in (-2.0, 0.0, 2.0, 1.98, -0.004)] == ["-2", "0", "+2", "+1.98", "0"]


# ----------------------------------------------------------------------------- eval scale

def test_global_scale_methods():
    pred = textured_scene(40, 50, seed=9, stops=6) * 0.5
    for method in ("median", "lsq"):
        assert global_scale(pred, pred * 8.0, method) == pytest.approx(8.0, rel=1e-4)


def kalantari_scene(folder: Path, gt_scale: float) -> None:
    folder.mkdir(parents=True)
    scene = textured_scene(64, 64, seed=10, stops=8)
    for i, ev in enumerate((0.0, 2.0, 4.0)):
        pixels = np.clip(scene * 2.0**ev, 0, 1) ** (1 / 2.2)
        cv2.imwrite(str(folder / f"{i}.tif"), np.round(pixels[..., ::-1] * 65535).astype(np.uint16))
    (folder / "exposure.txt").write_text("0\n2\n4\n")
    cv2.imwrite(str(folder / "HDRImg.hdr"), np.ascontiguousarray((scene * gt_scale)[..., ::-1], np.float32))


def test_eval_warns_on_scale_and_aligns(tmp_path):
    kalantari_scene(tmp_path / "data" / "001", gt_scale=8.0)
    plain = cli("eval", "-b", "debevec", "--data", tmp_path / "data", "--json")
    assert plain.exit_code == 0, plain.output
    assert "warning" in plain.output and "--scale-align" in plain.output
    report = json.loads(plain.output[plain.output.index("{"):])
    assert report["scale_align"] == "none" and "shortest exposure" in report["convention"]
    scene = report["scenes"][0]
    assert scene["scale"] == pytest.approx(8.0, rel=0.15)
    aligned = cli("eval", "-b", "debevec", "--data", tmp_path / "data", "--json", "--scale-align", "median")
    assert aligned.exit_code == 0 and "warning" not in aligned.output
    after = json.loads(aligned.output[aligned.output.index("{"):])["scenes"][0]
    assert after["scale_align"] == "median" and after["psnr_mu"] > scene["psnr_mu"] + 5
    assert cli("eval", "-b", "debevec", "--data", tmp_path / "data", "--scale-align", "bogus").exit_code == 1


def test_eval_simulated_scene_names_name_the_map(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    for name, seed in (("alpha_street", 11), ("beta_room", 12)):
        cv2.imwrite(str(maps / f"{name}.hdr"), np.ascontiguousarray(radiance_scene(300, 600, seed=seed, stops=10)))
    result = cli("eval", "-b", "debevec", "--data", maps, "--limit", "1", "--json")
    assert result.exit_code == 0, result.output
    name = json.loads(result.output[result.output.index("{"):])["scenes"][0]["scene"]
    assert re.fullmatch(r"sim000-beta_room-(static|motion)", name)  # the held-out map (split_maps)


# ----------------------------------------------------------------------------- expand summary

def test_expand_prints_timings_and_dynamic_range(tmp_path):
    photo = tmp_path / "photo.png"
    pixels = np.clip(textured_scene(64, 96, seed=13, stops=6) * 2.5, 0, 1) ** (1 / 2.2)
    cv2.imwrite(str(photo), np.round(pixels[..., ::-1] * 255).astype(np.uint8))
    result = cli("expand", photo, "-o", tmp_path / "x.exr", columns=200)
    assert result.exit_code == 0, result.output
    assert "dynamic range:" in result.output and "time: read" in result.output and "network" in result.output
