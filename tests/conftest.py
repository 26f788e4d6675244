"""Fixtures shared by the GUI tests (napari under pytest-xvfb)."""
import pytest

from napari_iem._napari import widget as _widget


@pytest.fixture
def viewer_widget(make_napari_viewer):
    """A viewer with the IEM widget docked through the manifest, limited to 30
    iterations so that runs stay short."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-iem", "Segment an image")
    widget.max_iter.value = 30
    return viewer, widget


@pytest.fixture
def errors(monkeypatch):
    """Texts of the error and warning notifications the widget shows."""
    shown = []
    monkeypatch.setattr(_widget, "show_error", shown.append)
    monkeypatch.setattr(_widget, "show_warning", shown.append)
    return shown
