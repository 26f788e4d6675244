"""The dock widget on stacks, channels, physical scale and instances (pytest-xvfb)."""
import numpy as np
import pytest
from synthetic import textured_ball, textured_disc, touching_discs

from napari_iem._napari import layers as _layers
from napari_iem._napari import layers_nd as _layers_nd
from napari_iem._napari import widget as _widget

TIMEOUT_MS = 60_000
pytestmark = pytest.mark.gui


@pytest.fixture
def viewer_widget(viewer_widget):
    viewer, widget = viewer_widget
    widget.controls["max_iter"].value = 20
    return viewer, widget


def run_and_wait(qtbot, widget):
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)


def test_every_slice_of_a_time_series_keeps_scale(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, im[::-1], im]), name="movie",
                     scale=(10.0, 0.5, 0.5), translate=(0, 3, -2))
    widget.mode.value = "every slice"
    run_and_wait(qtbot, widget)
    assert errors == []
    out = viewer.layers["movie IEM"]
    assert out.data.shape == (3, 48, 48)
    np.testing.assert_allclose(out.scale, (10.0, 0.5, 0.5))
    np.testing.assert_allclose(out.translate, (0, 3, -2))
    np.testing.assert_array_equal(out.data[1], out.data[0][::-1])
    assert out.metadata["iem"]["mode"] == "every slice"
    assert "movie IEM preview" not in viewer.layers


def test_volume_mode_on_an_anisotropic_stack(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    vol, truth = textured_ball((16, 32, 32), radius=8)
    viewer.add_image(vol, name="stack", scale=(2.0, 1.0, 1.0))
    widget.mode.value = "volume"
    run_and_wait(qtbot, widget)
    assert errors == []
    out = viewer.layers["stack IEM"]
    assert out.data.shape == vol.shape
    np.testing.assert_allclose(out.scale, (2.0, 1.0, 1.0))
    fg = out.data > 0
    assert (fg & truth).sum() / (fg | truth).sum() > 0.7


def test_physical_sigma_uses_the_layer_scale(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    seen = {}
    real = _widget.iter_segment

    def spy(image, regions, **options):
        seen.update(options)
        return (yield from real(image, regions, **options))

    monkeypatch.setattr(_widget, "iter_segment", spy)
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, im]), name="z", scale=(4.0, 0.5, 0.5))
    widget.mode.value = "volume"
    widget.physical.value = True
    widget.controls["sigma"].value = 2.0
    widget.controls["max_iter"].value = 3
    run_and_wait(qtbot, widget)
    assert seen["sigma_units"] == "physical" and seen["scale"] == (4.0, 0.5, 0.5)
    assert seen["mode"] == "volume"


def test_channel_axis_of_a_layer(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, 255 - im]), name="cyx")  # (C, Y, X), one layer
    widget.channel_axis.value = 0
    run_and_wait(qtbot, widget)
    assert errors == []
    out = viewer.layers["cyx IEM"]
    assert out.data.shape == (48, 48)


def test_channels_last_layer_says_how_to_open_it(viewer_widget, errors):
    """A (Y, X, 2) layer is, to napari, Y planes of X x 2 pixels: the message says
    so and how to add its channels (it said 'image is 48x2 pixels')."""
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, 255 - im], -1), name="yxc")
    widget.run_button.click()
    assert not widget.running and len(errors) == 1
    assert "channel_axis=-1" in widget.status.text()
    assert [la.name for la in viewer.layers] == ["yxc"]


def test_channel_layers_made_by_channel_axis(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, 255 - im]), channel_axis=0, name=["red", "green"])
    widget.image.value = viewer.layers["red"]
    widget.channel_layers.value = [viewer.layers["green"]]
    assert "mode" not in widget.form.shown()  # 2-D layers: there is no mode to pick
    run_and_wait(qtbot, widget)
    assert errors == []
    assert viewer.layers["red IEM"].data.shape == (48, 48)


def test_channel_layers_of_another_shape_are_not_offered(viewer_widget):
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    a = viewer.add_image(im, name="a")
    b = viewer.add_image(im[:40], name="b")
    widget.image.value = a
    assert b not in widget.channel_layers.choices
    with pytest.raises(ValueError, match="one shape"):
        _layers_nd.gather(a, "current slice", extra=[b])


def test_instances_layer(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    image, truth = touching_discs(64)
    viewer.add_image(image, name="nuclei", scale=(0.3, 0.3))
    widget.controls["instances"].value = True
    widget.controls["max_size"].value = 0
    run_and_wait(qtbot, widget)
    assert errors == []
    inst = viewer.layers["nuclei IEM instances"]
    assert inst.data.max() == 2
    np.testing.assert_allclose(inst.scale, (0.3, 0.3))


def test_refine_a_stack_keeps_painted_voxels(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, im]), name="pair")
    widget.mode.value = "every slice"
    run_and_wait(qtbot, widget)
    out = viewer.layers["pair IEM"]
    painted = out.data.copy()
    painted[1, :6, :6] = 1
    out.data = painted
    widget.refine_button.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)
    assert errors == []
    assert viewer.layers["pair IEM"] is out
    assert out.data[1, :6, :6].all()
    assert len([la for la in viewer.layers if _layers.is_iem_output(la)]) == 1


