"""Hostile inputs to the Python API: values, types and keywords that are refused up
front with a message that says what to do, or segmented right; never silently wrong."""
import warnings

import numpy as np
import pytest

from napari_iem import segment

from synthetic import textured_disc

FAST = {"max_iter": 10, "device": "cpu"}


@pytest.mark.parametrize("image", [
    # 0..255 on top of 2**64 - 256: float64 cannot tell the values apart
    np.uint64(2**64 - 1) - textured_disc(24)[0].astype(np.uint64),
    # a span beyond float64's range: every difference overflows
    np.where(textured_disc(24)[1], 1.7e308, -1.7e308),
], ids=["uint64-near-max", "span-beyond-float64"])
def test_values_float64_cannot_hold_are_refused(image):
    kept = image.copy()
    with pytest.raises(ValueError, match="first"):
        segment(image, **FAST)
    assert np.array_equal(image, kept)


def test_a_constant_channel_far_from_zero_does_not_spoil_the_others():
    image, _ = textured_disc(24)
    near, far = (np.stack([image.astype(np.float64), np.full(image.shape, level)], -1)
                 for level in (0.0, 1e17))  # 1e17 + 1 == 1e17 in float64
    assert np.array_equal(segment(far, channel_axis=-1, **FAST).labels,
                          segment(near, channel_axis=-1, **FAST).labels)


@pytest.mark.parametrize("options, message", [
    ({"bogus": 1}, "bogus"),
    ({"method": "voronoi"}, "method"),
    ({"min_distance": 0}, "min_distance"),
    ({"spacing": (1.0, 2.0, 3.0)}, "spacing"),
], ids=["unknown", "method", "min-distance", "spacing"])
def test_instance_options_are_checked_before_any_work(options, message, monkeypatch):
    from napari_iem.engine import pipeline

    monkeypatch.setattr(pipeline, "solve_levels", None)  # any work would fail otherwise
    with pytest.raises(ValueError, match=message):
        segment(textured_disc(24)[0], instances=True, instance_options=options, **FAST)


def test_instance_options_without_instances_are_refused():
    with pytest.raises(ValueError, match="instances=True"):
        segment(textured_disc(24)[0], instance_options={"min_size": 3}, **FAST)


@pytest.mark.parametrize("scale, message", [
    ("11", "numbers"),  # was read as (1.0, 1.0)
    (2.0, "numbers"),
    ((0, 1), "positive"),
    ((-1.0, 1.0), "positive"),
    ((float("nan"), 1.0), "positive"),
    (("a", 1), "numbers"),
], ids=["text", "scalar", "zero", "negative", "nan", "not-a-number"])
def test_a_scale_that_is_not_a_spacing_is_refused_up_front(scale, message, monkeypatch):
    from napari_iem.engine import pipeline

    monkeypatch.setattr(pipeline, "_plan", None)  # refused by build_request, not later
    with pytest.raises(ValueError, match=message):
        segment(textured_disc(24)[0], scale=scale, **FAST)


@pytest.mark.parametrize("keywords, close", [
    ({"regoins": 3}, "regions"),  # a run knob
    ({"max_iters": 3}, "max_iter"),  # a parameter
    ({"channel_axes": -1}, "channel_axis"),  # a keyword of the data
], ids=["run-knob", "param-knob", "data-keyword"])
def test_a_misspelt_keyword_is_answered_with_the_close_name(keywords, close):
    with pytest.raises(TypeError, match=f"did you mean '{close}'"):
        segment(textured_disc(24)[0], **keywords, **FAST)


@pytest.mark.parametrize("keywords, close", [
    ({"preset": "micrscopy"}, "microscopy"),
    ({"preset": "Paper"}, "paper"),
    ({"mode": "slice"}, "slices"),
], ids=["typo", "case", "singular"])
def test_a_misspelt_choice_is_answered_with_the_close_one(keywords, close):
    with pytest.raises(ValueError, match=f"did you mean '{close}'"):
        segment(textured_disc(24)[0], **keywords, **FAST)


@pytest.mark.parametrize("axis", [2.0, "2", (2,)], ids=["float", "text", "tuple"])
def test_a_channel_axis_that_is_not_a_whole_number_is_named(axis):
    image = np.stack([textured_disc(24)[0]] * 2, axis=-1)
    with pytest.raises(ValueError, match="channel_axis"):
        segment(image, channel_axis=axis, **FAST)


@pytest.mark.parametrize("what", ["image", "init", "locked"])
def test_a_masked_array_with_masked_values_is_refused(what):
    image, truth = textured_disc(24)
    given = {"image": image, "init": truth.astype(int), "locked": truth.copy()}
    given[what] = np.ma.masked_array(given[what], mask=~truth)  # hidden, not gone
    image = given.pop("image")
    with pytest.raises(ValueError, match="masked"):
        segment(image, **given, **FAST)


