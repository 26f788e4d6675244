"""The IEM dock widget in a real napari viewer (needs a display: pytest-xvfb)."""
import time

import numpy as np
import pytest

from napari_iem._napari import layers as _layers
from napari_iem._napari import widget as _widget
from napari_iem._napari.form import PRESET_START
from napari_iem._napari.sample_data import textured_disc
from napari_iem.api import iter_segment

SIZE = 64
TIMEOUT_MS = 30_000
pytestmark = pytest.mark.gui


def disc_truth(size=SIZE):
    yy, xx = np.mgrid[:size, :size] / size
    return (yy - 0.5) ** 2 + (xx - 0.45) ** 2 < 0.3**2


def click_and_wait(qtbot, widget, button):
    button.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)


def iem_layers(viewer):
    return [layer for layer in viewer.layers if "IEM" in layer.name]


def test_widget_opens_through_manifest(viewer_widget):
    viewer, widget = viewer_widget
    assert isinstance(widget, _widget.IEMWidget)
    assert widget.run_button.text() == "Run"
    c = widget.controls
    assert (c["regions"].min, c["regions"].max) == (2, 64)  # what the API accepts
    assert c["device"].choices[0] == "auto" and "cpu" in c["device"].choices
    assert widget.image.value is None
    assert not widget.advanced.isExpanded()
    from qtpy.QtWidgets import QProgressBar

    assert not widget.findChildren(QProgressBar)  # progress is in the activity dock
    c["sigma"].value = 2.0
    c["preset"].value = "paper"
    assert c["sigma"].value == 5.0


