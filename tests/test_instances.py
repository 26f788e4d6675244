"""Instances: splitting the foreground into one label per object."""
import numpy as np
import pytest

from napari_iem import segment
from napari_iem.analysis.instances import auto_min_distance, split_instances
from napari_iem.analysis.metrics import instance_f1

from synthetic import touching_discs


def test_touching_discs_are_split():
    _, truth = touching_discs(64, radius=12, gap=-4)
    mask = truth > 0
    assert split_instances(mask, method="components").max() == 1  # one blob
    inst = split_instances(mask)
    assert inst.max() == 2 and inst.dtype == np.int32
    assert instance_f1(inst, truth)["f1"] == 1.0
    assert instance_f1(inst, truth, threshold=0.8)["f1"] == 1.0


def test_min_size_and_auto_distance():
    mask = np.zeros((40, 40), bool)
    mask[5:15, 5:15] = True
    mask[30, 30] = True  # a speck
    assert split_instances(mask).max() == 2
    inst = split_instances(mask, min_size=5)
    assert inst.max() == 1 and inst[30, 30] == 0
    assert auto_min_distance(mask[:20, :20]) == 2  # half of a 5-px radius, rounded
    assert split_instances(np.zeros((8, 8), bool)).max() == 0


def test_touching_balls_in_3d():
    zz, yy, xx = np.mgrid[:24, :24, :40]
    a = (zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 11) ** 2 < 9**2
    b = (zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 27) ** 2 < 9**2
    truth = np.where(a, 1, 0) + np.where(b & ~a, 2, 0)
    inst = split_instances(a | b)
    assert inst.max() == 2
    assert instance_f1(inst, truth)["f1"] == 1.0


def test_errors():
    with pytest.raises(ValueError, match="method"):
        split_instances(np.ones((5, 5)), method="magic")
    with pytest.raises(ValueError, match="2-D or 3-D"):
        split_instances(np.ones(5))


def test_segment_gives_instance_labels():
    image, truth = touching_discs(64, radius=12, gap=-4)
    res = segment(image, instances=True, max_iter=30)
    assert res.instances.shape == image.shape
    assert instance_f1(res.instances, truth)["f1"] == 1.0
    stack = segment(np.stack([image, image]), mode="slices", instances=True,
                    max_iter=30, maps=False)
    assert stack.instances.max() == 4  # ids unique over the stack
    assert set(np.unique(stack.instances[1])) == {0, 3, 4}
