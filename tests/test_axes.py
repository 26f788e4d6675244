"""n-D layouts: channel axes, RGB(A), stacks, time series; shapes of every output."""
import numpy as np
import pytest

from napari_iem import segment
from napari_iem.engine.layout import axis_sigmas, plan_layout, smooth_threshold_for

from synthetic import iou, textured_disc

FAST = {"max_iter": 30}


@pytest.mark.parametrize(
    "shape, mode, channel_axis, lead, spatial, channels, rgb",
    [
        ((48, 50), "2d", None, (), (48, 50), 1, False),
        ((48, 50, 3), "2d", None, (), (48, 50), 3, True),
        ((48, 50, 4), "2d", None, (), (48, 50), 3, True),
        ((2, 48, 50), "2d", 0, (), (48, 50), 2, False),
        ((48, 2, 50), "2d", 1, (), (48, 50), 2, False),
        ((7, 48, 50), "slices", None, (7,), (48, 50), 1, False),
        ((3, 7, 48, 50), "slices", None, (3, 7), (48, 50), 1, False),
        ((7, 48, 50, 3), "slices", None, (7,), (48, 50), 3, True),
        ((3, 2, 48, 50), "slices", 1, (3,), (48, 50), 2, False),
        ((7, 48, 50), "volume", None, (), (7, 48, 50), 1, False),
        ((3, 7, 48, 50), "volume", None, (3,), (7, 48, 50), 1, False),
        ((3, 7, 2, 48, 50), "volume", 2, (3,), (7, 48, 50), 2, False),
    ],
)
def test_plan_layout(shape, mode, channel_axis, lead, spatial, channels, rgb):
    layout = plan_layout(shape, mode, channel_axis)
    assert (layout.lead, layout.spatial, layout.channels, layout.rgb) == (
        lead, spatial, channels, rgb)
    assert layout.output_shape == lead + spatial


def test_plan_layout_errors_say_what_to_do():
    with pytest.raises(ValueError, match="mode='slices'"):
        plan_layout((5, 48, 48), "2d")
    with pytest.raises(ValueError, match="mode must be"):
        plan_layout((48, 48), "3d")
    with pytest.raises(ValueError, match="needs 3 spatial axes"):
        plan_layout((48, 48), "volume")
    with pytest.raises(ValueError, match="not an axis"):
        plan_layout((48, 48), "2d", channel_axis=2)
    with pytest.raises(ValueError, match="mode='slices'"):
        segment(np.zeros((5, 48, 48), np.uint8) + np.arange(48, dtype=np.uint8))


def test_time_series_of_planes_each_segmented():
    im, truth = textured_disc(48)
    single = segment(im, **FAST)
    stack = np.stack([im, im[::-1], im[:, ::-1]])
    res = segment(stack, mode="slices", **FAST)
    assert res.labels.shape == (3, 48, 48)
    assert res.masks.shape == (2, 3, 48, 48)
    assert res.inpainted.shape == (2, 3, 48, 48) and res.error.shape == (3, 48, 48)
    np.testing.assert_array_equal(res.labels[0], single.labels)  # same as 2-D alone
    np.testing.assert_array_equal(res.labels[1], single.labels[::-1])
    assert len(res.metadata["per_problem"]) == 3
    assert iou(res.labels[2], truth[:, ::-1]) > 0.95


def test_single_plane_through_nd_path_matches_2d_path():
    im, _ = textured_disc(48, rgb=True)
    old = segment(im, **FAST)
    new = segment(im, mode="slices", **FAST)
    np.testing.assert_array_equal(old.labels, new.labels)
    np.testing.assert_allclose(old.inpainted, new.inpainted, atol=1e-4)
    assert new.inpainted.shape == (2, 48, 48, 3)


def test_channel_axis_first_and_multichannel_time_series():
    im, truth = textured_disc(48)
    two = np.stack([im, 255 - im])  # (C, Y, X)
    res = segment(two, channel_axis=0, **FAST)
    assert res.labels.shape == (48, 48) and res.inpainted.shape == (2, 48, 48, 2)
    assert iou(res.labels, truth) > 0.95
    tcyx = np.stack([two, two])  # (T, C, Y, X)
    res = segment(tcyx, mode="slices", channel_axis=1, **FAST)
    assert res.labels.shape == (2, 48, 48)
    assert res.inpainted.shape == (2, 2, 48, 48, 2)
    np.testing.assert_array_equal(res.labels[0], res.labels[1])