def test_run_adds_one_calibrated_labels_layer(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(
        textured_disc(SIZE), name="disc", scale=(2.0, 0.5), translate=(10, -4),
        units=("um", "um"),
    )
    click_and_wait(qtbot, widget, widget.run_button)
    assert [la.name for la in viewer.layers] == ["disc", "disc IEM"]  # nothing else

    labels = viewer.layers["disc IEM"]
    assert labels.data.shape == (SIZE, SIZE) and labels.data.dtype == np.uint8
    np.testing.assert_allclose(labels.scale, (2.0, 0.5))
    np.testing.assert_allclose(labels.translate, (10, -4))
    assert [str(u) for u in labels.units] == ["micrometer", "micrometer"]
    info = labels.metadata["iem"]
    assert info["device"] == "cpu" and info["params"]["max_iter"] == 30
    assert 0 < info["iterations"] <= 30 and info["seconds"] > 0
    truth = disc_truth()
    fg = labels.data == 1
    assert (fg & truth).sum() / (fg | truth).sum() > 0.8
    assert widget.run_button.text() == "Run"


def test_a_mirrored_layer_runs(viewer_widget, qtbot, errors):
    """A negative scale (napari's way to flip an axis) is a pixel size of its
    magnitude: the run is not refused, and the output is mirrored like the image."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc", scale=(-2.0, 0.5))
    click_and_wait(qtbot, widget, widget.run_button)
    assert errors == []
    np.testing.assert_allclose(viewer.layers["disc IEM"].scale, (-2.0, 0.5))


def test_outputs_overlay_a_rotated_sheared_image(viewer_widget, qtbot, errors):
    """A layer placed by rotate, shear and affine (not only scale and translate):
    every output (labels, maps, instances) puts each pixel where the image has it."""
    viewer, widget = viewer_widget
    image = viewer.add_image(textured_disc(SIZE), name="disc", scale=(2.0, 0.5),
                             translate=(10, -4), rotate=30, shear=[0.2],
                             affine=np.array([[1.0, 0.1, 3], [0, 1.5, 0], [0, 0, 1]]))
    widget.show_why.value = True
    widget.controls["instances"].value = True
    click_and_wait(qtbot, widget, widget.run_button)
    assert errors == []
    corner = (SIZE - 1, 7)
    for layer in iem_layers(viewer):
        np.testing.assert_allclose(layer.data_to_world(corner), image.data_to_world(corner),
                                   err_msg=layer.name)


@pytest.mark.parametrize("rotate", [0, 30])
def test_maps_of_a_pyramid_level_overlay_it(viewer_widget, qtbot, errors, rotate):
    """A run on a coarser level of a layer of unequal pixel sizes runs (its sigma is
    per axis at level 0), and its maps, drawn at that level, overlay the image: each
    pixel's centre shift, (f - 1) / 2 level-0 pixels, turns with the layer."""
    viewer, widget = viewer_widget
    image = textured_disc(2 * SIZE)
    source = viewer.add_image([image, image[::2, ::2]], multiscale=True, name="pyr",
                              contrast_limits=(0, 1), scale=(2.0, 0.5), rotate=rotate)
    widget.controls["max_size"].value = SIZE  # level 1
    widget.show_why.value = True
    click_and_wait(qtbot, widget, widget.run_button)
    assert errors == []
    error = viewer.layers["pyr IEM error"]
    np.testing.assert_allclose(error.data_to_world((5, 9)),
                               source.data_to_world((5 * 2 + 0.5, 9 * 2 + 0.5)))


def test_show_why_adds_hidden_maps(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc", scale=(2.0, 0.5))
    widget.show_why.value = True
    click_and_wait(qtbot, widget, widget.run_button)
    for k in (0, 1):
        inpainted = viewer.layers[f"disc IEM inpainted {k}"]
        assert inpainted.data.shape == (SIZE, SIZE) and not inpainted.visible
        np.testing.assert_allclose(inpainted.scale, (2.0, 0.5))
    error = viewer.layers["disc IEM error"]
    assert error.colormap.name == "magma" and not error.visible
    assert "disc IEM preview" not in viewer.layers


def test_rgb_and_three_partitions(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    grey = textured_disc(48)
    viewer.add_image(np.stack([grey, 1 - grey, grey], -1), name="rgb", rgb=True)
    widget.controls["regions"].value = 3
    widget.show_why.value = True
    click_and_wait(qtbot, widget, widget.run_button)
    assert viewer.layers["rgb IEM"].data.shape == (48, 48)
    assert viewer.layers["rgb IEM"].data.max() <= 2
    assert viewer.layers["rgb IEM inpainted 2"].data.shape == (48, 48, 3)
    assert viewer.layers["rgb IEM inpainted 2"].rgb


def slow_engine(*args, **kwargs):
    """The real engine, then the last progress forever, until closed."""
    last = None
    for last in iter_segment(*args, **kwargs):
        yield last
    while True:
        time.sleep(0.01)  # spare the CPU; no timing is asserted
        yield last


def test_cancel_stops_and_leaves_no_layer(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    monkeypatch.setattr(_widget, "iter_segment", slow_engine)
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.run_button.click()
    assert widget.run_button.text() == "Cancel"
    assert not widget.refine_button.isEnabled()
    qtbot.waitUntil(lambda: "disc IEM preview" in viewer.layers, timeout=TIMEOUT_MS)
    worker = widget.worker
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        widget.run_button.click()
    assert worker.abort_requested and not widget.running
    assert iem_layers(viewer) == []
    assert widget.run_button.text() == "Run" and widget.refine_button.isEnabled()


def test_refine_of_labels_beyond_the_partitions_notifies(viewer_widget, qtbot, errors):
    """A label painted outside 0..partitions-1 (the brush's next label, or fewer
    partitions chosen since) is said before any run starts, with what to do."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    click_and_wait(qtbot, widget, widget.run_button)
    labels = viewer.layers["disc IEM"]
    painted = labels.data.copy()
    painted[:5, :5] = 5
    labels.data = painted
    widget.refine_button.click()
    assert not widget.running and len(errors) == 1
    assert "label 5" in widget.status.text() and "partitions to 6" in widget.status.text()
    np.testing.assert_array_equal(labels.data, painted)


def test_refine_keeps_painted_pixels(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    click_and_wait(qtbot, widget, widget.run_button)
    labels = viewer.layers["disc IEM"]
    assert not labels.data[:10, :10].any()

    painted = labels.data.copy()
    painted[:10, :10] = 1  # the user marks a background corner as foreground
    labels.data = painted
    click_and_wait(qtbot, widget, widget.refine_button)
    assert viewer.layers["disc IEM"] is labels
    assert len([la for la in viewer.layers if _layers.is_iem_output(la)]) == 1
    assert labels.data[:10, :10].all()
    assert not _layers.is_edited(labels)

    click_and_wait(qtbot, widget, widget.refine_button)  # a second round
    assert labels.data[:10, :10].all()


@pytest.mark.parametrize("button", ["refine_button", "flip_button"])
def test_undo_after_a_plugin_write_leaves_its_labels(viewer_widget, qtbot, button):
    """Ctrl-Z replays a brush stroke's old values: after Refine or Flip rewrote the
    layer, they would be stamped over the new labels, a mix of two results that
    Refine then took for the user's edits. The plugin's write ends the history."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    click_and_wait(qtbot, widget, widget.run_button)
    labels = viewer.layers["disc IEM"]
    labels.brush_size = 9
    labels.paint((8, 8), 1)  # a stroke through napari's undo history
    labels.paint((SIZE // 2, SIZE // 2), 0)
    click_and_wait(qtbot, widget, getattr(widget, button))
    written = labels.data.copy()
    labels.undo()
    np.testing.assert_array_equal(labels.data, written)


def test_init_from_labels_layer_without_locks(viewer_widget, qtbot):
    """The control for the test above: the painted corner alone does not survive."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    start = disc_truth().astype(np.uint8)
    start[:10, :10] = 1
    viewer.add_labels(start, name="my start")
    widget.init.value = viewer.layers["my start"]
    click_and_wait(qtbot, widget, widget.run_button)
    assert not viewer.layers["disc IEM"].data[:10, :10].any()
    np.testing.assert_array_equal(viewer.layers["my start"].data, start)


def test_picker_follows_added_removed_renamed_layers(viewer_widget):
    viewer, widget = viewer_widget
    a = viewer.add_image(textured_disc(32), name="a")
    viewer.add_image(textured_disc(32), name="b")
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="seeds")
    assert widget.image.choices == (a, viewer.layers["b"])
    a.name = "renamed"
    names = {widget.image.native.itemText(i) for i in range(widget.image.native.count())}
    assert names == {"renamed", "b"}
    assert widget.image.value is a
    viewer.layers.remove("b")
    assert widget.image.choices == (a,)
    assert widget.init.choices == (PRESET_START, viewer.layers["seeds"])


def test_user_edited_layer_survives_rerun(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.show_why.value = True
    click_and_wait(qtbot, widget, widget.run_button)
    first = viewer.layers["disc IEM"]
    before = len(viewer.layers)
    click_and_wait(qtbot, widget, widget.run_button)  # unedited: updated in place
    assert viewer.layers["disc IEM"] is first
    assert len(viewer.layers) == before  # a rerun adds no layer

    edited = first.data.copy()
    edited[30:34, :] = 0
    first.data = edited
    click_and_wait(qtbot, widget, widget.run_button)
    np.testing.assert_array_equal(first.data, edited)
    second = viewer.layers["disc IEM [1]"]
    assert second is not first and _layers.is_iem_output(second)
    assert "disc IEM [1] error" in viewer.layers

    second.name = "mine"  # renamed, not painted: kept as the user's too
    kept = second.data.copy()
    widget.controls["max_iter"].value = 3  # a different result
    click_and_wait(qtbot, widget, widget.run_button)
    assert viewer.layers["mine"] is second
    np.testing.assert_array_equal(second.data, kept)
    third = viewer.layers["disc IEM [1]"]  # the name is free again
    assert third is not second and _layers.is_iem_output(third)


def test_outputs_follow_a_renamed_image(viewer_widget, qtbot, errors):
    """The plugin names an output after its image: once the image is renamed, the
    output it updates (and its maps) take the new name, so that 'disc IEM' is not
    left over the labels of 'cells'; Refine still finds it."""
    viewer, widget = viewer_widget
    image = viewer.add_image(textured_disc(SIZE), name="disc")
    widget.show_why.value = True
    click_and_wait(qtbot, widget, widget.run_button)
    first = viewer.layers["disc IEM"]
    image.name = "cells"
    click_and_wait(qtbot, widget, widget.run_button)
    assert [la.name for la in iem_layers(viewer)] == [
        "cells IEM", "cells IEM inpainted 0", "cells IEM inpainted 1", "cells IEM error"]
    assert viewer.layers["cells IEM"] is first and not _layers.is_renamed(first)
    click_and_wait(qtbot, widget, widget.refine_button)
    assert errors == [] and viewer.layers["cells IEM"] is first


def test_flip_swaps_regions_and_inpaintings(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    toasts = []
    monkeypatch.setattr(_widget, "show_info", toasts.append)
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.show_why.value = True
    click_and_wait(qtbot, widget, widget.run_button)
    labels = viewer.layers["disc IEM"]
    before = labels.data.copy()
    region0 = viewer.layers["disc IEM inpainted 0"].data.copy()
    widget.flip_button.click()
    np.testing.assert_array_equal(labels.data, 1 - before)
    np.testing.assert_array_equal(viewer.layers["disc IEM inpainted 1"].data, region0)
    assert not _layers.is_edited(labels)
    assert toasts == ["IEM: flipped 'disc IEM'"]  # fits its toast


@pytest.mark.parametrize("replace", [
    lambda data: np.where(data == 0, -1, data).astype(np.int64),  # negative labels
    lambda data: np.zeros((SIZE // 2, SIZE), np.int64),  # another shape
], ids=["negative", "reshaped"])
def test_flip_refuses_data_the_user_replaced(viewer_widget, qtbot, errors, replace):
    """Flip swaps 0 and 1: on labels the user replaced by other values or another
    shape it would make up labels (1 - -1 = 2), so it says why and changes nothing."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    click_and_wait(qtbot, widget, widget.run_button)
    labels = viewer.layers["disc IEM"]
    labels.data = replace(np.asarray(labels.data))
    before = labels.data.copy()
    widget.flip_button.click()
    np.testing.assert_array_equal(labels.data, before)
    assert len(errors) == 1 and "run IEM again" in widget.status.text()


def test_displayed_plane_of_a_stack(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    stack = np.zeros((3, 48, 48), np.float32)
    stack[2] = textured_disc(48)
    viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 2)
    click_and_wait(qtbot, widget, widget.run_button)
    labels = viewer.layers["stack IEM"]
    assert labels.data.shape == (3, 48, 48)  # on its plane, not over the whole stack
    assert labels.metadata["iem"]["plane"] == [2]
    assert 0 < labels.data[2].mean() < 1
    assert not labels.data[:2].any()


def test_no_image_notifies(viewer_widget, errors):
    viewer, widget = viewer_widget
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="only labels")
    widget.run_button.click()
    assert not widget.running and len(errors) == 1
    assert "Image layer" in errors[0]
    widget.refine_button.click()
    assert len(errors) == 2
    assert len(viewer.layers) == 1


def test_init_from_a_multiscale_labels_layer(viewer_widget, qtbot, errors):
    """Its level 0 is the start (its coarsest level was taken, and refused as of
    another shape than the layer has)."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    start = disc_truth().astype(np.uint8)
    viewer.add_labels([start, start[::2, ::2]], multiscale=True, name="pyramid")
    widget.init.value = viewer.layers["pyramid"]
    click_and_wait(qtbot, widget, widget.run_button)
    assert errors == []
    assert viewer.layers["disc IEM"].data.shape == (SIZE, SIZE)


def test_init_of_wrong_shape_notifies(viewer_widget, errors):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    viewer.add_labels(np.zeros((10, 10), np.uint8), name="small")
    widget.init.value = viewer.layers["small"]
    widget.run_button.click()
    assert not widget.running and "shape" in errors[0]
    assert len(viewer.layers) == 2


def test_engine_value_error_notifies_and_changes_nothing(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    viewer.add_labels(np.full((SIZE, SIZE), 5, np.uint8), name="bad")
    widget.init.value = viewer.layers["bad"]
    click_and_wait(qtbot, widget, widget.run_button)
    assert len(errors) == 1 and "0..1" in widget.status.text()
    assert iem_layers(viewer) == []


def test_out_of_memory_notifies(viewer_widget, qtbot, errors, monkeypatch):
    def oom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield

    viewer, widget = viewer_widget
    monkeypatch.setattr(_widget, "iter_segment", oom)
    viewer.add_image(textured_disc(SIZE), name="disc")
    click_and_wait(qtbot, widget, widget.run_button)
    assert len(errors) == 1 and "lower max size" in errors[0]
    assert iem_layers(viewer) == []
    assert widget.run_button.text() == "Run"


def test_stack_in_3d_display_notifies(viewer_widget, errors):
    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((3, 32, 32), np.float32), name="stack")
    viewer.dims.ndisplay = 3
    widget.run_button.click()
    assert not widget.running and "2-D display" in errors[0]
    assert "last two axes" in widget.status.text()
    assert len(viewer.layers) == 1