def test_a_masked_array_with_nothing_masked_is_an_array():
    image, _ = textured_disc(24)
    masked = np.ma.masked_array(image, mask=False)
    assert np.array_equal(segment(masked, **FAST).labels, segment(image, **FAST).labels)


def test_a_tensor_numpy_cannot_read_is_a_value_error_that_says_what_to_do():
    torch = pytest.importorskip("torch")
    tensor = torch.from_numpy(textured_disc(24)[0].astype(np.float32)).requires_grad_()
    with pytest.raises(ValueError, match="detach"):
        segment(tensor, **FAST)


class Lazy:
    """An array that is read only when asked to be (dask, zarr): a shape, a dtype."""

    def __init__(self, shape):
        self.shape, self.dtype, self.read = shape, np.dtype(np.float32), False

    def __array__(self, dtype=None, copy=None):
        self.read = True
        raise AssertionError("read before the memory check")


def test_a_lazy_arrays_copy_is_counted_before_it_is_read(monkeypatch):
    from napari_iem.engine import memory, pipeline
    from napari_iem.engine.memory import NotEnoughMemoryError, estimate_bytes

    lazy = Lazy((256, 256))  # fits, but not with its float32 copy (256 KB) beside it
    one = estimate_bytes((256, 256), 1, 2, (16, 16), maps=False)
    free = (one["engine"] + one["host"] + 2 * 256 * 256) / memory.USABLE_FRACTION
    for module in (memory, pipeline):
        monkeypatch.setattr(module, "available_bytes", lambda device: int(free))
    with pytest.raises(NotEnoughMemoryError):
        segment(lazy, max_size=16, maps=False, **FAST)
    assert not lazy.read


def test_a_lazy_array_too_large_to_read_is_refused_before_it_is_read():
    from napari_iem.engine.memory import NotEnoughMemoryError

    lazy = Lazy((400_000, 400_000))  # 640 GB as float32
    with pytest.raises(NotEnoughMemoryError):
        segment(lazy, max_size=64, maps=False, **FAST)
    assert not lazy.read


def test_a_dask_array_of_unknown_size_is_refused_saying_how_to_learn_it():
    da = pytest.importorskip("dask.array")
    from napari_iem import segment_batch

    image = da.from_array(textured_disc(24)[0], chunks=12)
    rows = image[image[:, 0] >= 0]  # boolean indexing: shape (nan, 24)
    with pytest.raises(ValueError, match=r"unknown size.*compute_chunk_sizes\(\)"):
        segment(rows, **FAST)
    with pytest.raises(ValueError, match=r"^image 0: image has unknown size"):
        segment_batch([rows], **FAST)
    assert segment(rows.compute_chunk_sizes(), **FAST).labels.shape == (24, 24)


@pytest.mark.parametrize("mode", ["P", "CMYK", "HSV"])
def test_a_pil_image_whose_numbers_are_not_intensities_is_refused(mode):
    Image = pytest.importorskip("PIL.Image")
    image, _ = textured_disc(24, rgb=True)
    with pytest.raises(ValueError, match="convert"):
        segment(Image.fromarray(image).convert(mode), **FAST)


def test_a_pil_image_of_intensities_is_its_pixels():
    Image = pytest.importorskip("PIL.Image")
    image, _ = textured_disc(24, rgb=True)
    assert np.array_equal(segment(Image.fromarray(image), **FAST).labels,
                          segment(image, **FAST).labels)


@pytest.mark.skipif(np.finfo(np.longdouble).maxexp <= 1024, reason="long double is float64")
def test_values_beyond_float64_are_said_as_they_are():
    image = textured_disc(24)[0].astype(np.longdouble) * np.longdouble(10) ** 400
    with pytest.raises(ValueError, match=r"e\+4"):  # 1e+400, not inf
        segment(image, **FAST)


@pytest.mark.parametrize("images", [textured_disc(24)[0], None, "photo.png"],
                         ids=["one-image", "none", "a-name"])
def test_segment_batch_given_no_sequence_of_images_says_so(images):
    from napari_iem import segment_batch

    with pytest.raises(ValueError, match=r"segment\(image\)"):
        segment_batch(images, **FAST)


def test_a_gpu_index_the_machine_does_not_have_is_refused_like_a_missing_gpu(monkeypatch):
    import torch

    from napari_iem.engine import devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one GPU: cuda
    assert devices.available_devices()[0] == "cuda"
    with pytest.raises(ValueError, match="not available here"):
        devices.resolve_device("cuda:1")


