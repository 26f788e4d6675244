"""The paper's segmentation metrics, the paper's evaluation protocol, and instance F1.

Binary metrics (:func:`binary_scores`, :func:`mean_scores`) follow the IEM paper
(Savarese et al., CVPR 2021): per image, then averaged over images.

* ``acc``, ``iou``, ``dice``: the better of the two polarities of the prediction (the
  prediction or its complement) against the ground-truth foreground, chosen
  independently for each metric and image (an oracle flip).
* ``miou``: mean of the foreground IoU and the background IoU, each with its own free
  flip.
* ``fixed_iou``: ``prediction > 0`` against ``ground truth > 0``, no flip: what a user
  gets from the tool's own foreground choice.

All values are fractions in [0, 1].  Any label > 0 counts as foreground, so K-region
labels are scored as "not background".

Empty sets
----------
IoU and Dice of two empty sets are defined as 1 (perfect agreement: nothing to find and
nothing found); an empty set against a non-empty one scores 0.  So an empty ground truth
and an empty prediction give ``fixed_iou = 1``; an empty ground truth and a full
prediction give ``fixed_iou = 0`` but best-polarity IoU 1 (the complement is empty).
Accuracy is always defined.  The same rule holds for instance F1: no objects in either
image is F1 = 1.

All functions here are numpy only (``paper_protocol`` uses scikit-image's resize, as the
protocol prescribes) and vectorised over a leading image axis where shapes agree.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "METRIC_NAMES",
    "confusion_counts",
    "scores_from_counts",
    "binary_scores",
    "mean_scores",
    "evaluate_pairs",
    "paper_protocol",
    "instance_matches",
    "instance_f1",
]

#: Keys of the binary metric dicts, in table order.
METRIC_NAMES = ("acc", "iou", "miou", "dice", "fixed_iou")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0/0 := 1 (two empty sets agree perfectly)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.ones(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def confusion_counts(pred: np.ndarray, gt: np.ndarray, batch: bool = False) -> np.ndarray:
    """True/false positives and negatives of ``pred > 0`` against ``gt > 0``.

    Parameters
    ----------
    pred, gt : ndarray
        Label images of the same shape; any value > 0 is foreground.
    batch : bool
        When True the first axis indexes images and counts are per image.

    Returns
    -------
    ndarray of int64, shape (4,) or (N, 4)
        ``[tp, fp, fn, tn]``.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}"
        )
    p = pred > 0
    g = gt > 0
    if batch:
        axes = tuple(range(1, p.ndim))
        n = np.prod(p.shape[1:], dtype=np.int64) if p.ndim > 1 else 1
    else:
        axes = None
        n = p.size
    tp = np.count_nonzero(p & g, axis=axes)
    pp = np.count_nonzero(p, axis=axes)
    gp = np.count_nonzero(g, axis=axes)
    fp = pp - tp
    fn = gp - tp
    tn = n - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=-1).astype(np.int64)


def scores_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """The paper's metrics from confusion counts ``[..., (tp, fp, fn, tn)]``.

    Returns
    -------
    dict of str to ndarray
        ``acc, iou, miou, dice, fixed_iou`` with the counts' leading shape.
    """
    c = np.asarray(counts, dtype=np.float64)
    tp, fp, fn, tn = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    n = tp + fp + fn + tn
    # Flipping the prediction swaps tp<->fn and fp<->tn.
    acc = _ratio(tp + tn, n)
    acc_flip = _ratio(fp + fn, n)
    iou_fg = _ratio(tp, tp + fp + fn)         # pred fg vs gt fg
    iou_fg_flip = _ratio(fn, fn + tn + tp)    # (not pred) vs gt fg
    iou_bg = _ratio(tn, tn + fp + fn)         # (not pred) vs (not gt)
    iou_bg_flip = _ratio(fp, fp + tp + tn)    # pred vs (not gt)
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    dice_flip = _ratio(2 * fn, 2 * fn + tn + tp)
    best_fg = np.maximum(iou_fg, iou_fg_flip)
    best_bg = np.maximum(iou_bg, iou_bg_flip)
    return {
        "acc": np.maximum(acc, acc_flip),
        "iou": best_fg,
        "miou": (best_fg + best_bg) / 2,
        "dice": np.maximum(dice, dice_flip),
        "fixed_iou": iou_fg,
    }


