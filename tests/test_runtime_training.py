"""Metrics against scikit-image, tiled inference, the camera simulator, `hdr train`/`hdr eval`, weights manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hdrcli.metrics import hdr_scores, mu_law, psnr, ssim
from hdrcli.models import create_model
from hdrcli.runtime.tiling import BilinearUpsampled, run_tiled, tile_weights
from hdrcli.training.camera import CameraSimulator, split_maps, validation_brackets
from tests.conftest import ROOT, textured_scene


def test_metrics_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((48, 64, 3)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)
    theirs = structural_similarity(a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False)
    assert ssim(a, b) == pytest.approx(theirs, abs=1e-6)


def test_hdr_scores_by_hand():
    target = np.full((16, 16, 3), 0.25)
    pred = np.full((16, 16, 3), 0.5)
    scores = hdr_scores(pred, target)
    t = np.log1p(5000 * np.array([0.25, 0.5])) / np.log1p(5000)
    assert scores["psnr_l"] == pytest.approx(10 * np.log10(1 / 0.25**2))
    assert scores["psnr_mu"] == pytest.approx(10 * np.log10(1 / (t[1] - t[0]) ** 2))
    assert mu_law(np.array([2.0]))[0] == 1.0  # clipped to [0, 1]


def test_tile_weights_and_tiled_equals_whole():
    w = tile_weights(64, 80, 16)
    assert w.shape == (64, 80) and w.min() > 0 and w[32, 40] == 1
    torch.manual_seed(0)
    model = create_model("twostage", "lite").eval()
    x = torch.rand(1, 3, 150, 210)
    with torch.no_grad():
        whole = model(x)
        tiled = run_tiled(model, x, tile=96, overlap=32)  # (H, W, 3) numpy
    whole = whole[0].permute(1, 2, 0).numpy()
    difference = np.abs(np.log1p(5000 * np.clip(tiled / 64, 0, 1)) - np.log1p(5000 * np.clip(whole / 64, 0, 1)))
    assert difference.max() / np.log1p(5000) < 0.02


@pytest.mark.parametrize("small,size", [((5, 7), (13, 29)), ((41, 61), (98, 150)), ((20, 20), (20, 20))])
def test_bilinear_upsampled_crops_equal_the_upsampled_image(small, size):
    """Lazy upsampling (the large-photo synthesis and gate maps): every crop equals the same crop
    of F.interpolate's bilinear output (numpy, no torch), and run_tiled takes it like an array."""
    torch.manual_seed(1)
    low = torch.rand(1, 3, *small)
    full = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False).numpy()
    up = BilinearUpsampled(low.numpy(), size)
    assert up.shape == (1, 3, *size)
    for rows, cols in ((slice(0, size[0]), slice(0, size[1])), (slice(3, size[0] - 1), slice(size[1] // 2, size[1]))):
        np.testing.assert_allclose(up[..., rows, cols], full[..., rows, cols], atol=1e-5, rtol=0)
    tiled = run_tiled(lambda t: t[0] * 2, (up,), tile=8, overlap=0)
    np.testing.assert_allclose(tiled, full[0].transpose(1, 2, 0) * 2, atol=1e-5, rtol=0)


def _write_maps(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        scene = textured_scene(96, 128, seed=i, stops=12) * 50
        cv2.imwrite(str(folder / f"map{i}.hdr"), scene[..., ::-1].astype(np.float32))


def test_camera_simulator_brackets(tmp_path):
    _write_maps(tmp_path / "maps", 4)
    train, val = split_maps(sorted((tmp_path / "maps").glob("*.hdr")), every=4)
    assert len(val) == 1 and not set(val) & set(train)
    sim = CameraSimulator(train, patch=48)
    rng = np.random.default_rng(0)
    sample = sim.legacy_bracket(rng, motion=True)
    assert sample.ldr.shape == (3, 48, 48, 3) and sample.hdr.shape == (48, 48, 3)
    assert sample.exposures[0] == 1 and sample.exposures[1] in (4.0, 8.0)
    assert 0 <= sample.hdr.min() and sample.hdr.max() <= 1
    assert np.all(np.diff([f.mean() for f in sample.ldr]) > 0)  # brighter with exposure
    codes = sample.ldr * 255
    assert np.allclose(codes, np.round(codes), atol=1e-3)  # 8-bit quantised
    single = sim.single(rng)
    assert single.stack.shape == (5, 48, 48, 3) and single.hdr.shape == (48, 48, 3)
    first = validation_brackets(CameraSimulator(val, patch=48), per_map=2)
    again = validation_brackets(CameraSimulator(val, patch=48), per_map=2)
    assert [s.motion for s in first] == [False, True]
    np.testing.assert_array_equal(first[1].ldr, again[1].ldr)  # deterministic validation set


def test_hdr_train_and_eval_smoke(tmp_path):
    from tests.test_cli import hdr

    maps = tmp_path / "maps"
    _write_maps(maps, 3)
    r = hdr("train", "--backend", "lffnet", "--data", maps, "--steps", "3", "--batch", "2", "--patch", "32",
            "--val-every", "3", "--run-dir", tmp_path / "runs", "--no-export")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["steps_done"] == 3 and "psnr_mu" in summary["validation"]
    checkpoint = tmp_path / "runs" / "lffnet-lite" / "last.pt"
    assert checkpoint.is_file()
    r = hdr("train", "--backend", "lffnet", "--data", maps, "--steps", "5", "--batch", "2", "--patch", "32",
            "--val-every", "5", "--run-dir", tmp_path / "runs", "--no-export", "--resume", checkpoint)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout[r.stdout.index("{"):])["steps_done"] == 5
    # Fine-tuning: weights from a file, fresh schedule, the earlier history kept.
    r = hdr("train", "--backend", "lffnet", "--data", maps, "--steps", "2", "--batch", "2", "--patch", "32",
            "--val-every", "2", "--run-dir", tmp_path / "tuned", "--no-export", "--init", checkpoint)
    assert r.returncode == 0, r.stderr
    from hdrcli.weights import load_state

    tuned = load_state(tmp_path / "tuned" / "lffnet-lite" / "last.pt")  # checkpoints load with weights_only=True
    assert tuned["step"] == 2 and tuned["initialised_from"]["steps"] == 5
    assert len(tuned["commands"]) == 3 and "--init" in tuned["commands"][-1]
    r = hdr("eval", "--backend", "debevec", "--data", maps, "--json", "--limit", "2")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert len(result["scenes"]) == 2 and result["mean"]["psnr_mu"] > 10


def test_init_from_three_frame_weights_with_the_old_blend_head(tmp_path):
    from hdrcli.errors import HdrError
    from hdrcli.training.trainer import TrainConfig, _initialise

    old = tmp_path / "three.pt"  # a lite model saved before the N-frame merge head: blend.* instead
    state = {k: v for k, v in create_model("lffnet", "lite").state_dict().items() if not k.startswith("merge_head.")}
    state["blend.logits.weight"] = torch.zeros(4, 16, 3, 3)
    state["blend.logits.bias"] = torch.zeros(4)
    torch.save({"model": state}, old)
    model = create_model("lffnet", "lite")
    cfg = TrainConfig(backend="lffnet", init=str(old))
    _initialise(cfg, model)
    assert torch.equal(model.out.weight, state["out.weight"])
    assert cfg.initialised_from["file"] == "three.pt"
    wrong = tmp_path / "wrong.pt"  # any other missing parameter is a wrong file
    state = create_model("lffnet", "lite").state_dict()
    del state["merge.weight"]
    torch.save({"model": state}, wrong)
    with pytest.raises(HdrError, match="missing 1"):
        _initialise(TrainConfig(backend="lffnet", init=str(wrong)), create_model("lffnet", "lite"))


def test_dfgnet_fine_tune_skips_the_disentangle_pretraining():
    from hdrcli.training.objectives import Objective

    model = create_model("dfgnet", "lite")
    assert Objective("dfgnet", model, 100).phase(0) == "disentangle"
    assert Objective("dfgnet", model, 100, pretrained=True).phase(0) == "main"


def test_eval_bad_inputs(tmp_path):
    from tests.test_cli import hdr

    (tmp_path / "empty").mkdir()
    r = hdr("eval", "--backend", "debevec", "--data", tmp_path / "empty")
    assert r.returncode != 0 and "neither Kalantari" in r.stderr and "Traceback" not in r.stderr
    scene = tmp_path / "set" / "001"
    scene.mkdir(parents=True)
    (scene / "exposure.txt").write_text("0\n2\n4\n")
    r = hdr("eval", "--backend", "debevec", "--data", tmp_path / "set")
    assert r.returncode != 0 and "HDRImg.hdr" in r.stderr


def test_saturation_ratio_measures_colour_not_brightness():
    from hdrcli.metrics import saturation_ratio

    rng = np.random.default_rng(3)
    truth = rng.uniform(0.05, 0.9, (32, 32, 3)).astype(np.float32)
    assert saturation_ratio(truth, truth) == pytest.approx(1.0)
    assert saturation_ratio(truth * 0.5, truth) == pytest.approx(1.0)  # brightness does not count
    grey = np.repeat(truth.mean(-1, keepdims=True), 3, -1)
    assert saturation_ratio(grey, truth) == pytest.approx(0.0)
    halfway = 0.5 * truth + 0.5 * grey
    assert 0.3 < saturation_ratio(halfway, truth) < 0.7
    assert np.isnan(saturation_ratio(truth, grey))  # no coloured pixel in the truth


def test_weights_manifest_matches_files():
    manifest = ROOT / "weights" / "manifest.json"
    if not manifest.is_file():
        pytest.skip("no weights shipped yet")
    entries = json.loads(manifest.read_text())["weights"]
    for name, entry in entries.items():
        path = ROOT / "weights" / name
        assert path.is_file(), name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], name
        if entry.get("format") == "onnx":
            source = ROOT / "weights" / entry["exported_from"]["file"]
            assert hashlib.sha256(source.read_bytes()).hexdigest() == entry["exported_from"]["sha256"], name
            continue
        for key in ("backend", "size", "command", "data", "steps", "wall_time_s", "hardware", "validation", "status",
                    "quality_vs_targets"):
            assert key in entry, (name, key)
        model = create_model(entry["backend"], entry["size"], pretrained=True)  # loads with weights_only=True
        assert sum(p.numel() for p in model.parameters()) > 0


def test_manifest_verdicts_follow_the_measured_scores(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from annotate_manifest import annotate

    debevec = {"psnr_mu_motion": 20.0, "psnr_mu_static": 30.0, "scenes": 4}
    results = {
        "multi_exposure": {"reference": debevec, "opencv-debevec-mtb": debevec, "self-calibrated-debevec": debevec,
                           "good": {"psnr_mu_motion": 25.5, "psnr_mu_static": 30.1},
                           "weak": {"psnr_mu_motion": 24.0, "psnr_mu_static": 31.0}},
        "single_image": {"inverse-gamma": {"psnr_mu": 20.0}, "expander": {"psnr_mu": 19.5}},
    }
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"weights": {
        f"{name}-lite.pt": {"backend": name} for name in ("good", "weak", "expander")} | {
        "good-lite-t256.onnx": {"backend": "good", "format": "onnx"}}}))
    verdicts = annotate(results, manifest, "test")
    assert verdicts["good"].startswith("meets both targets") and "+5.50 dB" in verdicts["good"]
    assert verdicts["weak"].startswith("falls short") and "+4.00 dB" in verdicts["weak"] and "+1.00 dB" in verdicts["weak"]
    assert verdicts["expander"].startswith("falls short") and "-0.50 dB" in verdicts["expander"]
    assert "self-calibrated-debevec" not in verdicts and "reference" not in verdicts  # baselines get no verdict
    written = json.loads(manifest.read_text())["weights"]
    assert written["weak-lite.pt"]["quality_vs_targets"].endswith("(test)")
    assert "quality_vs_targets" not in written["good-lite-t256.onnx"]


