"""OME-TIFF in and out: axes and physical sizes read, used as the scale, written back
with the run's provenance; OME-XML checked as untrusted input.

Volumes are 6x32x32 and runs use at most 5 iterations, on the CPU.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from napari_iem.batch.report import REPORT_FIELDS, read_rows, record_from_row
from napari_iem.batch.task import _how, segment_task
from napari_iem.cli import main
from napari_iem.files.ome import parse_ome_xml, read_ome, read_provenance
from napari_iem.files.read import ImageReadError, image_info

SIZES = {"PhysicalSizeZ": 1.0, "PhysicalSizeY": 0.2, "PhysicalSizeX": 0.2}


def _volume() -> np.ndarray:
    z, y, x = np.mgrid[:6, :32, :32]
    ball = ((z - 3) ** 2 * 25 + (y - 16) ** 2 + (x - 16) ** 2) < 100
    noise = np.random.default_rng(0).integers(0, 50, ball.shape)
    return (ball * 1000 + 100 + noise).astype(np.uint16)


def _ome(path, data, axes="ZYX", **metadata):
    tifffile.imwrite(path, data, ome=True, metadata={"axes": axes, **metadata})
    return path


def _segment(args, capsys):
    code = main(["segment", *map(str, args), "--max-iter", "5", "--workers", "0",
                 "--device", "cpu", "-q"])
    return code, capsys.readouterr().err


@pytest.fixture
def vol(tmp_path):
    return _ome(tmp_path / "vol.ome.tif", _volume(), **SIZES)


def test_volume_round_trip_keeps_axes_sizes_and_provenance(vol, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _segment([vol, "--out", out, "--mode", "volume"], capsys)
    assert code == 0, err
    labels = out / "vol.ome.tif"
    with tifffile.TiffFile(labels) as tif:
        assert tif.is_ome and tif.series[0].axes == "ZYX"
        assert tif.series[0].shape == (6, 32, 32)
    ome = image_info(labels).ome
    assert ome.sizes == {"Z": 1.0, "Y": 0.2, "X": 0.2}
    assert set(ome.units.values()) == {"µm"}
    record = read_provenance(labels)
    assert {"napari-iem", "torch", "numpy"} <= set(record["versions"])
    assert record["scale"] == [1.0, 0.2, 0.2]
    assert record["settings"]["scale_from"] == "ome"
    assert record["settings"]["mode"] == "volume"
    assert record["preset"] == "microscopy"
    sigma = record["params"]["sigma"]  # in pixels of the finest axis
    assert record["sigma_working_pixels"] == pytest.approx([sigma * 0.2, sigma, sigma])
    assert {"iterations", "converged", "seconds", "device"} <= set(record)
    row = read_rows(out / "iem-report.csv")[0]
    assert row["napari_iem_version"] == record["versions"]["napari-iem"]
    assert row["torch_version"] == record["versions"]["torch"]
    assert row["preset"] == "microscopy" and row["iterations"] and row["seconds"]


def _cfg(out, **extra) -> dict:
    return {"out_dir": str(out), "regions": 2, "preset": "default", "device": "cpu",
            "overrides": {"max_iter": 5}, "protocol": None, "overlay": False,
            "max_pixels": None, "torch_threads": None, "channel_axis": None,
            "nd_options": {"mode": "volume"}, **extra}


def test_a_given_scale_wins_over_the_files(vol, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    [rec] = segment_task([(0, str(vol), "vol.ome", [])], _cfg(out, scale=(2.0, 1.0, 1.0)))
    assert rec["status"] == "done", rec
    record = read_provenance(out / "vol.ome.tif")
    assert record["scale"] == [2.0, 1.0, 1.0]
    assert record["settings"]["scale_from"] == "--scale"
    assert image_info(out / "vol.ome.tif").ome.sizes["Z"] == 1.0  # the source's


def test_scale_flag_overrides_the_files_sizes(vol, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _segment([vol, "--out", out, "--mode", "volume", "--scale", "1,1,1"],
                         capsys)
    assert code == 0, err
    assert read_provenance(out / "vol.ome.tif")["scale"] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1,,2", "nan", "1,inf"])
def test_scale_flag_wants_positive_numbers(value, tmp_path, capsys):
    code = main(["segment", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--scale", value])
    err = capsys.readouterr().err
    assert code == 2 and "--scale" in err and "positive numbers" in err


@pytest.mark.parametrize("flags, words", [
    (["--sigma-units", "physical"], "none of the 2 images' headers has pixel sizes: "
                                    "give it with --scale"),
    (["--scale", "1,0.2,0.2"], "--scale fits none of the 2 images: give --scale one "
                               "value per spatial axis (2), got 3"),
], ids=["physical-without-sizes", "scale-of-no-image"])
def test_a_spacing_no_image_can_take_is_refused_once_up_front(flags, words, tmp_path,
                                                              capsys):
    """Each file failed alone, with the same message, after it was read."""
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, _volume()[3])  # no pixel sizes
    out = tmp_path / "out"
    code, err = _segment([tmp_path / "a.tif", tmp_path / "b.tif", "--out", out, *flags],
                         capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not list(out.iterdir())  # no labels, no report, no manifest


@pytest.mark.parametrize("flags", [["--sigma-units", "physical"], ["--scale", "1,1,1"]],
                         ids=["physical", "scale"])
def test_a_spacing_that_fits_some_images_fails_the_others_alone(vol, flags, tmp_path,
                                                                capsys):
    tifffile.imwrite(tmp_path / "plane.tif", _volume()[3])  # 2-D, no pixel sizes
    out = tmp_path / "out"
    code, _ = _segment([vol, tmp_path / "plane.tif", "--out", out, "--mode", "slices",
                        *flags], capsys)
    rows = {r["file"].split("/")[-1]: r for r in read_rows(out / "iem-report.csv")}
    assert code == 1 and rows["vol.ome.tif"]["status"] == "done"
    assert rows["plane.tif"]["status"] == "failed" and "--scale" in rows["plane.tif"]["error"]


def test_a_two_d_ome_tiff_gives_ome_labels(tmp_path, capsys):
    img = _volume()[3]
    src = _ome(tmp_path / "plane.ome.tif", img, axes="YX", PhysicalSizeX=0.5,
               PhysicalSizeY=0.5)
    code, err = _segment([src, "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    labels = tmp_path / "out" / "plane.ome.tif"
    assert image_info(labels).ome.axes == "YX"
    assert read_provenance(labels)["scale"] == [0.5, 0.5]


def test_malformed_ome_xml_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.ome.tif"
    tifffile.imwrite(bad, _volume(), description='<?xml version="1.0"?><OME><Image>'
                     '<Pixels PhysicalSizeX="0.2"></Image></OME>', metadata=None)
    with pytest.raises(ImageReadError, match="malformed OME-XML"):
        image_info(bad)
    code, err = _segment([bad, "--out", tmp_path / "out", "--mode", "volume"], capsys)
    assert code == 1 and "malformed OME-XML" in err and "Traceback" not in err


def _xml(pixels: str = 'PhysicalSizeX="0.2"', extra: str = "") -> str:
    return ('<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
            f'<Image ID="Image:0"><Pixels ID="Pixels:0" {pixels}>{extra}</Pixels>'
            '</Image></OME>')


@pytest.mark.parametrize(("xml", "why"), [
    ('<!DOCTYPE OME [<!ENTITY a "aaaa">]>' + _xml(), "document type"),
    (_xml(extra='<TiffData><UUID FileName="../other.ome.tif">urn:uuid:1</UUID>'
                '</TiffData>'), "multi-file"),
    ('<OME><BinaryOnly MetadataFile="a.ome.xml" UUID="x"/></OME>', "BinaryOnly"),
    ("<Foo/>", "not <OME>"),
    ("<OME/>", "Image/Pixels"),
    ("x" * (2**24 + 1), "longer than"),
])
def test_untrusted_ome_xml_is_refused(xml, why):
    with pytest.raises(ImageReadError, match=why):
        parse_ome_xml(xml, "a.ome.tif")


def test_sizes_are_checked_and_units_converted():
    ome = parse_ome_xml(_xml('PhysicalSizeZ="1" PhysicalSizeZUnit="mm" '
                             'PhysicalSizeY="200" PhysicalSizeYUnit="nm" '
                             'PhysicalSizeX="0.2"'), "a.ome.tif")
    ome = type(ome)("ZYX", ome.sizes, ome.units, ome.invalid)
    assert ome.scale(3) == pytest.approx((1000.0, 0.2, 0.2))
    assert ome.scale(2) == pytest.approx((0.2, 0.2))
    bad = parse_ome_xml(_xml('PhysicalSizeZ="0" PhysicalSizeY="nan" PhysicalSizeX="1"'),
                        "a.ome.tif")
    bad = type(bad)("ZYX", bad.sizes, bad.units, bad.invalid)
    assert bad.sizes["Z"] is None and set(bad.invalid) == {"Z", "Y"}
    with pytest.raises(ValueError, match="PhysicalSizeZ='0' is not a positive.*--scale"):
        bad.scale(3)
    odd = parse_ome_xml(_xml('PhysicalSizeY="1" PhysicalSizeYUnit="pixel" '
                             'PhysicalSizeX="1"'), "a.ome.tif")
    with pytest.raises(ValueError, match="cannot be compared"):
        type(odd)("YX", odd.sizes, odd.units).scale(2)
    absent = type(odd)("ZYX", {"Z": None, "Y": 1.0, "X": 1.0}, odd.units)
    assert absent.scale(3) is None  # no z spacing: none is made up


def test_channel_axis_and_scale_from_the_ome_axes(tmp_path):
    data = np.stack([_volume(), _volume()[::-1]])
    src = _ome(tmp_path / "two.ome.tif", data, axes="CZYX", **SIZES)
    pixels, ome = read_ome(src)
    assert pixels.shape == (2, 6, 32, 32) and ome.axes == "CZYX"
    how = _how(image_info(src), _cfg(tmp_path))
    assert how["channel_axis"] == 0 and how["scale"] == (1.0, 0.2, 0.2)
    assert _how(image_info(src), _cfg(tmp_path, channel_axis=1))["channel_axis"] == 1


@pytest.mark.parametrize("dropped", [
    lambda f: f == "no_structure",
    lambda f: f in ("no_structure", "stopped_at_cap"),
    lambda f: f in ("no_structure", "stopped_at_cap") or f.endswith("_version")])
def test_reports_of_earlier_versions_are_merged_into(tmp_path, dropped):
    old = [f for f in REPORT_FIELDS if not dropped(f)]
    path = tmp_path / "iem-report.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=old)
        writer.writeheader()
        writer.writerow({"file": "a.png", "status": "done", "converged": "False"})
    row = read_rows(path)[0]
    assert row["file"] == "a.png" and record_from_row(row).stopped_at_cap is None