@pytest.mark.parametrize("images", [[], [textured_disc(24)[0]]], ids=["empty", "one"])
def test_segment_batch_checks_its_keywords_once_for_every_image(images):
    from napari_iem import segment_batch
    from napari_iem.engine.knobs import KnobError

    with pytest.raises(KnobError, match="^sigma must be"):  # not 'image 0: ...'
        segment_batch(images, sigma=-1, **FAST)
    assert segment_batch([], init="kmeans", **FAST) == []


def test_a_ragged_list_is_said_to_be_no_array():
    with pytest.raises(ValueError, match="image cannot be read as a numpy array"):
        segment([[1, 2, 3]] * 5 + [[1, 2]], **FAST)


def test_a_fourth_channel_that_varies_is_not_dropped_without_a_word():
    image, truth = textured_disc(24, rgb=True)
    stain = np.concatenate([image, (truth * 200)[..., None].astype(np.uint8)], -1)
    with pytest.warns(UserWarning, match="channel_axis=-1"):
        segment(stain, **FAST)
    opaque = np.concatenate([image, np.full(truth.shape + (1,), 255, np.uint8)], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a photo's opaque alpha goes quietly
        segment(opaque, **FAST)


def _segment_by_iterating(image, **options):
    from napari_iem import iter_segment

    for _ in iter_segment(image, **options):  # the warning comes at the first step
        pass


@pytest.mark.parametrize("how", ["segment", "segment_batch", "iter_segment"])
def test_the_alpha_warning_points_at_the_callers_line(how):
    """A fixed stacklevel pointed inside napari_iem for some entry points."""
    from napari_iem import segment_batch

    image, truth = textured_disc(24, rgb=True)
    stain = np.concatenate([image, (truth * 200)[..., None].astype(np.uint8)], -1)
    call = {"segment": segment, "iter_segment": _segment_by_iterating,
            "segment_batch": lambda im, **o: segment_batch([im], **o)}[how]
    with pytest.warns(UserWarning, match="channel_axis=-1") as caught:
        call(stain, **FAST)
    assert [w.filename for w in caught] == [__file__]


@pytest.mark.parametrize("dtype", ["timedelta64[s]", "datetime64[s]", "S3", "V4"])
def test_an_image_of_no_real_numbers_is_refused_by_its_dtype(dtype):
    with pytest.raises(ValueError, match="real numbers"):  # numpy calls timedelta64 an
        segment(textured_disc(24)[0].astype(dtype), **FAST)  # integer; float() does not


def _frozen(array):
    """A read-only, non-contiguous view of a copy of ``array`` (a writer would fail)."""
    out = np.repeat(np.asarray(array), 2, axis=1)[:, ::2]
    out.flags.writeable = False
    return out


@pytest.mark.parametrize("options", [
    {}, {"preset": "paper"}, {"max_size": 16, "refine": True}, {"intensity": "sqrt"},
    {"instances": True, "min_piece_size": 5},
], ids=["default", "paper", "refine", "sqrt", "instances"])
def test_the_callers_arrays_are_never_written(options):
    image, truth = textured_disc(32, rgb=True)
    image, init, locked = _frozen(image), _frozen(truth.astype(int)), _frozen(truth)
    kept = [a.copy() for a in (image, init, locked)]
    segment(image, init=init, locked=locked, **options, **FAST)
    assert all(np.array_equal(a, b) for a, b in zip((image, init, locked), kept))


def test_the_paper_preset_commutes_with_a_transpose():
    image, _ = textured_disc(40, rgb=True, centre=(15, 22))
    a = segment(image, preset="paper", **FAST).labels
    b = segment(np.ascontiguousarray(image.transpose(1, 0, 2)), preset="paper", **FAST).labels
    assert np.array_equal(a.T, b)


def test_a_run_from_the_callers_labels_says_so():
    image, truth = textured_disc(24)
    given = segment(image, init=truth.astype(int), **FAST)
    assert given.metadata["start"] == "labels"  # params["init"] names the preset's
    assert segment(image, preset="paper", **FAST).metadata["start"] == "square"
    assert segment(image, 3, preset="paper", **FAST).metadata["start"] == "kmeans"


def test_a_torch_device_is_a_device():
    torch = pytest.importorskip("torch")
    result = segment(textured_disc(24)[0], **{**FAST, "device": torch.device("cpu")})
    assert result.device == "cpu"


@pytest.mark.parametrize("shape, mode", [((10, 10, 0), "2d"), ((0, 20, 20), "slices"),
                                         ((0,), "2d")])
def test_an_empty_input_is_said_to_be_empty_whatever_its_axes(shape, mode):
    with pytest.raises(ValueError, match="empty"):  # not 'more axes than a 2-D image'
        segment(np.zeros(shape), mode=mode, **FAST)