def _kalantari_dataset(root: Path, scenes: int = 2) -> Path:
    for i in range(scenes):
        folder = root / "Test" / f"{i + 1:03d}"
        folder.mkdir(parents=True)
        radiance = textured_scene(64, 80, seed=i, stops=10) * 2
        for j, ev in enumerate((0, 2, 4)):
            ldr = np.clip(radiance * 2.0**ev, 0, 1) ** (1 / 2.2)
            cv2.imwrite(str(folder / f"{j}.tif"), np.round(ldr[..., ::-1] * 65535).astype(np.uint16))
        (folder / "exposure.txt").write_text("0\n2\n4\n")
        cv2.imwrite(str(folder / "HDRImg.hdr"), np.clip(radiance, 0, 1)[..., ::-1].astype(np.float32))
    return root


def test_kalantari_train_and_eval(tmp_path):
    from tests.test_cli import hdr

    data = _kalantari_dataset(tmp_path / "kalantari")
    r = hdr("train", "--backend", "lffnet", "--data", data, "--steps", "2", "--batch", "2", "--patch", "32",
            "--run-dir", tmp_path / "runs", "--no-export")
    assert r.returncode == 0, r.stderr
    assert "Kalantari-layout" in json.loads(r.stdout[r.stdout.index("{"):])["data"]
    r = hdr("eval", "--backend", "debevec", "--data", data, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert [s["scene"] for s in result["scenes"]] == ["Test/001", "Test/002"]
    # Exact gamma renders of the ground truth; Debevec's calibrated curve is only
    # approximate on three small frames, so this checks sanity, not accuracy.
    assert result["mean"]["psnr_mu"] > 15 and result["mean"]["ssim_mu"] > 0.8


def test_learned_fuse_reencodes_frames_with_the_given_response():
    from hdrcli.merge import linear_response
    from hdrcli.runtime import TorchRunner
    from hdrcli.runtime.runner import available_sizes

    if not available_sizes("lffnet"):
        pytest.skip("no weights for lffnet")
    runner = TorchRunner("lffnet")
    scene = textured_scene(64, 96, seed=2, stops=8)
    times = [1.0, 4.0, 16.0]
    linear = [np.clip(scene * t, 0, 1).astype(np.float32) for t in times]
    gamma = np.repeat(((np.arange(256) / 255.0) ** 2.2)[:, None], 3, axis=1)
    from_raw = runner.fuse(linear, times, response=linear_response())
    from_gamma = runner.fuse([f ** (1 / 2.2) for f in linear], times, response=gamma)
    np.testing.assert_allclose(from_raw, from_gamma, atol=2e-3)
    # Self-calibrated on a gamma-2.2 bracket: close to the known-curve result.
    calibrated = runner.fuse([f ** (1 / 2.2) for f in linear], times)
    assert hdr_scores(calibrated, from_gamma)["psnr_mu"] > 30


def test_large_photos_are_predicted_whole_at_reduced_size(monkeypatch):
    """Above the whole-image budget a single-image network sees the photo downsized (once, whole:
    no tiles, no seams) and its prediction is upsampled to the photo's size."""
    import hdrcli.runtime.runner as runner
    from hdrcli.runtime.torch_runtime import TorchRunner

    model_runner = TorchRunner("twostage")
    monkeypatch.setattr(model_runner, "whole_image_pixels", 20_000)
    monkeypatch.setattr(runner, "LARGE_PHOTO_PREDICTION", 10_000)
    seen = []
    forward = model_runner._forward
    monkeypatch.setattr(model_runner, "_forward", lambda x, *a, **k: seen.append(x.shape) or forward(x, *a, **k))
    photo = np.clip(textured_scene(180, 240, stops=3) * 0.6, 0, 1).astype(np.float32)
    prediction = model_runner.predict(photo)
    assert prediction.shape == photo.shape and np.isfinite(prediction).all()
    assert len(seen) == 1 and seen[0][-2] * seen[0][-1] <= 12_000  # one pass on the downsized photo
