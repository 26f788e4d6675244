"""Optional clean-up: small pieces of any region join their surroundings."""
import numpy as np
import pytest

from napari_iem import segment
from napari_iem.analysis.cleanup import drop_small_pieces
from skimage.measure import label
from synthetic import iou


def test_specks_go_and_holes_fill_but_objects_stay():
    labels = np.zeros((40, 40), np.uint8)
    labels[5:25, 5:25] = 1  # an object of 400 pixels
    labels[12, 12] = 0  # a one-pixel hole in it
    labels[32:34, 32:34] = 1  # a 4-pixel speck
    out = drop_small_pieces(labels, 10)
    expected = np.zeros_like(labels)
    expected[5:25, 5:25] = 1
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == labels.dtype
    np.testing.assert_array_equal(drop_small_pieces(labels, 0), labels)  # off
    np.testing.assert_array_equal(drop_small_pieces(labels, 5000), labels)  # all small


def test_more_regions_and_volumes_are_treated_alike():
    labels = np.zeros((30, 30), np.uint8)
    labels[:, 15:] = 2
    labels[10:13, 5:8] = 1  # a 9-pixel piece of region 1 inside region 0
    labels[20, 20] = 1  # a 1-pixel piece inside region 2
    out = drop_small_pieces(labels, 10)
    assert out[11, 6] == 0 and out[20, 20] == 2
    vol = np.zeros((6, 20, 20), np.uint8)
    vol[:, 5:15, 5:15] = 1
    vol[3, 10, 10] = 0  # a one-voxel hole
    assert drop_small_pieces(vol, 2)[3, 10, 10] == 1
    with pytest.raises(ValueError, match="min_piece_size"):
        drop_small_pieces(labels, -1)


def pieces(labels):
    return label(labels.astype(np.int64) + 1, background=0, connectivity=1).max()


def test_segment_applies_it_after_the_optimisation_and_records_it():
    rng = np.random.default_rng(0)
    image = np.full((64, 64), 30.0)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 < 144
    image[disc] = 200
    for y, x in ((6, 6), (6, 55), (55, 8), (56, 56)):
        image[y - 3 : y + 3, x - 3 : x + 3] = 200  # 6x6 dots survive the optimisation
    image = (image + rng.normal(0, 5, image.shape)).clip(0, 255).astype(np.uint8)
    plain = segment(image, 2, preset="microscopy", max_iter=40)
    clean = segment(image, 2, preset="microscopy", max_iter=40, min_piece_size=50)
    assert pieces(plain.labels) > 2 and pieces(clean.labels) == 2
    np.testing.assert_array_equal(clean.labels, drop_small_pieces(plain.labels, 50))
    assert clean.params["min_piece_size"] == 50 and plain.params["min_piece_size"] == 0
    assert iou(clean.labels == 1, disc) > 0.9
    vol = np.stack([image] * 6)
    res = segment(vol, 2, mode="volume", preset="microscopy", max_iter=20,
                  min_piece_size=300, maps=False)
    assert pieces(res.labels) == 2  # the dots are at most 6x6x6 = 216 voxels