def test_planes_of_a_stack_add_up_and_refine_keeps_its_plane(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, np.zeros_like(im), im[::-1]]), name="z")
    viewer.dims.set_current_step(0, 2)
    run_and_wait(qtbot, widget)
    out = viewer.layers["z IEM"]
    viewer.dims.set_current_step(0, 0)
    run_and_wait(qtbot, widget)  # unedited: the new plane goes into the same layer
    assert viewer.layers["z IEM"] is out and out.metadata["iem"]["planes"] == [[0], [2]]
    assert out.data[0].any() and out.data[2].any() and not out.data[1].any()
    plane2 = out.data[2].copy()
    painted = out.data.copy()
    painted[0, :5, :5] = 1
    out.data = painted
    widget.refine_button.click()  # on the displayed plane, 0
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)
    assert errors == []
    assert viewer.layers["z IEM"] is out and out.data[0, :5, :5].all()
    np.testing.assert_array_equal(out.data[2], plane2)  # the other plane untouched


def test_refine_on_a_plane_iem_did_not_write_notifies(viewer_widget, qtbot, errors):
    """An empty plane (no result there, nothing painted) is not refined: it came back
    empty, and was recorded among the planes IEM wrote."""
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, im]), name="z")
    viewer.dims.set_current_step(0, 1)
    run_and_wait(qtbot, widget)
    out = viewer.layers["z IEM"]
    before = out.data.copy()
    viewer.dims.set_current_step(0, 0)
    widget.refine_button.click()
    assert not widget.running and len(errors) == 1
    assert "plane [0]" in widget.status.text() and "Run" in widget.status.text()
    np.testing.assert_array_equal(out.data, before)
    assert out.metadata["iem"]["planes"] == [[1]]


def test_a_refused_refine_leaves_the_mode_as_it_was(viewer_widget, qtbot, errors):
    """Refine runs in its layer's mode; refused, it changes no control either (the
    mode, and the working size with it, stayed switched)."""
    viewer, widget = viewer_widget
    im, _ = textured_disc(48)
    viewer.add_image(np.stack([im, im]), name="z")
    run_and_wait(qtbot, widget)  # current slice
    widget.mode.value = "volume"
    max_size = widget.controls["max_size"].value
    viewer.dims.ndisplay = 3
    widget.refine_button.click()
    assert not widget.running and len(errors) == 1 and "2-D display" in errors[0]
    assert widget.mode.value == "volume"
    assert widget.controls["max_size"].value == max_size


def test_current_slice_reads_only_its_plane():
    """A dask-backed stack: the displayed plane's chunk is computed, no other."""
    da = pytest.importorskip("dask.array")
    from napari.layers import Image

    reads = []

    def plane(block, block_info=None):
        reads.append(block_info[0]["chunk-location"][0])
        return block

    stack = da.zeros((5, 16, 16), chunks=(1, 16, 16), dtype=np.float32)
    layer = Image(stack.map_blocks(plane, dtype=np.float32), name="lazy",
                  contrast_limits=(0, 1))
    reads.clear()  # what napari read to make the layer
    got = _layers_nd.gather(layer, "current slice", world_point=(3, 0, 0))
    assert got["data"].shape == (16, 16) and got["index"] == (3,)
    assert reads == [3]


def _disc_or_noise(contrast, seed, size=48):
    """A 16-bit plane of camera noise, with a disc of ``contrast`` noise SDs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - 24) ** 2 + (xx - 26) ** 2 < 12**2
    return (rng.normal(1000, 50, (size, size)) + 50 * contrast * inside).round().astype(
        np.uint16)


def test_planes_with_nothing_in_them_are_said_to_be_empty(viewer_widget, qtbot, errors):
    """The "nothing here" test emptied planes without a word: the status, and the
    layer's metadata, now name them."""
    viewer, widget = viewer_widget
    viewer.add_image(np.stack([_disc_or_noise(c, i) for i, c in enumerate((5, 0, 5))]),
                     name="stack")
    widget.mode.value = "every slice"
    run_and_wait(qtbot, widget)
    assert errors == []
    out = viewer.layers["stack IEM"]
    assert out.data[1].max() == 0 and out.data[0].any() and out.data[2].any()
    assert "no structure found in 1 of 3 (left all background: [1])" in widget.status.text()
    assert out.metadata["iem"]["empty_planes"] == [[1]]
    assert out.metadata["iem"]["structure_found"] is True
    viewer.add_image(_disc_or_noise(0, 7), name="noise")
    widget.image.value = viewer.layers["noise"]
    run_and_wait(qtbot, widget)
    assert viewer.layers["noise IEM"].data.max() == 0
    assert "no structure found: no region differs" in widget.status.text()
    assert viewer.layers["noise IEM"].metadata["iem"]["structure_found"] is False
