"""The foreground rules of engine/foreground.py on labellings with a known answer."""
from __future__ import annotations

import numpy as np
import pytest

from napari_iem.engine.foreground import region_order
from napari_iem.engine.presets import get_preset


def framed_square(size=20, lo=3, hi=17):
    """Label 0 inside a centred square, 1 around it (the start grew outwards)."""
    labels = np.ones((size, size), dtype=np.int64)
    labels[lo:hi, lo:hi] = 0
    return labels


def test_init_keeps_the_optimiser_numbers():
    assert region_order(framed_square(), 2, "init").tolist() == [0, 1]


def test_border_calls_the_frame_background():
    assert region_order(framed_square(), 2, "border").tolist() == [1, 0]


def test_area_calls_the_larger_region_background():
    labels = framed_square(lo=2, hi=18)  # the inner square is the larger region
    assert region_order(labels, 2, "area").tolist() == [0, 1]
    assert region_order(labels, 2, "border").tolist() == [1, 0]


def test_other_regions_follow_by_area():
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[:, :2] = 1
    labels[:, 2:7] = 2
    labels[:, 7:] = 3
    assert region_order(labels, 4, "area").tolist() == [2, 3, 1, 0]


def test_volume_border_uses_every_face():
    labels = np.ones((6, 8, 8), dtype=np.int64)
    labels[1:5, 2:6, 2:6] = 0
    assert region_order(labels, 2, "border").tolist() == [1, 0]


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="foreground rule"):
        region_order(framed_square(), 2, "middle")


def test_presets_rules():
    """Photos call the region nearer the centre foreground (on the development photos
    the region grown from the centred square; measured closer to the best polarity than
    the border rule, docs/evaluation.md); micrographs call the larger region
    background."""
    assert get_preset("photo").foreground == "centre"
    assert get_preset("microscopy").foreground == "area"
    assert get_preset("paper").foreground == "init"


def test_centre_calls_the_farther_region_background():
    labels = framed_square()
    assert region_order(labels, 2, "centre").tolist() == [1, 0]
    big = framed_square(lo=1, hi=19)  # the object fills most of the frame: still nearer
    assert region_order(big, 2, "centre").tolist() == [1, 0]
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 20) ** 2 + (xx - 22) ** 2 < 12**2).astype(np.int64)  # off the centre
    assert region_order(disc, 2, "centre").tolist() == [0, 1]
    assert region_order(1 - disc, 2, "centre").tolist() == [1, 0]
    corner = np.zeros((20, 30), dtype=np.int64)
    corner[:8, :10] = 1  # the limit of the rule: an object in a corner is background
    assert region_order(corner, 2, "centre").tolist() == [1, 0]
    assert region_order(np.zeros((6, 6), dtype=np.int64), 2, "centre").tolist() == [0, 1]


def _flip_invariant(labels, rule):
    """The rule names the same pixels foreground whatever the optimiser's numbers."""
    a = region_order(labels, 2, rule)
    b = region_order(1 - labels, 2, rule)
    return (np.argsort(a)[labels] == np.argsort(b)[1 - labels]).all()


@pytest.mark.parametrize("rule", ["border", "area", "centre"])
def test_rules_ignore_the_optimiser_numbers(rule):
    yy, xx = np.mgrid[:48, :64]
    labels = (((yy - 30) ** 2 + (xx - 20) ** 2) < 15**2).astype(np.int64)
    assert _flip_invariant(labels, rule)


def test_photo_rule_on_known_answers():
    """The photo preset's rule on the three cases of issue 16: an off-centre object
    touching one border, an object filling most of the frame, and an object on a
    cluttered border (background pieces along the frame)."""
    rule = get_preset("photo").foreground
    off = np.zeros((64, 64), dtype=np.int64)
    off[30:64, 8:36] = 1  # touches the bottom border, off the centre
    assert region_order(off, 2, rule).tolist() == [0, 1]
    large = np.zeros((64, 64), dtype=np.int64)
    large[4:60, 4:60] = 1  # 77 % of the image
    assert region_order(large, 2, rule).tolist() == [0, 1]
    clutter = np.zeros((64, 64), dtype=np.int64)
    clutter[16:48, 16:48] = 1
    clutter[::8, 0] = clutter[0, ::8] = 1  # specks of the object's colour on the frame
    assert region_order(clutter, 2, rule).tolist() == [0, 1]
