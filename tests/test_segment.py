import warnings

import numpy as np
import pytest
import torch

from napari_iem import IEMResult, available_devices, iter_segment, segment, segment_batch
from synthetic import iou, textured_disc, three_regions


def test_textured_disc_is_found():
    image, truth = textured_disc(64)
    result = segment(image, 2)
    assert isinstance(result, IEMResult)
    assert result.labels.dtype == np.uint8 and result.labels.shape == truth.shape
    assert iou(result.labels == 1, truth) > 0.9


def test_off_centre_disc_is_foreground_by_the_border_rule():
    """The square start grows the background here; the border rule still calls the
    disc foreground, where the paper's rule keeps whatever grew from the square."""
    image, truth = textured_disc(64, radius=12, centre=(20, 22), seed=3)
    result = segment(image, 2)
    assert iou(result.labels == 1, truth) > 0.8


def test_three_regions():
    image, truth = three_regions(72)
    result = segment(image, 3)
    assert set(np.unique(result.labels)) == {0, 1, 2}
    for k in range(3):  # each true region is mostly one label, a different one each
        counts = np.bincount(result.labels[truth == k], minlength=3)
        assert counts.max() / counts.sum() > 0.9
    majority = [np.bincount(result.labels[truth == k], minlength=3).argmax() for k in range(3)]
    assert len(set(majority)) == 3


def test_result_fields_are_consistent():
    image, _ = textured_disc(48, rgb=True)
    r = segment(image, 2, max_iter=30)
    assert r.masks.shape == (2, 48, 48) and r.masks.dtype == bool
    assert np.array_equal(r.masks[1], r.labels == 1)
    assert r.inpainted.shape == (2, 48, 48, 3) and r.inpainted.dtype == np.float32
    assert r.error.shape == (48, 48) and (r.error >= 0).all()
    assert len(r.objective) == r.iterations <= 30
    assert r.params["regions"] == 2 and r.params["preset"] == "photo"
    assert r.device == available_devices()[0] and r.seconds > 0
    # the inpainting is in the input's units: close to the image where it is smooth
    assert 0 <= r.inpainted.min() and r.inpainted.max() <= 255


def test_flip_swaps_foreground_and_background():
    image, _ = textured_disc(48)
    a = segment(image, 2, max_iter=20)
    b = segment(image, 2, max_iter=20, flip=True)
    assert np.array_equal(a.labels, 1 - b.labels)
    assert np.array_equal(a.inpainted[0], b.inpainted[1])
    with pytest.raises(ValueError, match="regions=2"):
        segment(three_regions(40)[0], 3, max_iter=2).flipped()


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.float64])
def test_any_numeric_dtype(dtype):
    image, truth = textured_disc(64)
    integer = np.issubdtype(dtype, np.integer)
    scaled = image.astype(np.float64) * (100 if integer else 1 / 255)
    result = segment(scaled.astype(dtype), 2)
    assert iou(result.labels == 1, truth) > 0.9


