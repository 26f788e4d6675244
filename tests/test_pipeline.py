"""The one pipeline: every path gives the same answer where they overlap, locks hold on
every path, options mean the same everywhere, bad values are refused up front."""
import numpy as np
import pytest

from napari_iem import iter_segment, segment, segment_batch
from napari_iem.engine import coarse_to_fine, pipeline
from napari_iem.engine.knobs import KnobError

from synthetic import textured_disc, three_regions

FAST = {"max_iter": 25, "device": "cpu"}


def _discs(n=3, size=48):
    return [textured_disc(size, seed=s, centre=(size // 2 + 3 * s, size // 2))[0]
            for s in range(n)]


def test_one_image_a_stack_of_its_slices_and_a_batch_agree():
    images = _discs()
    single = [segment(im, 2, preset="photo", **FAST) for im in images]
    batch = segment_batch(images, 2, preset="photo", **FAST)
    # a stack scales its slices alike from the whole stack: give each slice the same
    # range so the comparison is exact (8-bit photos are scaled x/255 either way)
    stack = segment(np.stack(images), 2, preset="photo", mode="slices", **FAST)
    for i, one in enumerate(single):
        np.testing.assert_array_equal(one.labels, batch[i].labels)
        np.testing.assert_array_equal(one.labels, stack.labels[i])
        assert one.iterations == batch[i].iterations
        np.testing.assert_allclose(one.inpainted, batch[i].inpainted, rtol=1e-5, atol=1e-4)


def test_a_volume_of_one_plane_per_call_is_the_same_engine():
    """The volume path is the 2-D engine with a third axis: a (Z, Y, X) volume gives
    labels of its shape, and its problems, sigma and smoothing are recorded."""
    vol = np.stack(_discs(6, 32))
    res = segment(vol, 2, preset="microscopy", mode="volume", **FAST)
    assert res.labels.shape == vol.shape
    assert res.metadata["smooth_threshold_used"] == 15  # 5 of 9 -> 15 of 27
    assert len(res.metadata["sigma_working_pixels"]) == 3


@pytest.mark.parametrize("options", [
    {},
    {"min_piece_size": 40},
    {"min_piece_size": 40, "maps": False},
    {"min_piece_size": 40, "mode": "slices"},
    {"max_size": 24, "refine": True, "min_piece_size": 40},
])
def test_locked_pixels_never_change_whatever_the_options(options):
    image, truth = textured_disc(48)
    init = np.zeros(image.shape, np.uint8)
    init[2:6, 2:6] = 1  # a speck the clean-up would drop, and the optimiser would eat
    init[30:44, 30:44] = 1
    locked = np.zeros(image.shape, bool)
    locked[2:6, 2:6] = True
    locked[:, :3] = True
    if options.get("mode") == "slices":
        image, init, locked = image[None], init[None], locked[None]
    res = segment(image, 2, init=init, locked=locked, **FAST, **options)
    np.testing.assert_array_equal(res.labels[locked], init[locked])


def test_locked_pixels_hold_in_a_batch_of_one_through_the_pipeline():
    image, _ = textured_disc(40)
    init = (np.arange(40)[None, :] > 20).repeat(40, 0).astype(np.int64)
    locked = np.zeros((40, 40), bool)
    locked[::7, ::5] = True
    res = segment(image, 2, init=init, locked=locked, min_piece_size=100, **FAST)
    assert (res.labels[locked] == init[locked]).all()


@pytest.mark.parametrize("call", [
    lambda im: segment(im, 3, flip=True, **FAST),
    lambda im: segment(im, 3, flip=True, maps=False, **FAST),
    lambda im: segment(im[None], 3, flip=True, mode="slices", **FAST),
    lambda im: segment_batch([im], 3, flip=True, **FAST),
])
def test_flip_with_three_regions_is_refused_on_every_path(call):
    image, _ = three_regions(40)
    with pytest.raises(KnobError, match="flip .* needs regions=2"):
        call(image)


def test_flip_swaps_the_regions_on_every_path():
    image, _ = textured_disc(40)
    plain = segment(image, 2, **FAST)
    for flipped in (segment(image, 2, flip=True, **FAST),
                    segment(image, 2, flip=True, maps=False, **FAST),
                    segment_batch([image], 2, flip=True, **FAST)[0]):
        np.testing.assert_array_equal(flipped.labels, 1 - plain.labels)


@pytest.mark.parametrize("bad, words", [
    ({"max_iter": 0}, "max_iter must be a whole number from 1"),
    ({"max_iter": -5}, "max_iter must be a whole number from 1"),
    ({"max_iter": 2.5}, "max_iter must be a whole number from 1"),
    ({"lam": float("nan")}, "lam must be a finite number"),
    ({"lam": float("inf")}, "lam must be a finite number"),
    ({"smooth_threshold": 0}, "smooth_threshold must be a whole number from 1 to 9"),
    ({"smooth_threshold": 10}, "smooth_threshold must be a whole number from 1 to 9"),
    ({"sigma": 0}, "sigma must be a finite number from 0.1"),
    ({"kernel_size": 4}, "kernel_size must be an odd whole number"),
    ({"max_size": 2}, "max_size must be a whole number from 5"),
    ({"regions": 1}, "regions must be a whole number from 2 to 64"),
    ({"regions": 65}, "regions must be a whole number from 2 to 64"),
    ({"regions": True}, "regions must be a whole number"),
    ({"preset": "fast"}, "preset must be one of"),
    ({"mode": "3d"}, "mode must be one of"),
    ({"percentile_low": 60, "percentile_high": 40}, "percentile_low"),
])
def test_degenerate_values_are_refused_before_any_work(monkeypatch, bad, words):
    started = []
    monkeypatch.setattr(pipeline, "solve_levels", lambda *a, **k: started.append(1))
    image, _ = textured_disc(32)
    regions = bad.pop("regions", 2)
    with pytest.raises(KnobError, match=words):
        segment(image, regions, device="cpu", **bad)
    with pytest.raises(KnobError, match=words):
        segment_batch([image], regions, device="cpu", **bad)
    assert not started


@pytest.mark.parametrize("init, words", [
    (np.full((32, 32), 0.5), "whole numbers"),
    (np.full((32, 32), np.nan), "whole numbers"),
    (np.full((32, 32), 2), "0..1"),
    (np.zeros((31, 32), int), "shape"),
    (np.zeros((32, 32), complex), "integers"),
])
def test_bad_init_labels_are_refused(init, words):
    image, _ = textured_disc(32)
    with pytest.raises(ValueError, match=words):
        segment(image, 2, init=init, **FAST)


def test_whole_valued_float_init_is_taken_as_labels():
    image, _ = textured_disc(32)
    init = np.zeros((32, 32))
    init[8:24, 8:24] = 1.0
    res = segment(image, 2, init=init, max_iter=1, device="cpu")
    assert res.labels.dtype == np.uint8


def test_progress_counts_to_the_total_and_the_result_is_returned():
    image, _ = textured_disc(40)
    gen = iter_segment(image, 2, **FAST)
    seen = []
    while True:
        try:
            seen.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    steps = [p for p in seen if p.phase == "optimising"]
    assert [p.iteration for p in steps] == list(range(1, result.iterations + 1))
    assert all(p.max_iterations >= FAST["max_iter"] for p in steps)
    assert seen[-1].phase == "finishing" and seen[-1].labels.shape == image.shape


def test_closing_after_a_plane_stops_the_rest_of_the_stack():
    stack = np.stack(_discs(3, 32))
    gen = iter_segment(stack, 2, mode="slices", **FAST)
    phases = []
    for snapshot in gen:
        phases.append(snapshot.phase)
        if snapshot.phase == "finishing":
            gen.close()
            break
    assert phases.count("finishing") == 1


def test_the_api_signature_lists_every_knob():
    import inspect

    from napari_iem.engine.knobs import KNOBS

    names = set(inspect.signature(segment).parameters)
    assert {k.name for k in KNOBS} <= names
    assert "References" in segment.__doc__ and "max_iter : int" in segment.__doc__
    assert not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(segment).parameters.values())


def test_a_result_records_what_made_it():
    import torch

    image, _ = textured_disc(32)
    res = segment(image, 2, max_iter=3, device="cpu")
    assert res.metadata["versions"]["torch"] == torch.__version__
    assert res.params["preset"] in ("photo", "microscopy") and res.params["max_iter"] == 3
    assert res.metadata["levels"] == [[32, 32]]


def test_check_structure_empties_a_noise_plane_and_keeps_an_object():
    rng = np.random.default_rng(3)
    noise = rng.normal(1000, 30, (64, 64)).clip(0, 65535).astype(np.uint16)
    disc, truth = textured_disc(64)
    stack = np.stack([noise, (disc.astype(np.uint16) * 8 + 1000)])
    res = segment(stack, 2, preset="microscopy", mode="slices", check_structure=True, **FAST)
    assert not res.labels[0].any()
    assert res.labels[1].any() and res.structure_found
    assert [p["found"] for p in res.metadata["structure"]] == [False, True]
    alone = segment(noise, 2, preset="microscopy", check_structure=True, **FAST)
    assert not alone.structure_found and not alone.labels.any()


def test_a_huge_image_is_refused_from_its_shape_before_any_scan(monkeypatch):
    """A 30000x30000 view of one byte: refused by the estimate, never scanned."""
    from napari_iem.engine import request

    scanned = []
    monkeypatch.setattr(request, "check_image", lambda image: scanned.append(1))
    one = np.zeros((1, 1), np.uint8)
    huge = np.lib.stride_tricks.as_strided(one, (30000, 30000), (0, 0))
    with pytest.raises(MemoryError, match="needs about"):
        segment(huge, 2, device="cpu")
    assert not scanned


def test_segment_batch_runs_images_of_one_size_as_one_batch(monkeypatch):
    sizes = []
    real = coarse_to_fine.optimize

    def spy(x, *args, **kwargs):
        sizes.append(x.shape[0])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(coarse_to_fine, "optimize", spy)
    images = _discs(4, 40)
    results = segment_batch(images, 2, preset="photo", **FAST)
    assert sizes == [4] and len(results) == 4


@pytest.mark.parametrize("side, expected", [
    (128, [None]), (181, [None]), (182, [91, None]), (249, [124, None]),
    (362, [181, None]), (363, [91, 182, None]), (600, [150, 300, None]),
])
def test_the_coarsest_level_is_the_one_nearest_the_coarse_size(side, expected):
    """Within a factor sqrt(2) of ``coarse_size``: a 249-pixel photo is solved at 124
    first (the regions at the photo preset's scale) instead of at 249 directly."""
    from napari_iem.engine.coarse_to_fine import levels

    assert levels((side // 2, side), None, 128) == expected
    assert levels((side, side), None, None) == [None]
