"""The widget's settings travel to files, to the CLI and into the layer metadata."""
import numpy as np
import pytest
from synthetic import textured_disc

from napari_iem._napari.widget import IEMWidget
from napari_iem.files.settings import load_settings, segment_kwargs

pytestmark = pytest.mark.gui


def make_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(textured_disc(48)[0], name="disc")
    return viewer, IEMWidget(viewer)


def test_saved_settings_reload_and_reach_the_engine(make_napari_viewer, tmp_path):
    _, widget = make_widget(make_napari_viewer)
    widget.controls["regions"].value = 3
    widget.controls["sigma"].value = 3.0
    widget.controls["max_size"].value = 0
    path = widget.save_settings(str(tmp_path / "s.toml"))
    saved = load_settings(path)
    assert saved["regions"] == 3 and saved["params"]["sigma"] == 3.0
    kwargs = segment_kwargs(saved)
    assert kwargs["sigma"] == 3.0 and kwargs.get("max_size") is None

    widget.controls["regions"].value = 2
    widget.controls["sigma"].value = 5.0
    widget.load_settings(str(path))
    assert widget.controls["regions"].value == 3 and widget.controls["sigma"].value == 3.0


def test_a_bad_settings_file_changes_nothing(make_napari_viewer, tmp_path):
    _, widget = make_widget(make_napari_viewer)
    bad = tmp_path / "bad.toml"
    bad.write_text("preset = 'default'\nunknown_key = 1\n")
    before = widget.settings()
    widget.load_settings(str(bad))
    assert widget.settings() == before


def test_the_labels_layer_carries_the_settings(make_napari_viewer, qtbot):
    viewer, widget = make_widget(make_napari_viewer)
    widget.controls["max_iter"].value = 20
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    layer = viewer.layers["disc IEM"]
    settings = layer.metadata["iem"]["settings"]
    assert settings["regions"] == 2 and settings["params"]["max_iter"] == 20
    assert np.asarray(layer.data).shape == (48, 48)
    info = layer.metadata["iem"]  # the OME-TIFF output's provenance, for Save layer
    assert {"versions", "settings", "preset", "params", "iterations", "converged",
            "seconds", "device", "scale", "sigma_units", "sigma_working_pixels"} <= set(info)
    assert {"napari-iem", "torch", "numpy"} <= set(info["versions"])
    assert info["layer"]["scale"] == [1.0, 1.0] and info["working_shape"] == [48, 48]
    assert info["mode"] == "current slice" and info["engine_mode"] == "2d"


def test_default_shows_the_preset_it_picks_and_keeps_edits(make_napari_viewer, qtbot):
    viewer, widget = make_widget(make_napari_viewer)  # a grey disc: a micrograph
    assert widget.controls["preset"].value == "default"
    assert widget.controls["sigma"].value == 2.0
    assert "microscopy" in widget.controls["preset"].tooltip
    assert widget.settings()["preset"] == "default"  # nothing edited: each image picks
    widget.controls["max_iter"].value = 20
    viewer.add_image(textured_disc(48, rgb=True)[0], name="photo")
    widget.image.value = viewer.layers["photo"]
    assert widget.controls["sigma"].value == 5.0 and "'photo'" in widget.controls["preset"].tooltip
    assert "centre differs from its frame" in widget.controls["preset"].tooltip  # and why
    assert widget.controls["max_iter"].value == 20  # the user's edit stays
    widget.controls["sigma"].value = 3.0
    assert widget.settings()["preset"] == "photo"  # an edit ties it to the pick
    assert widget.settings()["params"]["sigma"] == 3.0
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    params = viewer.layers["photo IEM"].metadata["iem"]["params"]
    assert params["preset"] == "photo" and params["sigma"] == 3.0
    widget.controls["preset"].value = "paper"  # choosing a preset sets every control
    assert widget.controls["max_iter"].value == 150 and widget.controls["sigma"].value == 5.0
