"""ONNX export and ONNX Runtime parity with torch, per backend (random weights, small tiles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdrcli.models import create_model, fold_do_convs, get_spec
from hdrcli.models.registry import example_input
from hdrcli.runtime.export import export_model
from hdrcli.runtime.onnx_runtime import make_session

TILE = 64


@pytest.mark.parametrize("name", ["dfgnet", "lffnet", "tunet", "twostage", "stack"])
def test_onnx_runtime_matches_torch(tmp_path, name):
    torch.manual_seed(0)
    model = fold_do_convs(create_model(name, "lite")).eval()
    spec = get_spec(name)
    path = export_model(model, spec.kind, tmp_path / f"{name}.onnx", tile=TILE)
    session, provider = make_session(path, "cpu")
    assert provider == "CPUExecutionProvider"
    x = example_input(spec, TILE, TILE)
    feeds = {"input": x.numpy()}
    with torch.no_grad():
        if hasattr(model, "network_forward"):
            expected = model.network_forward(x)
        elif getattr(model, "merge_head", None) is not None:  # weights on the frames as recorded
            codes = x[:, :, :3] ** 0.7  # as a camera with another curve would have recorded them
            feeds["codes"] = codes.numpy()
            expected = model(x, codes=codes)
        else:
            expected = model(x)
    assert [i.name for i in session.get_inputs()] == list(feeds)
    got = session.run(None, feeds)[0]
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-3, atol=2e-4)


@pytest.mark.parametrize("name", ["lffnet", "tunet"])
def test_synthesis_export_takes_any_multiple_of_16(tmp_path, name):
    """One export of the reduced-resolution part runs every size (its FFTs are matrix products),
    equal to torch's FFT synthesis and gate."""
    from hdrcli.runtime.export import export_synthesis

    torch.manual_seed(0)
    model = fold_do_convs(create_model(name, "lite")).eval()
    path = export_synthesis(model, tmp_path / f"{name}-synthesis.onnx")
    session, _ = make_session(path, "cpu")
    spec = get_spec(name)
    for h, w in [(64, 96), (112, 80)]:
        x = example_input(spec, h, w)
        with torch.no_grad():
            synthesis = model.synthesize(x, 1)
            gate = model.merge_head.gate_confidence(synthesis, x, 1)
        got_synthesis, got_gate = session.run(None, {"input": x.numpy()})
        np.testing.assert_allclose(got_synthesis, synthesis.numpy(), rtol=1e-3, atol=2e-5)
        np.testing.assert_allclose(got_gate, gate.numpy(), rtol=1e-3, atol=2e-5)


@pytest.mark.parametrize("name", ["twostage", "stack"])
def test_whole_photo_export_takes_any_size_and_equals_torch(tmp_path, name):
    """The single-image whole-photo exports (what `hdr expand` runs on ONNX Runtime: twostage's
    output, the stack model's exposure stack) equal torch at sizes other than the example's, odd
    ones included, with the session options the runtime uses."""
    from hdrcli.runtime.export import export_whole
    from hdrcli.runtime.onnx_runtime import _pad_to_multiple

    torch.manual_seed(0)
    model = fold_do_convs(create_model(name, "lite")).eval()
    path = export_whole(model, tmp_path / f"{name}-whole.onnx")
    session, _ = make_session(path, "cpu", once=True, layout=False)
    multiple = getattr(model, "multiple", 1)  # the stack model pads itself: the runtime pads for its export
    for h, w in [(37, 91), (128, 64)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = model.network_forward(x) if hasattr(model, "network_forward") else model(x)
        got = session.run(None, {"input": _pad_to_multiple(x.numpy(), multiple)})[0][..., :h, :w]
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-3, atol=2e-4)


def test_head_export_takes_any_size_and_equals_the_torch_head(tmp_path):
    """The merge head export (per full-resolution tile of large photos) equals torch's head, with
    the frames' weights and the synthesis share, at sizes other than the example's."""
    from hdrcli.runtime.export import export_head

    torch.manual_seed(0)
    model = fold_do_convs(create_model("dfgnet", "lite")).eval()
    path = export_head(model, tmp_path / "dfgnet-head.onnx")
    session, _ = make_session(path, "cpu")
    spec = get_spec("dfgnet")
    t = torch.tensor([[1.0, 4.0, 16.0]])
    for h, w in [(40, 72), (256, 200)]:
        x = example_input(spec, h, w)
        codes = x[:, :, :3] ** 0.7
        synthesis, gate = torch.rand(1, 3, h, w), torch.rand(1, 3, h, w)
        with torch.no_grad():
            expected = model.gated_output(synthesis, gate, x, 1, True, codes, t)
        feeds = {"synthesis": synthesis, "gate": gate, "x": x, "codes": codes, "t": t}
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
        assert got.shape == (1, 7, h, w)
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=2e-5)
