"""3-D: one volume as one problem (3-D Gaussian, 6-neighbour band, 3x3x3 smoothing)."""
import numpy as np

from napari_iem import segment

from synthetic import iou, textured_ball

FAST = {"max_iter": 30}


def test_textured_ball_in_a_volume():
    vol, truth = textured_ball((32, 40, 40), radius=10)
    res = segment(vol, mode="volume", **FAST)
    assert res.labels.shape == vol.shape and res.labels.dtype == np.uint8
    assert res.error.shape == vol.shape and res.inpainted.shape == (2, *vol.shape)
    assert iou(res.labels, truth) > 0.9
    assert res.metadata["smooth_threshold_used"] == 15  # 5 of 9 -> 15 of 27
    assert res.metadata["working_shape"] == [32, 40, 40]


def test_anisotropic_stack_uses_the_scale():
    # z step twice the xy step: a physical ball is squashed to half height in voxels
    zz, yy, xx = np.mgrid[:20, :40, :40]
    truth = ((zz - 10) * 2.0) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 11**2
    rng = np.random.default_rng(0)
    vol = np.where(truth, 180 + 30 * np.sin(xx / 1.5), 70) + 15 * rng.standard_normal(truth.shape)
    vol = vol.astype(np.float32)
    res = segment(vol, mode="volume", scale=(2.0, 1.0, 1.0), **FAST)
    assert res.params["preset"] == "microscopy"  # "default" on a float volume: sigma 2
    assert res.metadata["sigma_working_pixels"] == [1.0, 2.0, 2.0]
    assert iou(res.labels, truth) > 0.85


def test_time_series_of_volumes():
    vol, truth = textured_ball((16, 32, 32), radius=8)
    tzyx = np.stack([vol, vol[:, ::-1]])
    res = segment(tzyx, mode="volume", maps=False, **FAST)
    assert res.labels.shape == tzyx.shape
    assert iou(res.labels[0], truth) > 0.85
    np.testing.assert_array_equal(res.labels[1], res.labels[0][:, ::-1])
    assert [p["index"] for p in res.metadata["per_problem"]] == [[0], [1]]


def test_volume_and_slices_modes_differ_in_kind():
    vol, _ = textured_ball((16, 32, 32), radius=8)
    slices = segment(vol, mode="slices", maps=False, **FAST)
    assert slices.labels.shape == vol.shape
    assert slices.metadata["smooth_threshold_used"] == 5
    assert slices.metadata["problems"] == 16
