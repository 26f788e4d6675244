"""The quality defaults: Lab colour, preset="default" picking per image, and the paper
preset left alone."""
import numpy as np
import pytest
from skimage import data
from skimage.filters import gaussian

from napari_iem import segment
from napari_iem.engine.autopreset import (MAX_CENTRE_CONTRAST, centre_contrast, choose_preset,
                                   explain_choice, group_by_preset)
from napari_iem.engine.colour import MIN_SPAN
from napari_iem.engine.presets import PRESETS, IEMParams, get_preset
from napari_iem.engine.preprocess import prepare_image, settle_intensity
from napari_iem.api import segment_batch

from synthetic import iou, textured_disc

FAST = dict(max_iter=40)


def colour_disc(size=64, seed=0):
    """A disc that differs from its background in hue only (same grey level)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    img = np.empty((size, size, 3))
    img[:] = (120, 150, 100)
    img[truth] = (150, 120, 130)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), truth


def many_blobs(size=128, seed=0, rgb=False):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = np.zeros((size, size), bool)
    for cy, cx in rng.integers(8, size - 8, (20, 2)):
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 < 16
    grey = np.where(truth, 200.0, 30.0) + rng.normal(0, 5, truth.shape)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    if rgb:  # stained look: purple objects on pink
        img = np.stack([np.where(truth, 110, 235), np.where(truth, 60, 190),
                        np.where(truth, 150, 215)], -1) + rng.normal(0, 4, (size, size, 3))
        return np.clip(img, 0, 255).astype(np.uint8), truth
    return grey, truth


def test_paper_preset_is_the_papers_algorithm():
    p = get_preset("paper")
    assert (p.smooth_threshold, p.init, p.colour, p.foreground, p.scaling) == (
        4, "square", "rgb", "init", "paper")
    assert (p.kernel_size, p.sigma, p.reps, p.lam, p.max_iter, p.max_size) == (
        11, 5.0, 2, 1e-3, 150, None)
    assert IEMParams().colour == "rgb"  # new fields default to the paper's behaviour


def test_lab_scales_each_channel_and_returns_rgb_maps():
    img, truth = colour_disc()
    lab = prepare_image(img, get_preset("photo"))
    rgb = prepare_image(img, get_preset("paper"))
    assert lab.lab_scale == 255.0 and rgb.lab_scale is None
    assert lab.data.min() >= -1 and lab.data.max() <= 1
    assert np.all(lab.high - lab.low >= MIN_SPAN - 1e-9)
    res = segment(img, preset="photo", **FAST)
    assert res.inpainted.shape == (2, 64, 64, 3)
    # maps come back in the input's RGB units, near the two colours
    assert 0 <= res.inpainted.min() and res.inpainted.max() <= 255.5
    assert iou(res.labels > 0, truth) > 0.9


def test_lab_leaves_non_rgb_images_alone():
    img, _ = textured_disc(48)
    a = prepare_image(img, get_preset("photo"))
    b = prepare_image(img, get_preset("photo").replace(colour="rgb"))
    np.testing.assert_array_equal(a.data, b.data)
    three = np.stack([img] * 3, -1).astype(np.uint16)  # 16-bit: stains, not colour
    assert prepare_image(three, get_preset("photo")).lab_scale is None
    with pytest.raises(ValueError, match="colour"):
        prepare_image(img[..., None].repeat(3, -1), get_preset("photo").replace(
            colour="hsv"))


def test_auto_chooses_from_dtype_channels_and_statistics():
    photo, _ = colour_disc()
    grey, _ = many_blobs()
    stained, _ = many_blobs(rgb=True)
    assert choose_preset(photo) == "photo"
    assert choose_preset(grey) == "microscopy"  # single channel
    assert choose_preset(np.stack([grey] * 3, -1)) == "microscopy"  # grey stored as RGB
    assert choose_preset(photo.astype(np.uint16) * 200) == "microscopy"  # 16-bit
    assert choose_preset(stained) == "microscopy"  # many small objects, none dominant
    assert group_by_preset([photo, grey, photo]) == {"photo": [0, 2], "microscopy": [1]}
    assert "grey picture stored as RGB" in explain_choice(np.stack([grey] * 3, -1))[1]
    assert "uint16" in explain_choice(photo.astype(np.uint16))[1]


def test_auto_reads_the_centre_against_the_frame():
    """Stained tissue whose dark stain is one network over the whole field (no many
    separate objects) is a micrograph: its centre looks like its frame.  The same two
    colours with the stain gathered in the middle are a photo of one object."""
    rng = np.random.default_rng(1)
    field = gaussian(rng.normal(size=(128, 128)), 8)
    stain = field > np.quantile(field, 0.55)  # 45 % of the field in three pieces
    purple, pink = np.array([110, 60, 150]), np.array([235, 190, 215])
    noise = rng.normal(0, 4, (128, 128, 3))
    tissue = np.clip(np.where(stain[..., None], purple, pink) + noise, 0, 255).astype(np.uint8)
    assert centre_contrast(tissue) < MAX_CENTRE_CONTRAST
    assert choose_preset(tissue) == "microscopy"
    yy, xx = np.mgrid[:128, :128]
    middle = (yy - 64) ** 2 + (xx - 64) ** 2 < 35**2
    photo = np.clip(np.where(middle[..., None], purple, pink) + noise, 0, 255).astype(np.uint8)
    assert centre_contrast(photo) > 0.2 and choose_preset(photo) == "photo"
    assert choose_preset(photo[:1, :1]) == "photo"  # no frame to compare: no crash


def test_auto_preset_is_recorded_and_overridable():
    grey, truth = many_blobs()
    res = segment(grey, **FAST)  # preset="default"
    assert res.params["preset"] == "microscopy"
    assert res.params["init"] == "kmeans"
    assert iou(res.labels > 0, truth) > 0.8
    forced = segment(grey, preset="photo", **FAST)
    assert forced.params["preset"] == "photo" and forced.params["init"] == "square"
    photo, _ = colour_disc()
    batch = segment_batch([grey, photo], preset="default", **FAST)
    assert [r.params["preset"] for r in batch] == ["microscopy", "photo"]
    np.testing.assert_array_equal(batch[0].labels, res.labels)


def test_preset_names_and_the_old_auto_alias():
    assert {"default", "photo", "microscopy", "paper"} == set(PRESETS)
    assert get_preset("auto") is get_preset("default")  # its name during development
    grey, _ = many_blobs()
    assert segment(grey, preset="auto", **FAST).params["preset"] == "microscopy"
    with pytest.raises(ValueError, match="choose one of"):
        get_preset("photos")


def test_sqrt_intensity_lifts_the_dim_end_and_maps_back():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 4000, (40, 40)).astype(np.uint16)
    img[0, 0], img[0, 1] = 0, 3999
    linear = get_preset("microscopy").replace(intensity="linear")
    root = prepare_image(img, linear.replace(intensity="sqrt"))
    flat = prepare_image(img, linear)
    assert root.sqrt_zero == 0.0 and flat.sqrt_zero is None
    dim = img == np.sort(img.ravel())[img.size // 10]  # a dim pixel: the root lifts it
    assert root.data[0][dim].min() > flat.data[0][dim].max() + 0.1
    # maps on the [-1, 1] scale come back in input units, for both rules
    for prepared in (root, flat):
        back = prepared.to_input_units(prepared.data[None])[0]
        inside = (img >= prepared.low[0]) & (img <= prepared.high[0])
        np.testing.assert_allclose(back[inside], img[inside], rtol=1e-4, atol=0.05)
    with pytest.raises(ValueError, match="intensity must be one of 'linear', 'sqrt', 'auto'"):
        prepare_image(img, linear.replace(intensity="log"))


def test_sqrt_counts_from_the_low_end_of_negative_data():
    img = np.linspace(-50.0, 50.0, 400).reshape(20, 20)
    prepared = prepare_image(img, get_preset("microscopy").replace(intensity="sqrt"))
    assert prepared.sqrt_zero == pytest.approx(prepared.low[0])
    assert np.isfinite(prepared.data).all()
    back = prepared.to_input_units(prepared.data[None])[0]
    inside = (img >= prepared.low[0]) & (img <= prepared.high[0])
    np.testing.assert_allclose(back[inside], img[inside], atol=1e-3)


def test_grey_stored_as_rgb_is_one_channel_with_rgb_maps():
    grey, truth = many_blobs()
    rgb = np.stack([grey] * 3, -1)
    prepared = prepare_image(rgb, get_preset("microscopy"))
    assert prepared.data.shape[0] == 1 and prepared.lab_scale is None
    np.testing.assert_array_equal(prepared.data, prepare_image(grey, get_preset(
        "microscopy")).data)
    res = segment(rgb, preset="microscopy", **FAST)
    assert res.inpainted.shape == (2, *grey.shape, 3)
    assert np.array_equal(res.inpainted[..., 0], res.inpainted[..., 2])
    assert iou(res.labels > 0, truth) > 0.8


def test_area_rule_calls_the_larger_region_background():
    """A disc filling most of the frame without touching its edge: the border rule calls
    it foreground, the area rule background; with many small blobs both agree."""
    image, truth = textured_disc(64, radius=27)
    assert truth.mean() > 0.5
    border = segment(image, 2, foreground="border", **FAST)
    area = segment(image, 2, foreground="area", **FAST)
    assert iou(border.labels == 1, truth) > 0.9
    assert iou(area.labels == 0, truth) > 0.9
    grey, blobs = many_blobs()
    for rule in ("border", "area"):
        res = segment(grey, preset="microscopy", foreground=rule, **FAST)
        assert iou(res.labels > 0, blobs) > 0.8
    with pytest.raises(ValueError, match="foreground must be one of"):
        segment(image, 2, foreground="middle", **FAST)


def test_auto_intensity_roots_dark_field_only():
    """Fluorescence (bright blobs on a near-black floor) gets the root; a phase-contrast
    image (mid-grey background, a dark halo round a bright cell) stays linear: under the
    root the halo, not the cell, would become the foreground."""
    grey, truth = many_blobs()  # background 30, blobs 200 of 255
    phase = data.cell()  # bundled with scikit-image: background 68, halo 21, cell 182
    yy, xx = np.mgrid[: phase.shape[0], : phase.shape[1]]
    r2 = (yy - 375) ** 2 + (xx - 430) ** 2  # the cell is a disc of radius ~60 there
    auto = get_preset("microscopy")
    assert auto.intensity == "auto"
    assert settle_intensity(auto, grey).intensity == "sqrt"
    assert settle_intensity(auto, phase).intensity == "linear"
    assert prepare_image(grey, auto).sqrt_zero == 0.0
    assert prepare_image(phase, auto).sqrt_zero is None
    res = segment(grey, preset="microscopy", **FAST)
    assert res.params["intensity"] == "sqrt"  # what ran is recorded
    assert iou(res.labels > 0, truth) > 0.8
    cell = segment(phase, preset="microscopy", max_size=256, **FAST)
    assert cell.params["intensity"] == "linear"
    assert (cell.labels > 0)[r2 < 50**2].mean() > 0.95  # the bright cell...
    assert (cell.labels > 0)[(r2 > 75**2) & (r2 < 90**2)].mean() < 0.05  # ...not its halo
    stack = np.stack([grey, grey // 2])
    assert segment(stack, mode="slices", preset="microscopy", maps=False,
                   **FAST).params["intensity"] == "sqrt"
    batch = segment_batch([grey, phase], preset="microscopy", **FAST)
    assert [r.params["intensity"] for r in batch] == ["sqrt", "linear"]
    assert settle_intensity(auto, np.zeros((0, 4))).intensity == "auto"  # left to check_image
