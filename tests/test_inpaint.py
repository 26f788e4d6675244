import sys
from pathlib import Path

import pytest
import torch

import napari_iem.engine.inpaint as ip

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import naive_iem  # noqa: E402


def test_kernel_is_normalized_and_symmetric():
    k = ip.gaussian_kernel1d(11, 5.0)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(k, k.flip(0))
    assert k.argmax().item() == 5


@pytest.mark.parametrize("bad", [(10, 5.0), (0, 5.0), (11, 0.0), (11, float("nan"))])
def test_kernel_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        ip.gaussian_kernel1d(*bad)


@pytest.mark.parametrize("n", [5, 40, 130])
def test_band_matrix_is_two_zero_padded_passes(n):
    k = ip.gaussian_kernel1d(11, 5.0)
    t = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for o in range(-5, 6):
            if 0 <= i + o < n:
                t[i, i + o] = k[o + 5]
    assert torch.allclose(ip.band_matrix(n, k, 2), t @ t)


@pytest.mark.parametrize("shape", [(40, 52), (70, 150), (101, 67)])
@pytest.mark.parametrize("dense_max, block", [(10_000, 16), (0, 16), (0, 32)])
def test_filter_equals_the_naive_conv_passes(shape, dense_max, block, monkeypatch):
    """Dense and block-windowed filters both equal two vertical+horizontal 11-tap passes,
    whether the length is a multiple of the block or not."""
    x = torch.rand(2, 3, *shape)
    expected = naive_iem.blur(x, naive_iem.gaussian_1d())
    real = ip.axis_operator
    monkeypatch.setattr(ip, "axis_operator", lambda *a: real(*a, dense_max, block))
    filt = ip.GaussianFilter(shape)
    assert torch.allclose(filt(x), expected, atol=1e-6)


@pytest.mark.parametrize("shape, strip", [((70, 40), 16), ((9, 30), 4), ((23, 8, 9), 5)])
def test_strips_put_together_are_the_whole_filter(shape, strip):
    x = torch.rand(2, 3, *shape, dtype=torch.float64)
    whole = ip.GaussianFilter(shape, dtype=torch.float64)(x)
    filt = ip.GaussianFilter(shape, dtype=torch.float64, strip=strip)
    out = torch.empty_like(whole)
    assert len(filt.strips()) == -(-shape[0] // strip)
    for k, (lo, hi, rows) in enumerate(filt.strips()):
        out[:, :, rows] = filt.filter_strip(x[:, :, lo:hi], k)
    assert torch.allclose(out, whole, rtol=1e-12, atol=1e-15)


def test_short_axes_keep_the_dense_product_bit_for_bit():
    """The paper preset's 128x128 masks depend on it: the dense matrix, as built."""
    x = torch.rand(2, 8, 128, 128)
    m = ip.band_matrix(128, ip.gaussian_kernel1d(11, 5.0), 2).float()
    assert torch.equal(ip.GaussianFilter((128, 128))(x), (m @ x) @ m)


def test_filter_3d_is_separable_over_three_axes():
    x = torch.zeros(1, 1, 9, 9, 9)
    x[..., 4, 4, 4] = 1.0
    y = ip.GaussianFilter((9, 9, 9), 5, 1.0, 1)(x)[0, 0]
    k = ip.gaussian_kernel1d(5, 1.0)
    assert y[4, 4, 4].item() == pytest.approx(k[2].item() ** 3, rel=1e-5)
    assert torch.allclose(y, y.permute(2, 1, 0), atol=1e-7)  # isotropic


def test_far_from_visible_pixels_the_prediction_is_the_visible_mean():
    x = torch.rand(1, 2, 32, 96) * 2 - 1
    visible = torch.zeros(1, 1, 32, 96)
    visible[..., :8] = 1
    phi = ip.inpaint(x, visible, ip.GaussianFilter((32, 96)))
    far = phi[..., 60:]  # beyond the 21-pixel support: only the eps terms remain
    mean = x[..., :8].mean(dim=(2, 3))
    assert torch.isfinite(phi).all()
    assert torch.allclose(far.amax(dim=(2, 3)), far.amin(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(far[..., 0, 0], mean, atol=0.05)


def test_constant_visible_values_are_reproduced_everywhere():
    x = torch.full((1, 1, 30, 30), 0.3)
    visible = (torch.rand(1, 1, 30, 30) > 0.7).float()
    phi = ip.inpaint(x, visible, ip.GaussianFilter((30, 30)))
    assert torch.allclose(phi, x, atol=1e-5)


def test_a_window_far_outside_a_short_axis_is_zeros():
    """Rows and columns more than the axis's length before it (a crop's halo on an
    axis of 8 pixels with a reach of 10) are padding: zeros, not an index error."""
    diag = ip.band_diagonals(8, ip.gaussian_kernel1d(11, 5.0), 2)
    window = ip.window_matrix(diag, range(-20, 12), range(-30, 20))
    dense = ip.band_matrix(8, ip.gaussian_kernel1d(11, 5.0), 2)
    assert torch.equal(window[20:28, 30:38], dense)
    window[20:28, 30:38] = 0
    assert not window.any()  # nothing outside the axis
