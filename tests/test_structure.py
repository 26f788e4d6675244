"""The "no structure" decision: noise gives nothing, a faint object is still found."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from napari_iem import segment
from napari_iem.engine.optimize import optimize
from napari_iem.engine.preprocess import intensity_range, prepare_image, settle_intensity
from napari_iem.engine.presets import get_preset
from napari_iem.engine.structure import noise_bound, structure_found

SIZE = 64


def params_for(preset, image):
    return settle_intensity(get_preset(preset).replace(max_iter=40), image)


def run(x, params, regions=2):
    """The optimiser's final labels for the batch ``x``."""
    gen = optimize(x, regions, params)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value.labels


def decide(images, preset, value_range=None):
    params = params_for(preset, np.stack(images))
    x = torch.from_numpy(np.stack([
        prepare_image(im, params, value_range=value_range).data for im in images]))
    return structure_found(x, run(x, params), 2, params)


def disc(contrast, rng, radius=12, centre=(28, 36)):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius**2
    image = rng.normal(1000, 50, (SIZE, SIZE)) + 50 * contrast * inside
    return image.round().astype(np.uint16)


def test_noise_bound_is_the_split_by_value():
    assert noise_bound(0.5) == pytest.approx(2 * math.sqrt(2 / math.pi))
    rng = np.random.default_rng(0)
    v = np.sort(rng.standard_normal(200_000))
    top = v[-20_000:].mean() - v[:-20_000].mean()  # the top 10% against the rest
    assert noise_bound(0.1) == pytest.approx(top, rel=0.02)


@pytest.mark.parametrize("preset", ["microscopy", "photo"])
def test_noise_planes_have_no_structure(preset):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    planes = [rng.normal(128, 20, (SIZE, SIZE)).clip(0, 255).astype(np.uint8),
              rng.poisson(3, (SIZE, SIZE)).astype(np.uint8),
              rng.poisson(20 * (0.5 + xx / SIZE)).astype(np.uint8)]  # a gradient
    found, stats = decide(planes, preset)
    assert not found.any(), stats["ratio"]


def test_a_faint_disc_is_found():
    found, stats = decide([disc(2.0, np.random.default_rng(2))], "microscopy")
    assert found.tolist() == [True], stats
    assert stats["contrast"][0] == pytest.approx(2.0, rel=0.15)


def test_stack_with_empty_planes():
    """Planes of one stack, scaled alike: those with a disc keep it, the empty ones
    are called empty."""
    rng = np.random.default_rng(3)
    stack = np.stack([disc(4.0, rng), disc(0.0, rng), disc(3.0, rng, centre=(40, 24)),
                      disc(0.0, rng)])
    params = params_for("microscopy", stack)
    found, _ = decide(list(stack), "microscopy",
                      value_range=intensity_range(stack[..., None], params, False))
    assert found.tolist() == [True, False, True, False]


def test_statistic_ignores_scaling_and_offset():
    rng = np.random.default_rng(4)
    image = disc(1.0, rng)
    params = params_for("microscopy", image)
    x = torch.from_numpy(prepare_image(image, params).data[None])
    labels = run(x, params)
    _, a = structure_found(x, labels, 2, params)
    _, b = structure_found(0.3 * x - 0.5, labels, 2, params)
    assert b["contrast"][0] == pytest.approx(a["contrast"][0], rel=1e-6)


def test_single_region_is_no_structure():
    x = torch.rand(1, 1, SIZE, SIZE) * 2 - 1
    params = get_preset("microscopy").replace(max_iter=5)
    found, stats = structure_found(x, torch.zeros(1, SIZE, SIZE, dtype=torch.int64), 2,
                                   params)
    assert not found.any() and stats["ratio"] == [0.0]


def test_volume_with_a_ball_and_an_empty_volume():
    rng = np.random.default_rng(5)
    zz, yy, xx = np.mgrid[:12, :20, :20]
    ball = (zz - 6) ** 2 + (yy - 10) ** 2 + (xx - 10) ** 2 < 5**2
    vols = [rng.normal(0, 1, ball.shape) + 3 * ball, rng.normal(0, 1, ball.shape)]
    # the engine's n-D majority (14 of 27), as the pipeline sets it on the working grid
    params = dataclasses.replace(get_preset("microscopy"), max_iter=10, smooth_threshold=14)
    x = torch.from_numpy(np.stack([
        prepare_image(v.astype(np.float32), params, spatial_ndim=3).data for v in vols]))
    found, _ = structure_found(x, run(x, params), 2, params)
    assert found.tolist() == [True, False]


