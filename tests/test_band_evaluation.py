"""The incremental evaluation near moving pixels: its gains against the exact ones, and
an optimisation that uses it ending at a fixed point of the exact rule."""
import numpy as np
import pytest
import torch

import napari_iem.engine.band_evaluation as band_module
import napari_iem.engine.optimize as optimize_module
from napari_iem.engine.band_evaluation import TILE, BandEvaluator, band_evaluator, tiles_near
from napari_iem.engine.multiscale import boundary_band
from napari_iem.engine.objective import IEMObjective
from napari_iem.engine.optimize import _border, flip_step, optimize, smooth
from napari_iem.engine.presets import PRESETS


def textured(shape, channels, seed=0):
    """An image with an off-centre bright blob cut by the border, and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = ((yy - shape[0] * 0.3) / (shape[0] * 0.5)) ** 2 \
        + ((xx - shape[1] * 0.4) / (shape[1] * 0.45)) ** 2 < 1
    img = 0.5 * blob[None] - 0.25 + 0.2 * np.sin(xx / 3.0 + np.arange(channels)[:, None, None])
    img = img + rng.normal(0, 0.1, (channels, *shape))
    return torch.from_numpy(np.clip(img, -1, 1)[None].astype(np.float32)), blob


@pytest.mark.parametrize("preset, shape, channels", [("photo", (300, 430), 3),
                                                     ("microscopy", (420, 310), 1)])
def test_gains_near_moved_pixels_agree_with_the_exact_ones(preset, shape, channels):
    x, blob = textured(shape, channels)
    params = PRESETS[preset]
    labels = torch.from_numpy(blob.astype(np.int64))[None]
    free = boundary_band(blob, 3)
    free[:, :3] = True  # the image border is in the band too
    objective = IEMObjective(x, 2, params)
    j, gains, parts = objective.evaluate(labels, keep=TILE)
    band = BandEvaluator(objective)
    band.start(labels, gains, parts)
    j_same, gains_same = band.evaluate(labels)  # nothing moved: the full evaluation's
    assert (gains_same - gains).abs().max() < 1e-4 * gains.abs().mean()  # rounding only
    assert abs(float(j_same - j)) < 1e-5 * abs(float(j))
    rng = np.random.default_rng(1)
    current = blob.astype(np.int64)
    mask = torch.from_numpy(free)[None, None]
    for step in range(3):  # a cluster of moved pixels each time, one at the border
        ys, xs = np.nonzero(free)
        k = rng.integers(len(ys))
        box = np.zeros_like(free)
        box[max(0, ys[k] - 25): ys[k] + 25, max(0, xs[k] - 25): xs[k] + 25] = True
        box[:100, :10] |= step == 0
        flip = free & box & (rng.random(shape) < 0.3)
        current[flip] ^= 1
        moved = torch.from_numpy(current.copy())[None]
        j_exact, exact = objective.evaluate(moved)
        j_band, near = band.evaluate(moved)
        scale = exact[mask].abs().mean()
        # far tiles keep gains scaled by the areas before the move (here 1-2 % off)
        assert (near - exact)[mask].abs().max() < 0.05 * scale
        tiles = tiles_near(torch.from_numpy(flip)[None], 2 * band.h)
        for _, ty, tx in zip(*tiles):  # recomputed tiles: exact up to the eps of d
            t = (0, 0, slice(ty * TILE, (ty + 1) * TILE), slice(tx * TILE, (tx + 1) * TILE))
            assert (near[t] - exact[t]).abs().max() < 2e-3 * scale
        agree = ((near > 0) == (exact > 0))[mask].float().mean()
        assert agree > 0.999
        # J moves with the stale error sums of far tiles (region means): close, not exact
        assert abs(float(j_band - j_exact)) < 1e-3 * abs(float(j_exact))


def test_many_moved_pixels_ask_for_a_full_evaluation():
    x, blob = textured((200, 200), 1)
    objective = IEMObjective(x, 2, PRESETS["microscopy"])
    labels = torch.from_numpy(blob.astype(np.int64))[None]
    band = BandEvaluator(objective)
    band.start(labels, *objective.evaluate(labels, keep=TILE)[1:])
    assert band.evaluate(1 - labels) is None


def test_tiles_near_reaches_exactly_as_far_as_asked():
    mask = torch.zeros(1, 3 * TILE, 3 * TILE, dtype=torch.bool)
    mask[0, TILE + 5, 2 * TILE - 1] = True  # in the middle tile, 1 px from its right edge
    _, ty, tx = tiles_near(mask, 1)
    assert sorted(zip(ty.tolist(), tx.tolist())) == [(1, 1), (1, 2)]
    _, ty, tx = tiles_near(mask, 6)
    assert sorted(zip(ty.tolist(), tx.tolist())) == [(0, 1), (0, 2), (1, 1), (1, 2)]


def test_only_two_regions_in_two_dimensions_with_locks(monkeypatch):
    monkeypatch.setattr(band_module, "MIN_PIXELS", 64 * 64)
    x, _ = textured((64, 64), 1)
    objective = IEMObjective(x, 2, PRESETS["photo"])
    locked = torch.zeros(1, 64, 64, dtype=torch.bool)
    assert band_evaluator(objective, None) is None
    assert band_evaluator(IEMObjective(x, 3, PRESETS["photo"]), locked) is None
    assert band_evaluator(IEMObjective(x[:, :, None], 2, PRESETS["photo"]),
                          locked[:, None]) is None
    assert isinstance(band_evaluator(objective, locked), BandEvaluator)
    monkeypatch.setattr(band_module, "MIN_PIXELS", 64 * 64 + 1)
    assert band_evaluator(objective, locked) is None  # too small to pay


def _counted(calls):
    real = BandEvaluator.evaluate

    def evaluate(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)
    return evaluate


def _run(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def test_a_run_with_it_ends_at_a_fixed_point_of_the_exact_rule(monkeypatch):
    monkeypatch.setattr(band_module, "MIN_PIXELS", 0)
    calls = []
    monkeypatch.setattr(band_module.BandEvaluator, "evaluate", _counted(calls))
    x, blob = textured((320, 384), 3, seed=2)
    params = PRESETS["photo"].replace(texture=0)  # the objective below sees x as it is
    start = np.roll(blob, (6, -5), (0, 1)).astype(np.int64)  # off by a few pixels
    locked = torch.from_numpy(~boundary_band(start, 8))[None]
    init = torch.from_numpy(start)[None]
    state = _run(optimize(x, 2, params, init=init, locked=locked))
    assert bool(state.converged[0]) and calls  # it was used
    labels = state.labels
    objective = IEMObjective(x, 2, params)
    _, gains = objective.evaluate(labels)
    again = smooth(flip_step(labels, gains, 2, _border((320, 384), "cpu"), locked), 2,
                   params.smooth_threshold, locked, params.smooth_border)
    assert torch.equal(again.long(), labels)  # one exact iteration changes nothing
    assert torch.equal(labels[locked], init[locked])
    monkeypatch.setattr(optimize_module, "band_evaluator", lambda *a: None)
    exact = _run(optimize(x, 2, params, init=init, locked=locked)).labels
    assert (exact != labels).float().mean() < 1e-3  # the exact path's fixed point, or next to it