@pytest.mark.parametrize("scale", [1e-300, 1e300])
@pytest.mark.parametrize("knobs", [{}, {"preset": "microscopy", "intensity": "sqrt"}])
def test_values_at_the_ends_of_float64_segment_like_any_other(scale, knobs):
    """Only the ratios of the values matter; the maps of values beyond float32's range
    saturate instead of overflowing into inf (the square roots' squares included)."""
    image, truth = textured_disc(64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = segment(image.astype(np.float64) * scale, 2, **knobs)
    assert iou(result.labels == 1, truth) > 0.9
    assert np.isfinite(result.inpainted).all() and np.isfinite(result.error).all()


def test_a_run_says_whether_it_stopped_at_the_cap_or_in_a_cycle():
    """Three ends: a fixed point, an exact cycle (more iterations would give the same
    labels: nothing to tell the user to change) and the cap (more could move them)."""
    noise = torch.rand(2, 40, 40, 3, generator=torch.Generator().manual_seed(3)).numpy()
    cycle = segment(noise[1], 2, preset="paper")  # a contour alternating from 8 on
    assert not cycle.converged and not cycle.stopped_at_cap and cycle.iterations < 150
    capped = segment(noise[1], 2, preset="paper", max_iter=1)
    assert not capped.converged and capped.stopped_at_cap
    image, _ = textured_disc(64)
    done = segment(image, 2)
    assert done.converged and not done.stopped_at_cap
    stack = segment(np.stack([noise[1], noise[1]]), 2, preset="paper", mode="slices",
                    channel_axis=-1, max_iter=1)
    assert stack.stopped_at_cap
    assert all(p["stopped_at_cap"] for p in stack.metadata["per_problem"])


def test_sixteen_bit_with_hot_pixels():
    image, truth = textured_disc(64)
    micro = image.astype(np.uint16) * 20 + 1000
    micro[5, 5] = micro[40, 10] = 65535  # hot pixels do not squash the contrast
    assert iou(segment(micro, 2).labels == 1, truth) > 0.9


def test_rgba_and_grey_channel_axis():
    image, truth = textured_disc(64, rgb=True)
    rgba = np.concatenate([image, np.full((64, 64, 1), 255, np.uint8)], axis=-1)
    assert iou(segment(rgba, 2).labels == 1, truth) > 0.9
    channels_first = np.moveaxis(image, -1, 0)
    a = segment(channels_first, 2, channel_axis=0, max_iter=10).labels
    assert np.array_equal(a, segment(image, 2, max_iter=10).labels)


def test_working_resolution_returns_full_size_labels():
    image, truth = textured_disc(128, seed=1)
    result = segment(image, 2, max_size=64)
    assert result.labels.shape == (128, 128) and result.error.shape == (128, 128)
    assert iou(result.labels == 1, truth) > 0.85


def test_batch_equals_one_by_one():
    images = [textured_disc(48, seed=s)[0] for s in range(3)] + [textured_disc(40)[0]]
    batch = segment_batch(images, 2, max_iter=40)
    for image, r in zip(images, batch):
        single = segment(image, 2, max_iter=40)
        assert np.array_equal(r.labels, single.labels)
        assert r.iterations == single.iterations


def test_generator_reports_progress_and_returns_the_result():
    image, _ = textured_disc(48)
    gen = iter_segment(image, 2, max_iter=50)
    seen = []
    try:
        while True:
            p = next(gen)
            assert p.labels.shape == (48, 48)
            if p.phase == "optimising":
                seen.append(p.iteration)
                assert np.isfinite(p.objective)
    except StopIteration as stop:
        result = stop.value
    assert seen == list(range(1, result.iterations + 1))


def test_closing_the_generator_cancels():
    image, _ = textured_disc(48)
    gen = iter_segment(image, 2, max_iter=100)
    next(gen)
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)


def test_refine_from_labels_keeps_locked_pixels():
    image, truth = textured_disc(64)
    init = truth.astype(np.uint8)
    locked = np.zeros_like(truth)
    locked[:10, :10] = True
    init[:10, :10] = 1  # a user insists the corner is foreground
    result = segment(image, 2, init=init, locked=locked, foreground="init")
    assert (result.labels[:10, :10] == 1).all()
    assert iou(result.labels == 1, truth | locked) > 0.9


def test_a_refinement_runs_coarse_to_fine_and_converges():
    """From a user's edit the run goes through the pyramid like any other run, so it
    converges in a few dozen iterations instead of travelling at full size."""
    image, truth = textured_disc(256, radius=70, rgb=True)
    first = segment(image, 2, preset="photo", maps=False)
    init = first.labels.copy()
    init[:40, :40] = 1  # a user marks a corner foreground
    locked = init != first.labels
    result = segment(image, 2, preset="photo", init=init, locked=locked, maps=False)
    assert len(result.metadata["levels"]) > 1 and result.converged
    assert result.iterations < 100
    assert (result.labels[locked] == 1).all()
    assert iou(result.labels == 1, truth | locked) > 0.9


def test_the_callers_locks_hold_on_every_level():
    """Each level starts from the caller's labels where they are locked, whatever the
    coarser level made of them, and keeps them."""
    import torch

    from napari_iem.engine.coarse_to_fine import solve_levels
    from napari_iem.engine.presets import PRESETS
    from napari_iem.engine.preprocess import resize_labels
    from napari_iem.engine.resample import downsample

    image, _ = textured_disc(128, radius=30)
    x = (image.astype(np.float32) / image.max() * 2 - 1)[None]
    inputs = [torch.from_numpy(downsample(x, (64, 64)))[None], torch.from_numpy(x)[None]]
    init = np.zeros((128, 128), np.uint8)
    init[:, :3] = 1  # a thin locked stroke: gone when the coarse level is smoothed
    locked = init.astype(bool)

    def start(shape):
        return (resize_labels(init, shape)[None],
                resize_labels(locked.view(np.uint8), shape)[None] > 0)

    gen = solve_levels(inputs, 2, PRESETS["photo"], start)
    checked = 0
    for _, state in gen:
        labels = state.labels[0].numpy()
        want, held = (a[0] for a in start(labels.shape))
        assert (labels[held] == want[held]).all()
        checked += 1
    assert checked > 2