def test_the_presets_nulls_are_shipped_and_agree_with_a_fresh_measurement(monkeypatch):
    """A first run does not measure a null for a preset (it is in the table), and the
    table's value is what measuring gives."""
    import json

    from napari_iem.engine import structure

    table = json.loads(structure.TABLE.read_text())
    assert len(table) >= 12
    monkeypatch.setattr(structure, "_NULLS", {})
    measured = []
    real = structure._measure_null
    monkeypatch.setattr(structure, "_measure_null",
                        lambda *a: measured.append(a) or real(*a))
    rng = np.random.default_rng(3)
    result = segment(rng.integers(0, 256, (200, 240), dtype=np.uint8), preset="photo",
                     maps=False)
    assert not measured and result.metadata["structure"][0]["threshold"] > 0
    key = next(k for k in table if json.loads(k)["regions"] == 2
               and json.loads(k)["shape"] == [128, 128] and json.loads(k)["init"] == "square")
    params = json.loads(key)
    fresh = real(structure_params(params), 2, (128, 128), "cpu")
    assert fresh == pytest.approx(table[key], rel=0.02, abs=1e-3)


def structure_params(fields: dict):
    """IEMParams with the optimiser's parameters of a table key."""
    return dataclasses.replace(get_preset("photo"),
        sigma=tuple(fields["sigma"]), kernel_size=fields["kernel_size"], reps=fields["reps"],
        lam=fields["lam"], init=fields["init"], max_iter=fields["max_iter"],
        smooth_threshold=fields["smooth_threshold"],
        percentile_low=fields["percentiles"][0], percentile_high=fields["percentiles"][1])


@pytest.mark.parametrize("shape", [(80000, 8), (8, 80000), (3000, 5)])
def test_a_thin_image_gets_one_contrast_in_either_orientation(shape):
    """An axis sampled at a few places carries only the background terms it can tell
    apart: with a quartic along 2 sampled columns the fit had no one solution, and
    the contrast of an 80000x8 image came out 6.5, 2.0 or 4.6 from call to call."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0, 0.1, (1, 1, *shape)))
    labels = torch.zeros((1, *shape), dtype=torch.int64)
    long_axis = int(np.argmax(shape))
    (labels.narrow(1 + long_axis, 0, shape[long_axis] // 3)).fill_(1)
    x = x + 0.5 * labels[:, None]
    params = get_preset("microscopy")
    contrasts = [structure_found(x, labels, 2, params)[1]["contrast"][0] for _ in range(3)]
    flipped = structure_found(x.transpose(2, 3), labels.transpose(1, 2), 2, params)
    assert max(contrasts) - min(contrasts) < 1e-9
    assert flipped[1]["contrast"][0] == pytest.approx(contrasts[0], rel=1e-9)
    assert contrasts[0] == pytest.approx(5.0, rel=0.1)  # 0.5 over a noise of 0.1


def enlarged(image, factors):
    """``image`` enlarged by repeating each pixel ``factors`` times per axis."""
    for axis, factor in enumerate(factors):
        image = np.repeat(image, factor, axis=axis)
    return image


def test_repetition_finds_the_enlargement_factor_of_each_axis():
    from napari_iem.engine.structure import repetition

    rng = np.random.default_rng(6)
    plane = rng.normal(0, 1, (40, 30)).astype(np.float32)
    as_x = lambda a: torch.from_numpy(np.ascontiguousarray(a)[None])  # noqa: E731
    assert repetition(as_x(plane)) == (1, 1)
    assert repetition(as_x(enlarged(plane, (2, 3)))) == (2, 3)
    assert repetition(as_x(enlarged(plane, (1, 4)))) == (1, 4)
    step = np.zeros((64, 64), np.float32)
    step[:, 32:] = 1  # one edge, at an even column: too few changes to call it enlarged
    assert repetition(as_x(step)) == (1, 1)


@pytest.mark.parametrize("factor", [2, 3, 6])
def test_an_enlarged_image_keeps_its_object_and_enlarged_noise_stays_empty(factor):
    """An image enlarged by pixel repetition (skimage's moon, a zoomed screenshot)
    has no noise between the repeated pixels; measured on every other pixel (a grid of
    step 2 on a large image) its noise was zero and its object was lost, and measured
    on all pixels enlarged noise looked like structure."""
    rng = np.random.default_rng(7)
    noise = rng.normal(1000, 50, (SIZE, SIZE)).round().astype(np.uint16)
    # five noise SDs: the optimiser follows enlarged noise's few large grains closely
    # (its selection, measured on noise enlarged alike, is 0.5 to 1 against 0.27)
    images = [enlarged(disc(5.0, rng), (factor, factor)), enlarged(noise, (factor, factor))]
    found, stats = decide(images, "microscopy")
    assert found.tolist() == [True, False], stats["ratio"]
    assert stats["repetition"] == [[factor, factor]] * 2


def test_skimage_moon_is_not_called_empty():
    """scikit-image's moon (napari's sample) is a 256-px photo enlarged 2x by pixel
    repetition: its craters were called "no structure found"."""
    from skimage import data

    result = segment(data.moon(), 2, maps=False)
    assert result.structure_found
    assert 0.01 < (result.labels > 0).mean() < 0.5
