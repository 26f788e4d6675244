"""Run on a folder from the widget: the CLI's files for the same settings (pytest-xvfb)."""
import imageio.v3 as iio
import numpy as np
import pytest
from synthetic import textured_disc

from napari_iem.cli import main
from napari_iem.files.read import read_labels

pytestmark = pytest.mark.gui
TIMEOUT_MS = 120_000


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    iio.imwrite(images / "grey.png", textured_disc(40)[0])
    iio.imwrite(images / "colour.png", textured_disc(36, rgb=True, seed=1)[0])
    return images


def label_files(out):
    return {p.name: np.asarray(read_labels(p)) for p in sorted(out.iterdir())
            if p.suffix in (".png", ".tif")}


def test_folder_run_writes_what_the_cli_writes(viewer_widget, qtbot, folder, tmp_path):
    _, widget = viewer_widget
    widget.controls["sigma"].value = 3.0
    widget.controls["max_size"].value = 32
    widget.folder.start(str(folder), str(tmp_path / "gui"))
    run = widget.folder.run
    assert widget.folder_button.text() == "Cancel folder run"
    qtbot.waitUntil(lambda: widget.folder.run is None, timeout=TIMEOUT_MS)
    assert run.bar.n == run.bar.total == 2  # the activity dock's bar, files done
    assert "2 done" in widget.status.text()
    assert widget.folder.open_button.isVisibleTo(widget)
    opened = widget.folder.open_results()  # results openable in the viewer
    assert sorted(layer.name for layer in opened) == ["colour", "grey"]
    assert all(layer._type_string == "labels" for layer in opened)

    settings = widget.save_settings(str(tmp_path / "iem.toml"))
    assert main(["segment", str(folder), "--out", str(tmp_path / "cli"),
                 "--config", str(settings), "--quiet"]) == 0
    gui, cli = label_files(tmp_path / "gui"), label_files(tmp_path / "cli")
    assert sorted(gui) == sorted(cli) == ["colour.png", "grey.png"]
    for name in gui:
        np.testing.assert_array_equal(gui[name], cli[name])
    assert sorted(p.name for p in (tmp_path / "gui").iterdir()) == sorted(
        p.name for p in (tmp_path / "cli").iterdir())  # the report too


@pytest.mark.parametrize("where", ["button", "activity dock"])
def test_cancel_a_folder_run(viewer_widget, qtbot, folder, tmp_path, where):
    _, widget = viewer_widget
    widget.folder.start(str(folder), str(tmp_path / "out"))
    if where == "button":
        widget.folder_button.click()  # Cancel at once
    else:
        widget.folder.run.bar.cancel()
        widget.folder.run.poll()  # what the next tick of its timer does
    qtbot.waitUntil(lambda: widget.folder.run is None, timeout=TIMEOUT_MS)
    assert "cancelled" in widget.status.text()
    assert widget.folder_button.text() == "Run on a folder…"


def test_a_folder_run_that_cannot_start_says_so_in_the_widgets_words(viewer_widget, qtbot,
                                                                      folder):
    """The widget asked for an output folder; its message named the CLI's '(--out)'."""
    _, widget = viewer_widget
    widget.folder.start(str(folder), str(folder))
    qtbot.waitUntil(lambda: widget.folder.run is None, timeout=TIMEOUT_MS)
    text = widget.status.text()
    assert "did not start" in text and "pick a different output folder" in text, text
    assert "--" not in text, text


def test_a_folder_run_says_what_was_refused_and_what_to_do(viewer_widget, qtbot, folder,
                                                             tmp_path):
    """A rerun with other settings into the same folder refuses every file; the status
    line said '0 done, 0 skipped, 0 failed' and nothing of why."""
    _, widget = viewer_widget
    widget.controls["max_size"].value = 32
    for sigma in (3.0, 4.0):
        widget.controls["sigma"].value = sigma
        widget.folder.start(str(folder), str(tmp_path / "out"))
        qtbot.waitUntil(lambda: widget.folder.run is None, timeout=TIMEOUT_MS)
    text = widget.status.text()
    assert "2 refused" in text and "choose another output folder" in text, text
    assert "iem-report.csv" in text and "--" not in text, text