def binary_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The paper's metrics for one image.

    Parameters
    ----------
    pred : ndarray
        Predicted labels; > 0 is foreground.
    gt : ndarray
        Ground truth of the same shape; > 0 is foreground.

    Returns
    -------
    dict of str to float
        ``acc, iou, miou, dice, fixed_iou``, fractions in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((4, 4), int); gt[1:3, 1:3] = 1
    >>> s = binary_scores(1 - gt, gt)       # inverted prediction
    >>> s["iou"], s["fixed_iou"]
    (1.0, 0.0)
    """
    return {k: float(v) for k, v in scores_from_counts(confusion_counts(pred, gt)).items()}


def mean_scores(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Average per-image metric dicts; adds ``n_images``.

    An empty input gives NaN for every metric and ``n_images = 0``.
    """
    rows = list(per_image)
    out: dict[str, float] = {}
    for name in METRIC_NAMES:
        vals = np.array([r[name] for r in rows], dtype=np.float64)
        out[name] = float(vals.mean()) if vals.size else float("nan")
    out["n_images"] = len(rows)
    return out


def evaluate_pairs(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]
                   ) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Per-image metrics and their mean for pairs of prediction and ground truth.

    Images may have different sizes; pairs of one shape are counted in one vectorised
    pass.

    Returns
    -------
    mean : dict
        :func:`mean_scores` of the per-image metrics.
    per_image : list of dict
        :func:`binary_scores` of each pair, in input order.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions but {len(gts)} ground truths")
    counts = np.zeros((len(preds), 4), dtype=np.int64)
    groups: dict[tuple, list[int]] = {}
    for i, (p, g) in enumerate(zip(preds, gts)):
        p = np.asarray(p)
        g = np.asarray(g)
        if p.shape != g.shape:
            raise ValueError(
                f"pair {i}: prediction shape {p.shape} differs from ground truth "
                f"shape {g.shape}"
            )
        groups.setdefault(p.shape, []).append(i)
    for shape, idx in groups.items():
        p = np.stack([np.asarray(preds[i]) > 0 for i in idx])
        g = np.stack([np.asarray(gts[i]) > 0 for i in idx])
        counts[idx] = confusion_counts(p, g, batch=True)
    scores = scores_from_counts(counts)
    per_image = [{k: float(v[i]) for k, v in scores.items()} for i in range(len(preds))]
    return mean_scores(per_image), per_image


def paper_protocol(array: np.ndarray, size: int = 128) -> np.ndarray:
    """The paper's evaluation geometry: shorter side to ``size`` (nearest), centre crop.

    Used for images and masks alike, so that they stay aligned.  The longer side becomes
    ``int(size * long / short)`` (as torchvision's ``Resize``); the crop offset is
    ``round((side - size) / 2)`` (as torchvision's ``CenterCrop``).

    Parameters
    ----------
    array : ndarray, shape (H, W) or (H, W, C)
        Image or label mask; a trailing axis is treated as channels.
    size : int
        Output side length.

    Returns
    -------
    ndarray, shape (size, size) or (size, size, C)
        Same dtype as the input; values are only copied (nearest neighbour), never
        interpolated.
    """
    from skimage.transform import resize

    a = np.asarray(array)
    if a.ndim not in (2, 3):
        raise ValueError(f"paper_protocol takes (H, W) or (H, W, C) arrays, got shape {a.shape}")
    h, w = a.shape[:2]
    if min(h, w) < 1:
        raise ValueError(f"cannot resize an empty image of shape {a.shape}")
    if h <= w:
        nh, nw = size, max(size, int(size * w / h))
    else:
        nh, nw = max(size, int(size * h / w)), size
    dtype = a.dtype
    work = a.astype(np.uint8) if dtype.kind == "b" else a
    if (nh, nw) != (h, w):
        work = resize(work, (nh, nw) + a.shape[2:], order=0, preserve_range=True,
                      anti_aliasing=False, mode="edge")
    top = int(round((nh - size) / 2.0))
    left = int(round((nw - size) / 2.0))
    out = work[top:top + size, left:left + size]
    return out.astype(dtype, copy=False) if dtype.kind != "b" else out > 0


