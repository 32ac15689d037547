"""The learned architectures: shapes, gradients, DO-Conv folding, parameter counts, synthesis layer, losses."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from hdrcli.models import (
    count_parameters,
    create_model,
    exposure_input,
    fold_do_convs,
    get_spec,
    hdr_synthesis,
    list_models,
    parameter_count,
    solve_stack_response,
)
from hdrcli.models.blocks import DOConv2d
from hdrcli.models.registry import example_input
from hdrcli.training.losses import (
    GravitatedLatentSpaceLoss,
    ciede2000,
    color_loss_ciede2000,
    highlight_log_l1,
    disentangle_loss,
    mu_law_l1,
    ssim,
)

NAMES = ["dfgnet", "lffnet", "tunet", "twostage", "stack"]


def test_registry_lists_all_five():
    specs = {s.name: s for s in list_models()}
    assert list(specs) == NAMES
    assert {s.kind for s in specs.values()} == {"multi-exposure", "single-image"}
    for spec in specs.values():
        assert {"paper", "lite"} <= set(spec.configs)


@pytest.mark.parametrize("name", NAMES)
def test_odd_size_output_shape(name):
    torch.manual_seed(0)
    model = create_model(name, "lite").eval()
    x = example_input(get_spec(name), 97, 131)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 97, 131)
    assert torch.isfinite(y).all() and (y >= 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    spec = get_spec(name)
    model = create_model(name, "lite")
    x = example_input(spec, 32, 48, batch=2)
    target = torch.rand(2, 3, 32, 48)
    loss = mu_law_l1(model(x), target)
    if name == "dfgnet":  # its disentangle network is trained with its own losses
        loss = loss + disentangle_loss(model.disentangle, x[:, :, :3], torch.tensor([[1.0, 4.0, 16.0]] * 2), target)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing


def _bracket(radiance: torch.Tensor, times: list[float]) -> torch.Tensor:
    """Exposure input of a gamma-2.2 camera seeing ``radiance`` (B, 3, H, W) at ``times``."""
    ldr = torch.stack([(radiance * t).clamp(0, 1) ** (1 / 2.2) for t in times], 1)
    return exposure_input(ldr, torch.tensor(times))


def test_merge_head_is_the_frames_debevec_merge_where_they_agree():
    from hdrcli.merge.classical import EXPOSURE_WEIGHT_POWER, SHADOW_WEIGHT_POWER, debevec_weight
    from hdrcli.models.blocks import ExposureMergeHead

    torch.manual_seed(0)
    times = [1.0, 4.0, 16.0]
    radiance = torch.rand(1, 3, 24, 32) * 0.14 + 0.01  # static scene, well exposed in the reference
    x = _bracket(radiance, times)
    synthesis = torch.rand(1, 3, 24, 32)  # whatever the network says
    head = ExposureMergeHead()
    with torch.no_grad():
        weights, alpha = head.maps(synthesis, x, 1)
        out = head(synthesis, x, 1)
    ldr = x[0, :, :3].permute(0, 2, 3, 1).numpy()
    expected_w = np.stack([debevec_weight(ldr[i], i, np.array(times))[..., 0] for i in range(3)])
    # ... with the shot-noise power (t / t_max) ** SHADOW_WEIGHT_POWER on a frame's dark pixels
    shadow = np.clip((0.5 - ldr.max(-1)) / 0.25, 0.0, 1.0)
    relative = (np.array(times) / max(times))[:, None, None]
    expected_w *= relative ** ((SHADOW_WEIGHT_POWER - EXPOSURE_WEIGHT_POWER) * shadow)
    expected_w /= expected_w.sum(0)
    well = (alpha[0, 0] < 1e-6).numpy()
    assert well.mean() > 0.9  # a consistent well-exposed frame exists almost everywhere
    close = np.abs(weights[0].numpy()[:, well] - expected_w[:, well]).max(0)
    assert (close < 5e-3).mean() > 0.99 and close.max() < 0.02  # pixels beside a clipped one may differ a little
    merged = (torch.from_numpy(expected_w)[:, None] * x[0, :, 3:6]).sum(0)
    assert (out[0][:, torch.from_numpy(well)] - merged[:, torch.from_numpy(well)]).abs().max() < 0.02
    # the longest unclipped frame dominates the shadows
    assert (weights[0, 2][radiance[0].amax(0) < 0.03] > 0.5).all()


def test_merge_head_uses_the_synthesis_only_where_no_frame_sees():
    from hdrcli.models.blocks import ExposureMergeHead

    head = ExposureMergeHead().requires_grad_(False)
    radiance = torch.full((1, 3, 16, 16), 0.05)
    radiance[..., :8] = 4.0  # clipped in every frame (1 = the shortest frame's clipping)
    x = _bracket(radiance, [1.0, 4.0, 16.0])
    synthesis = torch.full((1, 3, 16, 16), 0.7)
    weights, alpha = head.maps(synthesis, x, 1)
    assert torch.allclose(weights.sum(1, keepdim=True) + alpha, torch.ones_like(alpha))
    # Clipped everywhere: the shortest frame's clipped value is the bracket's bound, not a synthesis.
    assert (alpha < 0.01).all()
    assert torch.allclose(head(synthesis, x, 1)[..., :6], torch.ones(1, 3, 16, 6), atol=3e-3)
    # A gate that trusts no frame where the reference cannot test them: the synthesis fills
    # exactly the pixels the reference does not show; the reference's own pixels stay frames.
    head.gate[-1].bias.fill_(-30.0)
    radiance = torch.full((1, 3, 16, 16), 0.05)
    radiance[..., :8] = 0.5  # clipped in the reference and the long frame, well exposed in the short one
    x = _bracket(radiance, [1.0, 4.0, 16.0])
    weights, alpha = head.maps(synthesis, x, 1)
    assert (alpha[..., :5] > 0.99).all() and (alpha[..., 11:] < 0.01).all()
    assert torch.allclose(head(synthesis, x, 1)[..., :5], synthesis[..., :5], atol=1e-2)


@pytest.mark.parametrize("reference", [0, 1, 2])
def test_merge_head_gate_only_where_it_counts_equals_everywhere(monkeypatch, reference):
    """The gate runs on the other frames over the box where the reference is clipped or crushed;
    the traced (ONNX) graph runs it everywhere: same maps."""
    from hdrcli.models.blocks import ExposureMergeHead

    torch.manual_seed(0)
    head = ExposureMergeHead().requires_grad_(False)
    for layer in head.gate[::2]:
        torch.nn.init.normal_(layer.weight, std=0.3)
    radiance = torch.rand(1, 3, 40, 48) * 0.1
    radiance[..., 10:16, 30:37] = 6.0  # a light clipped in the reference and in the long frame
    x = _bracket(radiance, [1.0, 4.0, 16.0])
    synthesis = torch.rand(1, 3, 40, 48)
    boxed = head.maps(synthesis, x, reference)
    monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
    everywhere = head.maps(synthesis, x, reference)
    for a, b in zip(boxed, everywhere):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    head.gate[-1].bias.fill_(-30.0)  # the gate matters here: a gate trusting no frame changes the maps
    assert not torch.allclose(head.maps(synthesis, x, reference)[0], everywhere[0], atol=1e-3)


def test_merge_head_weighs_the_frames_as_recorded():
    """``codes`` (the frames before the re-encoding to gamma 2.2) set the hat and shadow weights."""
    from hdrcli.models.blocks import ExposureMergeHead

    head = ExposureMergeHead().requires_grad_(False)
    radiance = torch.linspace(0.002, 0.3, 24 * 24).reshape(1, 1, 24, 24).expand(1, 3, 24, 24).contiguous()
    x = _bracket(radiance, [1.0, 4.0, 16.0])
    synthesis = torch.full((1, 3, 24, 24), 0.1)
    default = head.maps(synthesis, x, 1)
    same = head.maps(synthesis, x, 1, codes=x[:, :, :3])
    for a, b in zip(default, same):
        torch.testing.assert_close(a, b)
    # A camera whose curve records these tones brighter than gamma 2.2 (iPhone-like): its dark
    # mid-tones are not shadows, so the long frame no longer takes them from the reference.
    brighter = head.maps(synthesis, x, 1, codes=x[:, :, :3] ** 0.5)
    dark = (x[0, 1, 0] > 0.1) & (x[0, 1, 0] < 0.4)  # re-encoded reference codes in the shadow ramp
    assert (brighter[0][0, 1][dark] > default[0][0, 1][dark] + 0.05).all()
    assert (brighter[0][0, 2][dark] < default[0][0, 2][dark]).all()


def test_merge_head_drops_a_ghosted_frame():
    from hdrcli.models.blocks import ExposureMergeHead

    head = ExposureMergeHead().requires_grad_(False)
    radiance = torch.full((1, 3, 32, 32), 0.04)
    x = _bracket(radiance, [1.0, 4.0, 16.0])
    moved = torch.full((1, 3, 32, 32), 0.04)
    moved[..., 8:24, 8:24] = 0.004  # a dark object in the long frame only
    x[:, 2] = _bracket(moved, [1.0, 4.0, 16.0])[:, 2]
    weights, _ = head.maps(torch.full((1, 3, 32, 32), 0.04), x, 1)
    assert (weights[0, 2, 12:20, 12:20] < 0.02).all()  # ghost: the long frame is not used
    assert (weights[0, 2, :3, :3] > 0.3).all()  # elsewhere it is (the longest, cleanest frame)


@pytest.mark.parametrize("name", ["lffnet", "dfgnet", "tunet"])
def test_bracket_networks_take_any_number_of_frames(name):
    torch.manual_seed(0)
    model = create_model(name, "lite").eval()
    for n, reference in [(2, 0), (2, 1), (3, None), (5, 0), (7, 3), (9, 8)]:
        x = _bracket(torch.rand(1, 3, 20, 28), [2.0**i for i in range(n)])
        with torch.no_grad():
            out = model(x, reference)
            maps = model(x, reference, return_maps=True)
        assert out.shape == (1, 3, 20, 28) and maps.shape == (1, 3 + n + 1, 20, 28)
        assert torch.allclose(maps[:, :3], out, atol=1e-5)
        assert torch.allclose(maps[:, 3:].sum(1), torch.ones(1, 20, 28), atol=1e-5)
    # the frames on one side of the reference are aggregated without regard to their order
    x = _bracket(torch.rand(1, 3, 20, 28), [1.0, 2.0, 8.0, 16.0, 32.0])
    swapped = x[:, [1, 0, 2, 4, 3]]
    with torch.no_grad():
        assert torch.allclose(model.synthesize(x, 2), model.synthesize(swapped, 2), atol=1e-5)
    # lite models merge the frames; paper configs keep the papers' direct output
    assert model.merge_head is not None and create_model(name, "paper").merge_head is None


def test_do_conv_fold_matches():
    torch.manual_seed(0)
    layer = DOConv2d(5, 7, 3, 1)
    with torch.no_grad():
        layer.depthwise.normal_(0, 0.3)  # away from the identity initialisation
    x = torch.randn(2, 5, 13, 17)
    torch.testing.assert_close(layer.fold()(x), layer(x), rtol=1e-5, atol=1e-5)
    model = create_model("lffnet", "paper").eval()
    for m in model.modules():
        if isinstance(m, DOConv2d):
            with torch.no_grad():
                m.depthwise.normal_(0, 0.1)
    bracket = example_input(get_spec("lffnet"), 40, 56)
    with torch.no_grad():
        before = model(bracket)
        after = fold_do_convs(model)(bracket)
    assert not any(isinstance(m, DOConv2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_paper_parameter_counts():
    # LFFNet, paper Table 2: 1,069,315 with DO-Conv (training) and 1,038,211 without.
    assert parameter_count("lffnet", "paper") == 1_069_315
    assert count_parameters(fold_do_convs(create_model("lffnet", "paper"))) == 1_038_211
    # Two-stage network: 834,476 stated; within 5%.
    assert abs(parameter_count("twostage", "paper") - 834_476) / 834_476 < 0.05
    for name in NAMES:
        spec = get_spec(name)
        for size, stated in spec.stated_params.items():
            assert abs(parameter_count(name, size) - stated) / stated < 0.05


def test_exposure_input_convention():
    ldr = torch.full((1, 3, 3, 2, 2), 0.5)
    x = exposure_input(ldr, torch.tensor([0.25, 1.0, 4.0]))
    assert x.shape == (1, 3, 6, 2, 2)
    torch.testing.assert_close(x[0, :, 3, 0, 0], torch.tensor([0.5**2.2, 0.5**2.2 / 4, 0.5**2.2 / 16]))


def test_stack_model_returns_its_stack():
    model = create_model("stack", "lite").eval()
    with torch.no_grad():
        hdr, stack, evs = model(torch.rand(1, 3, 40, 52), return_stack=True)
    assert stack.shape == (1, 5, 3, 40, 52) and evs.tolist() == [-2, -1, 0, 1, 2]
    assert hdr.shape == (1, 3, 40, 52)


# ----------------------------------------------------------------------------- synthesis layer

def _frobisher_stack():
    from tests.conftest import shared_path

    paths = sorted(shared_path("brackets", "frobisher").glob("*.jpg"))
    from hdrcli.io import read_frames

    frames = read_frames(paths)
    return frames, np.float32([1 / 8, 1.0, 8.0])


def test_synthesis_layer_matches_opencv_debevec():
    from hdrcli.merge import calibrate_response

    frames, times = _frobisher_stack()
    u8 = [f.as_uint8() for f in frames]
    response = calibrate_response(u8, times)
    theirs = cv2.createMergeDebevec().process(u8, times, response.reshape(256, 1, 3).copy())
    stack = torch.tensor(np.stack([f.pixels for f in frames])).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    ours = hdr_synthesis(stack, torch.tensor(np.log2(times)), torch.tensor(np.log(response.T)))
    # Same response, same weights: agreement to float32 rounding (max relative 1e-4) wherever a
    # frame has weight; a pixel clipped in every frame takes the shortest frame's value.
    codes = np.stack([f.astype(np.float32) for f in u8])
    weighted = np.minimum(codes, 255 - codes).mean(-1).max(0) > 0
    ours_np = ours.detach().permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours_np[weighted], theirs[weighted], rtol=1e-4)
    clipped = (codes.mean(-1).min(0) >= 255)
    if clipped.any():  # the shortest frame's clipping level: 1 / t_min in the response's units
        level = np.exp(np.log(response[255]) - np.log(times.min()))
        np.testing.assert_allclose(ours_np[clipped], np.broadcast_to(level, ours_np[clipped].shape), rtol=1e-4)
    ours.mean().backward()
    for j in range(3):
        assert torch.count_nonzero(stack.grad[j]) > 0.99 * stack.grad[j].numel(), f"frame {j} gets no gradient"


def test_synthesis_of_a_light_clipped_in_every_frame_is_at_least_the_shortest_frames_level():
    stack = torch.full((3, 3, 4, 4), 0.5)
    stack[:, :, 0, 0] = 1.0  # clipped in every frame
    stack[:, :, 1, 1] = 0.0  # black in every frame
    evs = torch.tensor([-2.0, 0.0, 2.0])
    g = torch.log(torch.linspace(1e-3, 1.0, 256)).expand(3, 256).contiguous()
    g[:, 255] = 0.0
    hdr = hdr_synthesis(stack, evs, g)
    assert torch.allclose(hdr[:, 0, 0], torch.full((3,), 4.0), rtol=1e-4)  # 2**2: the -2 EV frame's clipping level
    assert torch.allclose(hdr[:, 1, 1], torch.exp(g[:, 0]) / 4, rtol=1e-4)  # the +2 EV frame's black


def test_stack_model_exposures_are_ordered_pixel_by_pixel():
    model = create_model("stack", "lite").eval()
    with torch.no_grad():
        stack, evs, _ = model.generate_stack(torch.rand(1, 3, 32, 32))
    assert torch.all(stack[:, 1:] >= stack[:, :-1])  # a longer exposure is never darker


def test_synthesis_layer_solves_its_own_response():
    frames, times = _frobisher_stack()
    stack = torch.tensor(np.stack([f.pixels for f in frames])).permute(0, 3, 1, 2).contiguous()
    g = solve_stack_response(stack, torch.tensor(np.log2(times)))
    assert g.shape == (3, 256) and torch.all(torch.diff(g, dim=1) >= 0) and torch.allclose(g[:, 255], torch.zeros(3))
    hdr = hdr_synthesis(stack, torch.tensor(np.log2(times)))
    assert torch.isfinite(hdr).all()
    # Radiance ratios follow the exposure ratios: the mid-grey pixels of the 1 s frame
    # map to about the same radiance as their counterparts in the 1/8 s frame.
    ref = stack[1].mean(0)
    mid = (ref > 0.3) & (ref < 0.7)
    assert hdr.mean(0)[mid].median() > 0


def test_synthesis_on_synthetic_gamma_stack():
    torch.manual_seed(0)
    radiance = torch.rand(3, 40, 60) ** 3 * 4
    evs = torch.tensor([-2.0, 0.0, 2.0])
    stack = torch.stack([((radiance * 2**e).clamp(0, 1) ** (1 / 2.2) * 255).round() / 255 for e in evs])
    hdr = hdr_synthesis(stack, evs)
    ok = (radiance * 4 > 0.05) & (radiance / 4 < 0.9)
    ratio = hdr[ok] / radiance[ok]
    assert (ratio / ratio.median() - 1).abs().median() < 0.05


# ----------------------------------------------------------------------------- losses

@pytest.mark.parametrize(
    "lab1, lab2, expected",
    [  # Sharma, Wu & Dalal (2005) test data, pairs 1, 7, 17, 25
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ],
)
def test_ciede2000_reference_values(lab1, lab2, expected):
    d = ciede2000(torch.tensor(lab1).view(1, 3, 1, 1), torch.tensor(lab2).view(1, 3, 1, 1))
    assert d.item() == pytest.approx(expected, abs=1e-3)


def test_highlight_loss_weighs_only_clipped_pixels_in_log_terms():
    ldr = torch.full((1, 3, 8, 8), 0.5)
    ldr[..., :2, :2] = 1.0  # a clipped light
    target = torch.full((1, 3, 8, 8), 0.2)
    target[..., :2, :2] = 20.0
    assert highlight_log_l1(target, target, ldr) < 1e-6
    flat = target.clone()
    flat[..., :2, :2] = 1.2  # the flat "just above clipping" guess
    assert abs(float(highlight_log_l1(flat, target, ldr)) - math.log(20.0 / 1.2)) < 1e-2
    wrong_elsewhere = target.clone()
    wrong_elsewhere[..., 4:, 4:] = 5.0  # unclipped pixels are the mu-law losses' business
    assert highlight_log_l1(wrong_elsewhere, target, ldr) < 1e-6
    assert highlight_log_l1(target, target, torch.full((1, 3, 8, 8), 0.5)) == 0  # nothing clipped
    pred = flat.clone().requires_grad_(True)
    highlight_log_l1(pred, target, ldr).backward()
    assert pred.grad[..., :2, :2].lt(0).all()  # pushes the light up


def test_ciede2000_loss_is_differentiable():
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    color_loss_ciede2000(x, torch.rand(1, 3, 8, 8)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grey = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)  # hue undefined
    color_loss_ciede2000(grey, torch.full((1, 3, 4, 4), 0.5)).backward()
    assert torch.isfinite(grey.grad).all()


def test_gravitated_loss_is_a_distance():
    torch.manual_seed(0)
    loss = GravitatedLatentSpaceLoss()
    with torch.no_grad():
        loss.g.copy_(torch.tensor([1.5, -0.7, 2.0, -1.0]))
    y = torch.rand(2, 3, 16, 16)
    assert loss(y, y).item() == 0.0
    for _ in range(5):
        x = y + 0.05 * torch.randn_like(y)
        assert loss(x, y).item() > 0
    m = loss.metric()
    assert torch.det(m).item() == pytest.approx(1.0, rel=1e-5) and torch.all(torch.linalg.eigvalsh(m) > 0)
    x = (y + 0.1).requires_grad_(True)
    loss(x, y).backward()
    assert loss.g.grad is not None and loss.g.grad.abs().sum() > 0


def test_ssim_identity_and_unrelated_images():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 32, 32)
    assert ssim(x, x).item() == pytest.approx(1.0)
    assert ssim(x, torch.rand(1, 1, 32, 32)).item() < 0.2
