"""The working-size resize: the sparse product is the per-tap weighted sum, bit for bit."""
import numpy as np
import pytest

from napari_iem.engine.resample import axis_weights, downsample


def _tap_by_tap(data, work):
    """The weighted sum of each axis written out, one tap after the other in float64."""
    out = data.astype(np.float64)
    for axis, (n, m) in enumerate(zip(data.shape[1:], work)):
        if n == m:
            continue
        idx, w = axis_weights(n, m)
        moved = np.moveaxis(out, axis + 1, 0)
        shape = (-1,) + (1,) * (moved.ndim - 1)
        acc = w[:, 0].reshape(shape) * moved[idx[:, 0]]
        for k in range(1, idx.shape[1]):
            acc += w[:, k].reshape(shape) * moved[idx[:, k]]
        out = np.moveaxis(acc, 0, axis + 1)
    return out.astype(np.float32)


@pytest.mark.parametrize("shape, work", [((3, 517, 389), (128, 96)), ((1, 64, 64), (63, 17)),
                                         ((2, 9, 40, 33), (9, 20, 11)), ((1, 5, 7), (5, 7))])
def test_downsample_is_the_tap_by_tap_sum(shape, work):
    data = np.random.default_rng(3).uniform(-1, 1, shape).astype(np.float32)
    np.testing.assert_array_equal(downsample(data, work), _tap_by_tap(data, work))


@pytest.mark.parametrize("lead, small, big", [((6,), (32, 48), (256, 300)),
                                              ((2, 3), (7, 30, 41), (20, 70, 90))])
def test_resize_maps_is_linear_interpolation_between_pixel_centres(lead, small, big):
    """The maps' upsampling (torch's interpolate) is skimage's linear resize away from
    the border, where skimage mirrors and it holds the edge value instead."""
    from skimage.transform import resize

    from napari_iem.engine.preprocess import resize_maps

    maps = np.random.default_rng(0).random((*lead, *small)).astype(np.float32)
    out = resize_maps(maps, big)
    assert out.shape == (*lead, *big) and out.dtype == np.float32
    ref = resize(maps, (*lead, *big), order=1, anti_aliasing=False)
    margin = [-(-n // (2 * m)) for n, m in zip(big, small)]  # half a small pixel
    inner = (Ellipsis, *(slice(e, n - e) for n, e in zip(big, margin)))
    np.testing.assert_allclose(out[inner], ref[inner], atol=1e-5)
    corner = (Ellipsis, *([0] * len(big)))
    np.testing.assert_array_equal(out[corner], maps[corner])  # held, not mirrored
    assert resize_maps(maps, small) is maps
