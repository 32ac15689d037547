"""Matrix-product FFTs (hdrcli.models.dft) against torch.fft, and FFTConv with them."""

from __future__ import annotations

import pytest
import torch

from hdrcli.models.blocks import FFTConv, matrix_dfts
from hdrcli.models.dft import irfft2, rfft2


def _per_frequency(real: torch.Tensor, imag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Nonlinear and not conjugate-symmetric: the inverse must read only the kept half, as irfft2 does.
    return torch.relu(0.7 * real - 0.2 * imag + 0.1), 0.3 * real + 0.9 * imag - 0.05


@pytest.mark.parametrize("h,w", [(384, 512), (48, 80), (17, 23), (32, 7), (6, 10), (1, 9), (96, 136), (64, 64)])
def test_matrix_fft_round_trip_equals_torch_fft(h, w):
    torch.manual_seed(0)
    x = torch.rand(2, 3, h, w) - 0.3
    real, imag, layout = rfft2(x)
    got = irfft2(*_per_frequency(real, imag), layout)
    spectrum = torch.fft.rfft2(x)
    expected = torch.fft.irfft2(torch.complex(*_per_frequency(spectrum.real, spectrum.imag)), s=(h, w))
    scale = expected.abs().max()
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 2e-6 * scale
    # The permuted order keeps the zero frequency first: the sum of the image.
    assert torch.allclose(real[..., 0, 0], x.sum(dim=(-2, -1)), rtol=1e-4, atol=1e-4)
    assert torch.allclose(irfft2(real, imag, layout), x, atol=2e-6 * x.abs().max() * max(h, w))


def test_fftconv_with_matrix_dfts_equals_torch_fft():
    torch.manual_seed(1)
    layer = FFTConv(4).eval()
    x = torch.randn(1, 4, 40, 56)
    with torch.no_grad():
        expected = layer(x)
        with matrix_dfts(layer):
            got = layer(x)
        assert "matrix_dft" not in vars(layer)  # restored after the block
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
