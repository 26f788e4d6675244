"""The napari writer contribution: an IEM Labels layer saved with its scale and
provenance, as OME-TIFF or OME-Zarr; files it did not write are never replaced."""
import numpy as np
import pytest
import tifffile

from napari_iem._napari.writer import write_labels
from napari_iem.files.ome import read_provenance
from napari_iem.files.ome_zarr import open_ome_zarr, read_ome_zarr, read_ome_zarr_provenance

LABELS = (np.arange(30 * 40).reshape(30, 40) % 3).astype(np.uint8)
META = {"scale": (0.5, 0.25), "units": ("micrometer", "micrometer"),
        "metadata": {"iem": {"preset": "microscopy", "regions": 3,
                             "versions": {"napari-iem": "x", "torch": "y", "numpy": "z"}}}}


def test_ome_tiff_keeps_scale_and_provenance(tmp_path):
    path = tmp_path / "cells.ome.tif"
    assert write_labels(str(path), LABELS, META) == [str(path)]
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        np.testing.assert_array_equal(tif.asarray(), LABELS)
        xml = tif.ome_metadata
    assert 'PhysicalSizeX="0.25"' in xml and 'PhysicalSizeY="0.5"' in xml
    assert read_provenance(path)["preset"] == "microscopy"


def test_ome_zarr_keeps_scale_and_provenance(tmp_path):
    path = tmp_path / "cells.zarr"
    write_labels(str(path), LABELS, META)
    image = open_ome_zarr(path)
    np.testing.assert_allclose(image.scale[0], (0.5, 0.25))
    np.testing.assert_array_equal(read_ome_zarr(path)[0], LABELS)
    assert read_ome_zarr_provenance(path)["preset"] == "microscopy"


def test_a_file_it_did_not_write_is_left_alone(tmp_path):
    path = tmp_path / "theirs.tif"
    tifffile.imwrite(path, np.ones((4, 4), np.uint8))
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_labels(str(path), LABELS, META)
    assert path.read_bytes() == before


def test_saving_again_over_its_own_file_is_allowed(tmp_path):
    path = tmp_path / "cells.ome.tif"
    write_labels(str(path), LABELS, META)
    write_labels(str(path), LABELS[::-1].copy(), META)
    np.testing.assert_array_equal(tifffile.imread(path), LABELS[::-1])


def test_the_manifest_declares_the_writer():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-iem")
    writers = {w.command: w for w in manifest.contributions.writers}
    assert "labels" in [str(t) for t in writers["napari-iem.write_labels"].layer_types]


@pytest.mark.parametrize("name", ["cells.ome.tif", "cells.zarr", "cells.ome.zarr"])
def test_saved_labels_open_again_as_calibrated_labels(tmp_path, name):
    """napari's own TIFF reader opened them as an image of unit scale."""
    from napari_iem._napari.reader import get_reader

    path = tmp_path / name
    write_labels(str(path), LABELS, META)
    reader = get_reader(str(path))
    assert reader is not None
    [(data, meta, kind)] = reader(str(path))
    assert kind == "labels" and meta["name"] == "cells"
    np.testing.assert_array_equal(np.asarray(data), LABELS)
    np.testing.assert_allclose(meta["scale"], (0.5, 0.25))
    assert meta["units"] == ["micrometer", "micrometer"]
    assert meta["metadata"]["iem_provenance"]["preset"] == "microscopy"


def test_the_reader_leaves_other_files_to_other_readers(tmp_path):
    from napari_iem._napari.reader import get_reader

    tifffile.imwrite(tmp_path / "theirs.ome.tif", np.ones((4, 4), np.uint8))
    (tmp_path / "empty.zarr").mkdir()
    (tmp_path / "notes.ome.tif").write_text("not a tiff")
    for name in ("theirs.ome.tif", "empty.zarr", "notes.ome.tif", "missing.ome.tif"):
        assert get_reader(str(tmp_path / name)) is None, name
    assert get_reader([str(tmp_path / "theirs.ome.tif")]) is None


@pytest.mark.gui
def test_napari_opens_saved_labels_with_the_plugin(make_napari_viewer, tmp_path):
    path = tmp_path / "cells.ome.tif"
    write_labels(str(path), LABELS, META)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-iem")
    assert layer.__class__.__name__ == "Labels" and layer.name == "cells"
    np.testing.assert_allclose(layer.scale, (0.5, 0.25))


def test_an_image_with_labels_napari_iem_wrote_into_it_is_left_to_other_readers(tmp_path):
    """The reader took a user's OME-Zarr image for labels once napari-iem had written
    ``labels/iem`` into it, and opened the image's own pixels as a Labels layer."""
    import zarr

    from napari_iem._napari.reader import get_reader
    from napari_iem.files.ome_zarr import write_ome_zarr_labels

    image = tmp_path / "theirs.ome.zarr"
    root = zarr.open_group(str(image), mode="w", zarr_format=2)
    root.create_array("0", data=np.arange(30 * 40, dtype=np.uint16).reshape(30, 40))
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "y"}, {"name": "x"}],
                                  "datasets": [{"path": "0"}]}]
    write_ome_zarr_labels(LABELS, source=image, name="iem", axes="yx", scale=(1, 1),
                          provenance={"preset": "microscopy"})
    assert get_reader(str(image)) is None
