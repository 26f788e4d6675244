"""`make demo` without a display: the CLI over the sample images."""
import numpy as np

from napari_iem import demo
from napari_iem.files.read import read_labels
from synthetic import textured_disc


def test_headless_demo_writes_labels_and_overlays(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "SAMPLES", {
        "disc": lambda: textured_disc(48)[0],
        "colour": lambda: textured_disc(40, rgb=True, seed=2)[0],
    })
    assert demo.main(["--headless", "--out", str(tmp_path)]) == 0
    for name, size in (("disc", 48), ("colour", 40)):
        labels = read_labels(tmp_path / "labels" / f"{name}.png")
        assert labels.shape == (size, size) and set(np.unique(labels)) == {0, 1}
        assert (tmp_path / "labels" / "overlays" / f"{name}.png").is_file()
