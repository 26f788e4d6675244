"""Fixtures shared by the tests.

Nothing here imports Qt or napari: the GUI fixtures import the widget when a test asks
for them, so that ``pytest -m "not gui"`` runs the engine tests without a display.
"""
import pytest


@pytest.fixture(autouse=True)
def widget_memory(tmp_path, monkeypatch):
    """The widget remembers its settings in this test's own folder, not the user's,
    so that no test starts from another one's settings."""
    monkeypatch.setenv("NAPARI_IEM_WIDGET_SETTINGS", str(tmp_path / "widget-settings.toml"))


@pytest.fixture
def viewer_widget(make_napari_viewer, monkeypatch):
    """A viewer with the IEM widget docked through the manifest, limited to 30
    iterations so that runs stay short; its runs get their bar from the first
    snapshot (a real one waits :data:`~napari_iem._napari.progress.BAR_DELAY_SECONDS`),
    so that short test runs show every phase."""
    from napari_iem._napari import progress

    monkeypatch.setattr(progress, "BAR_DELAY_SECONDS", 0.0)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-iem", "Segment an image")
    widget.controls["max_iter"].value = 30
    return viewer, widget


@pytest.fixture
def errors(monkeypatch):
    """Texts of the error and warning notifications the widget shows."""
    from napari_iem._napari import folder, widget

    shown = []
    for module in (widget, folder):
        monkeypatch.setattr(module, "show_error", shown.append, raising=False)
    monkeypatch.setattr(widget, "show_warning", shown.append)
    return shown
