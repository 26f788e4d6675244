"""The paper's metrics: known answers, polarity, empty sets, the 128 protocol, instance F1."""
import numpy as np
import pytest

from napari_iem.analysis.metrics import (
    METRIC_NAMES,
    binary_scores,
    confusion_counts,
    evaluate_pairs,
    instance_f1,
    instance_matches,
    mean_scores,
    paper_protocol,
)


def square_gt(h=8, w=8):
    gt = np.zeros((h, w), np.uint8)
    gt[2:6, 2:6] = 255
    return gt


def test_perfect():
    gt = square_gt()
    s = binary_scores(gt > 0, gt)
    assert s == {k: 1.0 for k in METRIC_NAMES}


def test_inverted_is_perfect_with_flip_but_not_fixed():
    gt = square_gt()
    s = binary_scores(gt == 0, gt)
    assert s["acc"] == s["iou"] == s["dice"] == s["miou"] == 1.0
    assert s["fixed_iou"] == 0.0


def test_known_values():
    gt = np.zeros((4, 4), int)
    gt[:2] = 1  # 8 foreground pixels
    pred = np.zeros((4, 4), int)
    pred[:1] = 1  # 4 predicted, all inside
    s = binary_scores(pred, gt)
    # tp=4 fp=0 fn=4 tn=8
    assert s["acc"] == pytest.approx(12 / 16)
    assert s["fixed_iou"] == pytest.approx(4 / 8)
    assert s["iou"] == pytest.approx(4 / 8)  # flip: fn/(fn+tn+tp) = 4/16
    assert s["dice"] == pytest.approx(8 / 12)
    # bg IoU: tn/(tn+fp+fn) = 8/12; flipped fp/(fp+tp+tn) = 0
    assert s["miou"] == pytest.approx((0.5 + 8 / 12) / 2)


def test_each_metric_flips_independently():
    gt = np.zeros((10, 10), int)
    gt[:, :1] = 1  # 10 px foreground
    pred = np.zeros((10, 10), int)
    pred[:, :5] = 1  # 50 px, covering gt
    s = binary_scores(pred, gt)
    # no flip: acc .6, iou .2; flipped: acc .4, iou 0
    assert s["acc"] == pytest.approx(0.6)
    assert s["iou"] == pytest.approx(0.2)
    assert s["fixed_iou"] == pytest.approx(0.2)


def test_empty_cases():
    empty = np.zeros((6, 6), np.uint8)
    full = np.ones((6, 6), np.uint8)
    gt = square_gt(6, 6)
    both_empty = binary_scores(empty, empty)
    assert both_empty == {k: 1.0 for k in METRIC_NAMES}
    s = binary_scores(full, empty)  # GT empty, everything predicted
    assert s["fixed_iou"] == 0.0 and s["iou"] == 1.0 and s["acc"] == 1.0
    s = binary_scores(empty, gt)  # nothing predicted
    assert s["fixed_iou"] == 0.0
    assert s["iou"] == pytest.approx(16 / 36)  # the complement covers the object
    assert s["acc"] == pytest.approx(20 / 36)


def test_k_regions_count_as_foreground():
    gt = square_gt()
    pred = (gt > 0).astype(np.uint8) * 3
    assert binary_scores(pred, gt)["fixed_iou"] == 1.0


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        binary_scores(np.zeros((3, 3)), np.zeros((3, 4)))


def test_vectorised_equals_loop():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 2, (5, 7)) for _ in range(4)] + [rng.integers(0, 3, (9, 3))]
    gts = [rng.integers(0, 2, p.shape) for p in preds]
    mean, per = evaluate_pairs(preds, gts)
    loop = [binary_scores(p, g) for p, g in zip(preds, gts)]
    for a, b in zip(per, loop):
        assert a == pytest.approx(b)
    assert mean["n_images"] == 5
    assert mean["iou"] == pytest.approx(np.mean([r["iou"] for r in loop]))
    counts = confusion_counts(np.stack(preds[:4]), np.stack(gts[:4]), batch=True)
    assert counts.shape == (4, 4) and (counts.sum(1) == 35).all()


def test_mean_of_nothing():
    m = mean_scores([])
    assert m["n_images"] == 0 and np.isnan(m["iou"])


@pytest.mark.parametrize(
    "shape", [(100, 81), (81, 100), (128, 128), (200, 300, 3), (960, 1280), (50, 50)]
)
def test_paper_protocol_shapes(shape):
    a = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    out = paper_protocol(a)
    assert out.shape == (128, 128) + shape[2:]
    assert out.dtype == np.uint8
    assert set(np.unique(out)) <= set(np.unique(a))  # nearest: no new values


def test_paper_protocol_keeps_masks_binary_and_centred():
    mask = np.zeros((256, 512), np.uint8)
    mask[:, 192:320] = 255  # columns 96:160 after halving, 32:96 after the crop
    out = paper_protocol(mask)
    assert set(np.unique(out)) == {0, 255}
    assert (out[:, 32:96] == 255).all()
    assert (out[:, :32] == 0).all() and (out[:, 96:] == 0).all()
    assert paper_protocol(mask > 0).dtype == bool
    same = np.arange(128 * 128).reshape(128, 128)
    assert (paper_protocol(same) == same).all()


def test_paper_protocol_rejects_volumes():
    with pytest.raises(ValueError):
        paper_protocol(np.zeros((4, 4, 4, 4)))


def test_instance_f1_known():
    gt = np.zeros((20, 20), np.uint16)
    gt[1:5, 1:5] = 1
    gt[10:14, 10:14] = 2
    gt[15:19, 1:5] = 3
    pred = np.zeros_like(gt)
    pred[1:5, 1:5] = 7           # exact match
    pred[10:14, 10:12] = 9       # IoU 0.5, not > 0.5: no match
    pred[0:2, 15:19] = 4         # false positive
    s = instance_f1(pred, gt)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 2, 2)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(1 / 3)
    assert instance_matches(pred, gt) == [(7, 1, 1.0)]
    assert len(instance_matches(pred, gt, threshold=0.4)) == 2


def test_instance_f1_semantic_and_empty():
    gt = np.zeros((10, 10), int)
    gt[1:4, 1:4] = 1
    gt[6:9, 6:9] = 2
    assert instance_f1(gt > 0, gt, connectivity=1)["f1"] == 1.0
    empty = np.zeros_like(gt)
    assert instance_f1(empty, empty)["f1"] == 1.0
    assert instance_f1(empty, gt)["f1"] == 0.0
    assert instance_f1(gt, empty)["f1"] == 0.0
