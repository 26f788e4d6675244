"""Sample images load offline, with the shapes and layer kwargs napari expects."""
import numpy as np
import pytest

from napari_iem._napari import sample_data as _sample_data


@pytest.mark.parametrize(
    "loader, ndim, rgb",
    [
        (_sample_data.coffee, 3, True),
        (_sample_data.tissue, 3, True),
        (_sample_data.cell, 2, False),
        (_sample_data.disc, 2, False),
    ],
)
def test_samples_are_layer_data(loader, ndim, rgb):
    [(data, kwargs)] = loader()
    assert data.ndim == ndim and kwargs["name"]
    assert kwargs.get("rgb", False) == rgb
    if rgb:
        assert data.shape[-1] == 3


def test_textured_disc_is_reproducible():
    a = _sample_data.textured_disc(32, seed=1)
    assert a.shape == (32, 32) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, _sample_data.textured_disc(32, seed=1))


@pytest.mark.gui
def test_open_sample_through_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-iem", "disc")
    assert viewer.layers[0].name == "textured disc"
    assert viewer.layers[0].data.shape == (128, 128)
