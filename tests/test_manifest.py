"""The npe2 manifest: valid, installed, and every contribution resolves."""
import importlib
import subprocess
import sys

import pytest
from npe2 import PluginManifest


@pytest.fixture(scope="module")
def manifest():
    return PluginManifest.from_distribution("napari-iem")


def test_manifest_validates(manifest):
    assert manifest.name == "napari-iem"
    assert manifest.display_name == "IEM segmentation"
    PluginManifest.model_validate(manifest.model_dump())  # round-trips


def test_npe2_validate_command():
    done = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-iem"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout


@pytest.mark.gui  # the widget's module imports Qt
def test_commands_are_namespaced_and_import(manifest):
    for command in manifest.contributions.commands:
        assert command.id.startswith("napari-iem.")
        module, name = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), name))


def test_widget_sample_data_and_menu(manifest):
    widgets = manifest.contributions.widgets
    assert [w.display_name for w in widgets] == ["Segment an image"]
    keys = {s.key for s in manifest.contributions.sample_data}
    assert {"coffee", "tissue", "cell", "disc"} <= keys
    menu = manifest.contributions.menus["napari/layers/segment"]
    assert [item.command for item in menu] == [widgets[0].command]
