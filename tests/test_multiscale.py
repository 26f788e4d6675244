"""Coarse-to-fine: working resolution, carried-up labels, full-resolution band refinement."""
import numpy as np

from napari_iem import segment
from napari_iem.engine.multiscale import band_width, boundary_band, refine_boundary, tile_boxes
from napari_iem.engine.preprocess import prepare_image, resize_labels
from napari_iem.engine.presets import get_preset

from synthetic import iou, textured_ball, textured_disc


def test_band_and_tiles():
    labels = np.zeros((20, 20), np.uint8)
    labels[5:15, 5:15] = 1
    band = boundary_band(labels, 2)
    assert band[4, 10] and band[7, 10] and band[2, 10] and not band[1, 10]
    assert not band[10, 10]  # the centre is 5 px from the edge
    assert band_width((4096, 4096), (512, 512)) == 9
    covered = np.zeros((50, 70), int)
    for outer, core in tile_boxes(covered.shape, 16, 3):
        covered[outer][core] += 1
    assert (covered == 1).all()


def test_refinement_recovers_full_resolution_edges():
    im, truth = textured_disc(192, seed=1)
    coarse = segment(im, max_size=48, max_iter=30, maps=False)
    fine = segment(im, max_size=48, refine=True, max_iter=30, maps=False)
    assert iou(coarse.labels, truth) < 0.97
    assert iou(fine.labels, truth) > 0.99
    assert fine.metadata["refine"]["width"] == 5


def test_only_boundary_tiles_run_and_locked_pixels_stay():
    im, truth = textured_disc(192, seed=1)
    params = get_preset("photo")
    data = prepare_image(im, params).data
    coarse = resize_labels(resize_labels(truth.astype(np.int64), (48, 48)), (192, 192))
    refined, info = refine_boundary(data, coarse, 2, params, width=5, tile=32)
    assert info["tiles"] < info["tiles_total"] == 36
    assert iou(refined, truth) > iou(coarse, truth)
    band = boundary_band(coarse, 5)
    np.testing.assert_array_equal(refined[~band], coarse[~band])


def test_volume_refinement():
    vol, truth = textured_ball((16, 48, 48), radius=12)
    coarse = segment(vol, mode="volume", max_size=24, max_iter=20, maps=False)
    fine = segment(vol, mode="volume", max_size=24, refine=True, max_iter=20, maps=False)
    assert fine.labels.shape == vol.shape
    assert iou(fine.labels, truth) > iou(coarse.labels, truth)


def test_refinement_reports_progress_per_batch():
    from napari_iem.engine.multiscale import iter_refine_boundary

    im, truth = textured_disc(192, seed=1)
    params = get_preset("photo")
    data = prepare_image(im, params).data
    coarse = resize_labels(resize_labels(truth.astype(np.int64), (48, 48)), (192, 192))
    gen = iter_refine_boundary(data, coarse, 2, params, width=5, tile=32)
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        labels, info = stop.value
    assert steps[-1] == (36, 36) and all(t == 36 for _, t in steps)
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    whole, _ = refine_boundary(data, coarse, 2, params, width=5, tile=32)
    np.testing.assert_array_equal(labels, whole)
