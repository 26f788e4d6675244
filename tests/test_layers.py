"""Layer <-> array helpers of the plugin, without Qt or a viewer."""
import numpy as np
import pytest
from napari.components import LayerList
from napari.layers import Image, Labels

from napari_iem._napari import layers as _layers
from napari_iem.api import IEMResult


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


def test_publish_result_writes_calibrated_layers(scene):
    layers, source = scene
    out = _layers.publish_result(layers, source, fake_result(half_labels()))
    assert out.name == "img IEM" and out in layers
    np.testing.assert_allclose(out.scale, (3, 4))
    np.testing.assert_allclose(out.translate, (1, 2))
    assert [str(u) for u in out.units] == ["nanometer", "nanometer"]
    info = out.metadata["iem"]
    assert info["seconds"] == 0.25 and info["device"] == "cpu"
    assert info["params"]["sigma"] == 5.0 and info["iterations"] == 2
    assert _layers.is_iem_output(out, source) and not _layers.is_edited(out)
    inpainted = layers["img IEM inpainted 1"]
    assert not inpainted.visible and tuple(inpainted.contrast_limits) == (0, 7)
    assert layers["img IEM error"].colormap.name == "magma"
    assert len(layers) == 5


def test_rerun_updates_unedited_and_spares_edited(scene):
    layers, source = scene
    first = _layers.publish_result(layers, source, fake_result(half_labels()))
    again = _layers.publish_result(layers, source, fake_result(1 - half_labels()))
    assert again is first and first.data[0, 0] == 1 and len(layers) == 5

    edited = first.data.copy()
    edited[0, 0] = 0
    first.data = edited
    assert _layers.is_edited(first)
    new = _layers.publish_result(layers, source, fake_result(half_labels()))
    assert new is not first and new.name == "img IEM [1]"
    np.testing.assert_array_equal(first.data, edited)
    assert "img IEM [1] inpainted 0" in layers


def test_fewer_regions_remove_stale_inpaintings(scene):
    layers, source = scene
    three = half_labels()
    three[0] = 2
    out = _layers.publish_result(layers, source, fake_result(three))
    assert "img IEM inpainted 2" in layers
    assert _layers.publish_result(layers, source, fake_result(half_labels())) is out
    assert "img IEM inpainted 2" not in layers


def publish_and_paint_corner(layers, source):
    """Publish a result, paint its top-left pixel as a user would, and take the
    refinement inputs: (layer, painted data, init, locked)."""
    out = _layers.publish_result(layers, source, fake_result(half_labels()))
    painted = out.data.copy()
    painted[0, 0] = 1
    out.data = painted
    init, locked = _layers.refine_inputs(out)
    return out, painted, init, locked


def test_refine_locks_accumulate(scene):
    layers, source = scene
    out, painted, init, locked = publish_and_paint_corner(layers, source)
    assert locked.sum() == 1 and locked[0, 0]

    result = fake_result(half_labels())  # the engine "undid" the fix
    _layers.publish_refinement(layers, source, out, result, init, locked)
    assert out.data[0, 0] == 1 and not _layers.is_edited(out)

    painted = out.data.copy()
    painted[7, 9] = 0
    out.data = painted
    _, locked = _layers.refine_inputs(out)
    assert locked.sum() == 2 and locked[0, 0] and locked[7, 9]


def test_refine_target_prefers_the_active_output(scene):
    layers, source = scene
    assert _layers.refine_target(layers, source) is None
    a = _layers.publish_result(layers, source, fake_result(half_labels()))
    a.data = 1 - a.data  # edited: the next run makes a new layer
    b = _layers.publish_result(layers, source, fake_result(half_labels()))
    assert _layers.refine_target(layers, source) is b
    assert _layers.refine_target(layers, source, active=a) is a
    other = Image(np.zeros((8, 10)), name="other")
    assert _layers.refine_target(layers, other) is None


def test_flip_needs_two_regions(scene):
    layers, source = scene
    three = half_labels()
    three[0] = 2
    out = _layers.publish_result(layers, source, fake_result(three))
    with pytest.raises(ValueError, match="2-partition"):
        _layers.flip_output(layers, out)


def test_painting_during_refine_sends_it_to_a_new_layer(scene):
    layers, source = scene
    out, painted, init, locked = publish_and_paint_corner(layers, source)
    later = painted.copy()
    later[7, 0] = 1  # painted while the refinement ran
    out.data = later
    written = _layers.publish_refinement(
        layers, source, out, fake_result(half_labels()), init, locked
    )
    assert written is not out and written.name == "img IEM [1]"
    np.testing.assert_array_equal(out.data, later)
    assert written.data[0, 0] == 1  # the locked fix is in the refinement


def test_a_duplicated_output_is_the_users(scene):
    layers, source = scene
    out = _layers.publish_result(layers, source, fake_result(half_labels()))
    copy = Labels(out.data.copy(), name="mine", metadata=dict(out.metadata))
    layers.append(copy)
    assert not _layers.is_iem_output(copy)
    assert _layers.publish_result(layers, source, fake_result(half_labels())) is out
