"""OME-Zarr in and out: axes, physical sizes and provenance survive a round trip;
other label images are kept; what napari-iem did not write is never replaced; hostile
metadata is refused before any read."""
import json

import numpy as np
import pytest

from napari_iem.cli import main
from napari_iem.files.ome_zarr import (is_ome_zarr, open_ome_zarr, read_ome_zarr,
                                        read_ome_zarr_provenance)
from napari_iem.files.ome_zarr_write import write_ome_zarr_labels

from synthetic import textured_ball

PROV = {"versions": {"napari-iem": "test"}, "preset": "microscopy"}


def labels_image(tmp_path, name="a.ome.zarr", shape=(6, 40, 48), scale=(2.0, 0.5, 0.5)):
    labels = (np.arange(np.prod(shape)).reshape(shape) % 3).astype(np.uint8)
    path = write_ome_zarr_labels(labels, tmp_path / name, axes="zyx", scale=scale,
                                 provenance=PROV, units={a: "micrometer" for a in "zyx"})
    return labels, path


def test_round_trip_keeps_axes_scale_and_provenance(tmp_path):
    labels, path = labels_image(tmp_path)
    assert is_ome_zarr(path)
    image = open_ome_zarr(path)
    assert image.axes == "zyx" and image.units.get("z") == "micrometer"
    np.testing.assert_allclose(image.scale[0], (2.0, 0.5, 0.5))
    data, _ = read_ome_zarr(path)
    np.testing.assert_array_equal(data, labels)
    assert read_ome_zarr_provenance(path)["preset"] == "microscopy"


def test_a_zyx_ome_zarr_through_the_cli_uses_its_z_spacing(tmp_path):
    from napari_iem.files.ome_zarr import read_ome_zarr_provenance as prov

    vol = textured_ball((12, 40, 40), radius=10)[0]
    src = write_ome_zarr_labels(vol.astype(np.uint16), tmp_path / "vol.ome.zarr",
                                axes="zyx", scale=(2.0, 0.5, 0.5), provenance=PROV)
    out = tmp_path / "out"
    assert main(["segment", str(src), "--out", str(out), "--mode", "volume",
                 "--format", "ome-zarr", "--max-iter", "10", "-q"]) == 0
    made = out / "vol.ome.zarr"
    assert open_ome_zarr(made).axes == "zyx"
    record = prov(made)
    assert record["scale"] == [2.0, 0.5, 0.5] and record["versions"]["torch"]


def test_labels_into_a_source_keep_the_other_label_images(tmp_path):
    _, source = labels_image(tmp_path, "src.ome.zarr")
    first = write_ome_zarr_labels(np.zeros((6, 40, 48), np.uint8), source=source,
                                  name="mine", axes="zyx", scale=(2, .5, .5), provenance=PROV)
    write_ome_zarr_labels(np.ones((6, 40, 48), np.uint8), source=source, name="iem",
                          axes="zyx", scale=(2, .5, .5), provenance=PROV)
    attrs = (source / "labels")
    text = "".join(p.read_text() for p in attrs.iterdir() if p.suffix in ("", ".json")
                   and p.is_file())
    assert "mine" in text and "iem" in text and first.exists()


def test_a_zarr_not_written_by_napari_iem_is_not_replaced(tmp_path):
    _, path = labels_image(tmp_path)
    meta = next(p for p in (path / "zarr.json", path / ".zattrs") if p.exists())
    attrs = json.loads(meta.read_text())
    text = json.dumps(attrs).replace('"napari-iem"', '"someone-else"')
    meta.write_text(text)
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    with pytest.raises(FileExistsError):
        write_ome_zarr_labels(np.zeros((6, 40, 48), np.uint8), path, axes="zyx",
                              scale=(1, 1, 1), provenance=PROV)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before


@pytest.mark.parametrize("bad", ["nan", "-1"])
def test_bad_scale_is_refused(tmp_path, bad):
    _, path = labels_image(tmp_path)
    meta = next(p for p in (path / "zarr.json", path / ".zattrs") if p.exists())
    meta.write_text(meta.read_text().replace("2.0", bad, 1))
    with pytest.raises(Exception, match="(?i)scale|finite|positive|metadata"):
        open_ome_zarr(path)


def test_malformed_json_and_huge_shapes_are_refused(tmp_path):
    _, path = labels_image(tmp_path)
    with pytest.raises(Exception):
        open_ome_zarr(path, max_pixels=100)  # 6x40x48 is over the limit
    meta = next(p for p in (path / "zarr.json", path / ".zattrs") if p.exists())
    meta.write_text("{ not json")
    assert not is_ome_zarr(path)
    with pytest.raises(Exception):
        open_ome_zarr(path)


@pytest.mark.parametrize("chunks", [[0, 40, 48], [6, 0, 0]])
def test_a_chunk_of_no_pixels_is_refused_with_a_message(tmp_path, chunks):
    """A ``.zarray`` whose chunks have an axis of 0 failed deep in zarr with a bare
    ZeroDivisionError."""
    from napari_iem.files.read import ImageReadError, read_image

    _, path = labels_image(tmp_path)
    array = path / "0" / ".zarray"
    meta = json.loads(array.read_text())
    meta["chunks"] = chunks
    array.write_text(json.dumps(meta))
    with pytest.raises(ImageReadError, match="chunks .* at least 1"):
        read_image(path)