@pytest.mark.parametrize(
    "image, kwargs, message",
    [
        (np.zeros((0, 10)), {}, "empty"),
        (np.zeros((1, 1)), {}, "constant"),
        (np.arange(4.0).reshape(2, 2), {}, "at least"),
        (np.full((20, 20), 7), {}, "constant"),
        (np.ones((20, 20), bool), {}, "every pixel is True"),  # the user's values
        (np.where(np.eye(20) > 0, np.nan, 1.0), {}, "NaN"),
        (np.full((20, 20), np.inf), {}, "infinite"),
        (np.random.rand(4, 5, 20, 20), {}, "channel_axis"),
        (np.random.rand(20, 20), {"regions": 1}, "regions"),
        (np.random.rand(20, 20), {"regions": 2.5}, "regions"),
        (np.random.rand(20, 20), {"preset": "best"}, "preset"),
        (np.random.rand(20, 20), {"device": "tpu"}, "device"),
        (np.random.rand(20, 20), {"scaling": "log"}, "scaling"),
        (np.random.rand(20, 20), {"init": np.ones((3, 3))}, "shape"),
        (np.random.rand(20, 20).astype(complex), {}, "real"),
    ],
)
def test_bad_input_gives_a_clear_error(image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        segment(image, **kwargs)


def test_unknown_parameter_is_named():
    with pytest.raises(TypeError, match="sigmaa"):
        segment(np.random.rand(20, 20), sigmaa=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_equals_cpu():
    images = [textured_disc(64, seed=s)[0] for s in range(4)]
    cpu = segment_batch(images, 2, preset="paper", device="cpu")
    gpu = segment_batch(images, 2, preset="paper", device="cuda")
    agree = np.mean([(a.labels == b.labels).mean() for a, b in zip(cpu, gpu)])
    assert agree > 0.999 and gpu[0].device.startswith("cuda")


@pytest.mark.skipif(
    not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    reason="needs Apple MPS",
)
def test_mps_equals_cpu():
    image, _ = textured_disc(64)
    a = segment(image, 2, device="cpu").labels
    b = segment(image, 2, device="mps").labels
    assert (a == b).mean() > 0.999


def test_init_by_name_or_by_labels():
    image, truth = three_regions(48)
    by_name = segment(image, 2, init="kmeans", max_iter=5)
    assert by_name.params["init"] == "kmeans"
    with pytest.raises(ValueError, match="init must be"):
        segment(image, 2, init="random")


def test_refine_keeps_the_users_label_numbers():
    """A user's labels keep their numbers: painting the background region as 1 and the
    object as 0 must not be undone by the foreground rule."""
    image, truth = textured_disc(64)
    first = segment(image, 2, max_iter=40)
    swapped = (first.labels == 0).astype(np.uint8)  # the user calls the outside "1"
    again = segment(image, 2, init=swapped, max_iter=40)
    assert again.params["foreground"] == "init"
    assert iou(again.labels == 0, truth) > 0.9


def test_a_long_thin_image_and_its_transpose_agree():
    """Strips of the first axis are capped (a 40000x8 image had 268 MB strip matrices
    and took 13x its transpose's time), and the crops of the incremental evaluation
    on an axis shorter than the filter's reach are zeros outside it (an 8x200000
    image failed with an IndexError)."""
    rng = np.random.default_rng(0)
    wide = rng.random((8, 80000))  # above the incremental evaluation's smallest size
    wide[:, :26000] += 2
    a = segment(wide, 2, maps=False)
    b = segment(np.ascontiguousarray(wide.T), 2, maps=False)
    assert np.array_equal(a.labels, b.labels.T)
    assert abs((a.labels > 0).mean() - 26000 / 80000) < 0.01


@pytest.mark.parametrize("side", [5, 6, 8])
def test_the_smallest_images_keep_their_two_halves(side):
    """An image of a few pixels a side with two halves of different brightness is
    split in two (zero-padded smoothing eroded both regions away at 8x8), and the
    same size of noise is still called empty."""
    rng = np.random.default_rng(0)
    image = rng.random((side, side))
    image[:, : side // 2] += 2
    labels = segment(image, 2, maps=False).labels
    assert set(np.unique(labels[:, : side // 2])) == {1} and labels[:, side // 2:].max() == 0
    assert not segment(rng.random((side, side)), 2, maps=False).labels.any()