# --------------------------------------------------------------------------- instances

def _iou_matrix(pred: np.ndarray, gt: np.ndarray):
    """IoU between every predicted object and every GT object (labels > 0)."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}"
        )
    if (pred.size and pred.min() < 0) or (gt.size and gt.min() < 0):
        raise ValueError("instance labels must be >= 0")
    p_ids, p_inv = np.unique(pred.ravel(), return_inverse=True)
    g_ids, g_inv = np.unique(gt.ravel(), return_inverse=True)
    n_p, n_g = len(p_ids), len(g_ids)
    inter = np.bincount(p_inv * n_g + g_inv, minlength=n_p * n_g).reshape(n_p, n_g)
    p_area = inter.sum(axis=1)
    g_area = inter.sum(axis=0)
    keep_p = p_ids > 0
    keep_g = g_ids > 0
    inter = inter[keep_p][:, keep_g]
    union = p_area[keep_p][:, None] + g_area[keep_g][None, :] - inter
    iou = _ratio(inter, union)
    return iou, p_ids[keep_p], g_ids[keep_g]


def instance_matches(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5):
    """One-to-one matches between predicted and ground-truth objects with IoU > threshold.

    For ``threshold >= 0.5`` a match is unique by construction (two objects cannot both
    overlap a third by more than half); below 0.5, pairs are taken greedily in order of
    decreasing IoU.

    Returns
    -------
    list of (int, int, float)
        ``(pred_id, gt_id, iou)`` for each match.
    """
    iou, p_ids, g_ids = _iou_matrix(pred, gt)
    if iou.size == 0:
        return []
    if threshold >= 0.5:
        pi, gi = np.nonzero(iou > threshold)
    else:
        cand = np.argwhere(iou > threshold)
        order = np.argsort(-iou[cand[:, 0], cand[:, 1]], kind="stable")
        used_p, used_g, pi, gi = set(), set(), [], []
        for a, b in cand[order]:
            if a not in used_p and b not in used_g:
                used_p.add(a)
                used_g.add(b)
                pi.append(a)
                gi.append(b)
    return [(int(p_ids[a]), int(g_ids[b]), float(iou[a, b])) for a, b in zip(pi, gi)]


def instance_f1(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5,
                connectivity: int | None = None) -> dict[str, float]:
    """Object-level F1: predicted objects matched to GT instances at IoU > ``threshold``.

    Parameters
    ----------
    pred : ndarray of int
        Predicted instance labels (0 background).  A semantic mask can be split into
        objects first with ``connectivity``.
    gt : ndarray of int
        Ground-truth instance labels (0 background), same shape.
    threshold : float
        IoU above which a predicted object matches a GT object (0.5 is standard).
    connectivity : int, optional
        When given, ``pred > 0`` is split into connected components with
        :func:`skimage.measure.label` at this connectivity (1 = 4-connected in 2-D).

    Returns
    -------
    dict
        ``tp, fp, fn`` (counts), ``precision, recall, f1``, ``mean_matched_iou``.
        No objects in both images gives precision = recall = f1 = 1.
    """
    if connectivity is not None:
        from skimage.measure import label

        pred = label(np.asarray(pred) > 0, connectivity=connectivity)
    matches = instance_matches(pred, gt, threshold)
    n_pred = len(np.setdiff1d(np.unique(pred), [0]))
    n_gt = len(np.setdiff1d(np.unique(gt), [0]))
    tp = len(matches)
    fp = n_pred - tp
    fn = n_gt - tp
    precision = float(_ratio(tp, n_pred))
    recall = float(_ratio(tp, n_gt))
    f1 = float(_ratio(2 * tp, 2 * tp + fp + fn))
    mean_iou = float(np.mean([m[2] for m in matches])) if matches else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
            "f1": f1, "mean_matched_iou": mean_iou}