def test_rgba_stack_loses_alpha():
    im, _ = textured_disc(48, rgb=True)
    rgba = np.concatenate([im, np.full(im.shape[:2] + (1,), 255, np.uint8)], -1)
    res = segment(np.stack([rgba, rgba]), mode="slices", maps=False, **FAST)
    assert res.labels.shape == (2, 48, 48)
    assert res.inpainted is None and res.error is None


def test_axis_sigmas():
    assert axis_sigmas(5.0) == 5.0
    assert axis_sigmas(5.0, (5.0, 1.0, 1.0)) == (1.0, 5.0, 5.0)
    assert axis_sigmas(5.0, (5.0, 0.5, 0.5), "physical") == (1.0, 10.0, 10.0)
    # the working grid is coarser: fewer working pixels per micrometre
    assert axis_sigmas(4.0, (1.0, 1.0), "physical", (2.0, 2.0)) == (2.0, 2.0)
    with pytest.raises(ValueError, match="scale="):
        axis_sigmas(5.0, None, "physical")
    with pytest.raises(ValueError, match="positive"):
        axis_sigmas(5.0, (0.0, 1.0))
    assert smooth_threshold_for(5, 2) == 5 and smooth_threshold_for(5, 3) == 15


def test_scale_from_a_layer_and_physical_sigma_recorded():
    im, truth = textured_disc(48)
    stack = np.stack([im, im])
    res = segment(stack, mode="slices", scale=(3.0, 0.5, 0.5), sigma=2.5,
                  sigma_units="physical", **FAST)
    assert res.metadata["scale"] == [0.5, 0.5]
    assert res.metadata["sigma_working_pixels"] == [5.0, 5.0]
    assert iou(res.labels[0], truth) > 0.95
    with pytest.raises(ValueError, match=r"give scale= one value per spatial axis \(2\) "
                                         r"or one per non-channel axis \(3\), got 1"):
        segment(stack, mode="slices", scale=(1.0,), **FAST)
    with pytest.raises(ValueError, match=r"axis \(2\), got 3$"):  # one count, said once
        segment(im, scale=(1.0, 1.0, 1.0), **FAST)


def test_a_colour_image_in_volume_mode_is_said_to_be_2d():
    """It was refused as 'image is 48x48x3 pixels; IEM needs at least 5 pixels on each
    side', its colour axis taken for X without a word."""
    im, _ = textured_disc(48, rgb=True)
    with pytest.raises(ValueError, match="a colour image is one 2-D image; segment it "
                                         "without mode='volume'"):
        segment(im, mode="volume", **FAST)


def test_16_bit_low_contrast_input():
    im, truth = textured_disc(48)
    dim = (1000 + im.astype(np.uint16) * 2).astype(np.uint16)  # 1000..1510 of 65535
    res = segment(dim, mode="slices", **FAST)
    assert iou(res.labels, truth) > 0.95
    low, high = res.metadata["value_range"]["low"][0], res.metadata["value_range"]["high"][0]
    assert 1000 <= low < high <= 1510


def test_hot_pixels_and_saturation_do_not_wreck_16_bit():
    im, truth = textured_disc(64)
    clean = (1000 + im.astype(np.uint16) * 2).astype(np.uint16)
    img = clean.copy()
    img[im > 200] = 65535  # the brightest parts of the object saturate the camera
    rng = np.random.default_rng(1)
    img.flat[rng.choice(img.size, size=img.size // 1000, replace=False)] = 65535  # hot
    base = segment(clean, **FAST)
    res = segment(img, **FAST)
    assert iou(base.labels, truth) > 0.95
    assert iou(res.labels, truth) > 0.9


def test_percentiles_are_parameters():
    im, _ = textured_disc(48)
    img = (1000 + im.astype(np.uint16) * 2).astype(np.uint16)
    res = segment(img, mode="slices", percentile_low=0.0, percentile_high=100.0, **FAST)
    assert res.metadata["value_range"]["low"][0] == img.min()
    assert res.metadata["value_range"]["high"][0] == img.max()
    assert res.params["percentile_high"] == 100.0
    with pytest.raises(ValueError, match="percentile_low"):
        segment(img, percentile_low=50.0, percentile_high=10.0, **FAST)
