"""Layer <-> array helpers and publishing of the plugin, without Qt or a viewer."""
import numpy as np
import pytest
from napari.components import LayerList
from napari.layers import Image, Labels

from napari_iem._napari import layers as _layers
from napari_iem._napari import publish as _publish
from napari_iem._napari.run_request import RunPlan
from napari_iem.api import IEMResult

pytestmark = pytest.mark.gui  # napari, though no Qt


def fake_result(labels, channels=None):
    regions = int(labels.max()) + 1
    shape = labels.shape if channels is None else (*labels.shape, channels)
    inpainted = np.stack([np.full(shape, k, np.float32) for k in range(regions)])
    return IEMResult(
        labels=labels.astype(np.uint8),
        masks=np.stack([labels == k for k in range(regions)]),
        inpainted=inpainted,
        error=np.linspace(0, 2, labels.size, dtype=np.float32).reshape(labels.shape),
        objective=[0.5, 0.75],
        iterations=2,
        converged=True,
        params={"preset": "photo", "regions": regions, "sigma": 5.0},
        device="cpu",
        seconds=0.25,
    )


def half_labels(shape=(8, 10)):
    labels = np.zeros(shape, np.uint8)
    labels[:, shape[1] // 2 :] = 1
    return labels


@pytest.fixture
def scene():
    source = Image(
        np.zeros((8, 10), np.float32), name="img", scale=(3, 4), translate=(1, 2),
        units=("nm", "nm"), contrast_limits=(0, 7),
    )
    return LayerList([source]), source


def test_unique_name():
    layers = [Labels(np.zeros((2, 2), int), name=n) for n in ("a IEM", "a IEM [1]")]
    assert _layers.unique_name("b IEM", layers) == "b IEM"
    assert _layers.unique_name("a IEM", layers) == "a IEM [2]"


def test_image_plane_refuses_labels():
    with pytest.raises(ValueError, match="Labels layer: pick an Image layer"):
        _layers.image_plane(Labels(np.zeros((4, 4), int), name="seg"))


def test_image_plane_of_a_scaled_stack():
    stack = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    layer = Image(stack, scale=(2, 1, 1))
    plane, index = _layers.image_plane(layer, world_point=(6.2, 0, 0))
    assert index == (3,)
    np.testing.assert_array_equal(plane, stack[3])
    plane, index = _layers.image_plane(layer, world_point=(100, 0, 0))
    assert index == (3,)  # clipped to the stack
    rgb = Image(np.zeros((40, 50, 3), np.uint8), rgb=True)
    assert _layers.image_plane(rgb)[0].shape == (40, 50, 3)


def test_spatial_kwargs_take_the_last_two_axes():
    layer = Image(np.zeros((2, 4, 4)), scale=(5, 2, 3), translate=(9, 1, 0))
    kwargs = _layers.spatial_kwargs(layer)
    assert kwargs["scale"] == (2, 3) and kwargs["translate"] == (1, 0)
    assert len(kwargs["units"]) == 2
    assert _layers.spatial_kwargs(layer, [0, 1, 2])["scale"] == (5, 2, 3)


def plan_for(source, index=(), show_why=True, mode="current slice", **refine):
    shape = tuple(source.data.shape)
    return RunPlan(source=source, data=None, options={}, mode=mode,
                   axes=list(range(len(shape))), shape=shape, index=index,
                   source_shape=shape, picked=None, show_why=show_why, **refine)


def publish(layers, source, result, **kwargs):
    return _publish.publish(layers, plan_for(source, **kwargs), result)


def test_publish_writes_calibrated_layers(scene):
    layers, source = scene
    out = publish(layers, source, fake_result(half_labels()))
    assert out.name == "img IEM" and out in layers
    np.testing.assert_allclose(out.scale, (3, 4))
    np.testing.assert_allclose(out.translate, (1, 2))
    assert [str(u) for u in out.units] == ["nanometer", "nanometer"]
    info = out.metadata["iem"]
    assert info["seconds"] == 0.25 and info["device"] == "cpu"
    assert info["params"]["sigma"] == 5.0 and info["iterations"] == 2
    assert info["mode"] == "current slice" and info["preset"] == "photo"
    assert _layers.is_iem_output(out, source) and not _layers.is_edited(out)
    inpainted = layers["img IEM inpainted 1"]
    assert not inpainted.visible and tuple(inpainted.contrast_limits) == (0, 7)
    assert layers["img IEM error"].colormap.name == "magma"
    assert len(layers) == 5


def test_maps_only_when_asked_for(scene):
    layers, source = scene
    publish(layers, source, fake_result(half_labels()), show_why=False)
    assert [la.name for la in layers] == ["img", "img IEM"]


def test_rerun_updates_unedited_and_spares_edited(scene):
    layers, source = scene
    first = publish(layers, source, fake_result(half_labels()))
    again = publish(layers, source, fake_result(1 - half_labels()))
    assert again is first and first.data[0, 0] == 1 and len(layers) == 5

    edited = first.data.copy()
    edited[0, 0] = 0
    first.data = edited
    assert _layers.is_edited(first)
    new = publish(layers, source, fake_result(half_labels()))
    assert new is not first and new.name == "img IEM [1]"
    np.testing.assert_array_equal(first.data, edited)
    assert "img IEM [1] inpainted 0" in layers


def test_fewer_regions_remove_stale_inpaintings(scene):
    layers, source = scene
    three = half_labels()
    three[0] = 2
    out = publish(layers, source, fake_result(three))
    assert "img IEM inpainted 2" in layers
    assert publish(layers, source, fake_result(half_labels())) is out
    assert "img IEM inpainted 2" not in layers


def publish_and_paint_corner(layers, source):
    """Publish a result, paint its top-left pixel as a user would, and take the
    refinement inputs: (layer, painted data, init, locked)."""
    out = publish(layers, source, fake_result(half_labels()))
    painted = out.data.copy()
    painted[0, 0] = 1
    out.data = painted
    init, locked = _layers.refine_inputs(out)
    return out, painted, init, locked


def test_refinement_writes_the_engines_labels_and_records_locks(scene):
    """The engine keeps locked pixels (tests/test_segment.py); publishing writes its
    labels as they are and records the locks for the next round."""
    layers, source = scene
    out, painted, init, locked = publish_and_paint_corner(layers, source)
    assert locked.sum() == 1 and locked[0, 0]
    kept = half_labels()
    kept[0, 0] = 1  # what the engine returns: the lock held
    publish(layers, source, fake_result(kept), target=out, start=init, locked=locked)
    np.testing.assert_array_equal(out.data, kept)
    assert not _layers.is_edited(out)

    painted = out.data.copy()
    painted[7, 9] = 0
    out.data = painted
    _, locked = _layers.refine_inputs(out)
    assert locked.sum() == 2 and locked[0, 0] and locked[7, 9]


def test_refine_target_prefers_the_active_output(scene):
    layers, source = scene
    assert _layers.refine_target(layers, source) is None
    a = publish(layers, source, fake_result(half_labels()))
    a.data = 1 - a.data  # edited: the next run makes a new layer
    b = publish(layers, source, fake_result(half_labels()))
    assert _layers.refine_target(layers, source) is b
    assert _layers.refine_target(layers, source, active=a) is a
    other = Image(np.zeros((8, 10)), name="other")
    assert _layers.refine_target(layers, other) is None


def test_flip_needs_two_regions(scene):
    layers, source = scene
    three = half_labels()
    three[0] = 2
    out = publish(layers, source, fake_result(three))
    with pytest.raises(ValueError, match="2-partition"):
        _layers.flip_output(layers, out)


def test_painting_during_refine_sends_it_to_a_new_layer(scene):
    layers, source = scene
    out, painted, init, locked = publish_and_paint_corner(layers, source)
    later = painted.copy()
    later[7, 0] = 1  # painted while the refinement ran
    out.data = later
    kept = half_labels()
    kept[0, 0] = 1
    written = publish(layers, source, fake_result(kept), target=out, start=init,
                      locked=locked)
    assert written is not out and written.name == "img IEM [1]"
    np.testing.assert_array_equal(out.data, later)
    assert written.data[0, 0] == 1


def test_a_duplicated_output_is_the_users(scene):
    layers, source = scene
    out = publish(layers, source, fake_result(half_labels()))
    copy = Labels(out.data.copy(), name="mine", metadata=dict(out.metadata))
    layers.append(copy)
    assert not _layers.is_iem_output(copy)
    assert publish(layers, source, fake_result(half_labels())) is out


def test_a_plane_result_lands_on_its_plane_and_planes_add_up():
    stack = Image(np.zeros((4, 8, 10), np.float32), name="z", scale=(5, 1, 1))
    layers = LayerList([stack])
    out = publish(layers, stack, fake_result(half_labels()), index=(2,), show_why=False)
    assert out.data.shape == (4, 8, 10)
    np.testing.assert_allclose(out.scale, (5, 1, 1))
    assert out.data[2].any() and not out.data[[0, 1, 3]].any()
    again = publish(layers, stack, fake_result(half_labels()), index=(0,), show_why=False)
    assert again is out and out.data[0].any() and out.data[2].any()
    assert out.metadata["iem"]["planes"] == [[0], [2]]
    _layers.flip_output(layers, out)  # only the planes IEM wrote
    assert not out.data[[1, 3]].any() and out.data[2, 0, 0] == 1


def test_stale_reason():
    source = Image(np.zeros((8, 10), np.float32), name="img")
    layers = LayerList([source])
    plan = plan_for(source)
    assert _publish.stale_reason(layers, plan) is None
    source.data = np.zeros((6, 6), np.float32)
    assert "changed shape" in _publish.stale_reason(layers, plan)
    layers.remove(source)
    assert "removed" in _publish.stale_reason(layers, plan)
