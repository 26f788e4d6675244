"""The colour conversion of the inpainter (:mod:`napari_iem.engine.colour`)."""
import numpy as np
import pytest
from skimage.color import rgb2lab

from napari_iem.engine.colour import is_grey_rgb, lab_range, to_lab

RNG = np.random.default_rng(7)
GRID = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")


@pytest.mark.parametrize("image", [
    RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8),
    np.stack([GRID[0], GRID[1], np.full((256, 256), 200)], -1).astype(np.uint8),  # all R, G
    RNG.integers(0, 65536, (20, 30, 3), dtype=np.uint16),
    RNG.random((20, 30, 3)),
    RNG.random((4, 10, 12, 3)).astype(np.float32),  # a stack, channels last
], ids=["uint8", "uint8-every-red-green", "uint16", "float64", "float32-stack"])
def test_to_lab_agrees_with_skimage(image):
    scale = np.iinfo(image.dtype).max if image.dtype.kind == "u" else 1.0
    expected = rgb2lab(image.astype(np.float64) / scale)
    got = to_lab(image)
    assert got.shape == image.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-3


def test_to_lab_of_black_and_white():
    lab = to_lab(np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0, 0], [0, 0, 0], atol=1e-3)
    np.testing.assert_allclose(lab[0, 1], [100, 0, 0], atol=1e-2)


def test_lab_range_is_at_least_min_span_wide():
    flat = np.full((10, 10, 3), 128, dtype=np.uint8)
    low, high = lab_range(to_lab(flat))
    assert np.all(high - low >= 20.0 - 1e-9)


def test_grey_rgb_is_told_from_colour():
    grey = np.repeat(RNG.integers(0, 256, (8, 8, 1), dtype=np.uint8), 3, axis=-1)
    assert is_grey_rgb(grey)
    colour = grey.copy()
    colour[0, 0, 1] ^= 1
    assert not is_grey_rgb(colour)


def test_lab_to_input_inverts_skimage_lab2rgb():
    import warnings

    from skimage.color import lab2rgb

    from napari_iem.engine.colour import lab_to_input

    lab = np.stack([RNG.uniform(0, 100, (40, 50)), RNG.uniform(-90, 90, (40, 50)),
                    RNG.uniform(-90, 90, (40, 50))], -1)  # out-of-gamut colours too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns of the negative Z it clips
        expected = lab2rgb(lab) * 255
    got = lab_to_input(lab.astype(np.float32), 255.0)
    assert got.dtype == np.float32 and got.shape == lab.shape
    assert np.abs(got - expected).max() < 1e-4 * 255


def test_a_photo_survives_the_round_trip():
    from napari_iem.engine.colour import lab_to_input

    image = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    back = lab_to_input(to_lab(image), 255.0)
    assert np.abs(back - image).max() < 0.05
