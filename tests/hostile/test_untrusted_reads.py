"""Files that are not what they claim: FIFOs, devices, bombs, deep nesting, bad values.

Each gives a clear message (one line, exit status 2 for the command, a ``failed`` row
for one input of many), never a hang, a traceback or a machine out of memory, and no
user file changes.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from hostile_files import (
    cli,
    one_clear_line,
    png_claiming,
    report_rows,
    segment_args,
    snapshot,
    tiff_with_samples,
    write_disc,
)

NO_HANG = pytest.mark.timeout(60)


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "in"
    write_disc(d / "good.png")
    return d


# ------------------------------------------------------------------ settings files

@NO_HANG
@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_settings_file_that_never_ends_is_refused(src, tmp_path, capsys, kind):
    cfg = tmp_path / "s.toml"
    if kind == "fifo":
        os.mkfifo(cfg)
    else:
        cfg.symlink_to("/dev/zero")
    code, _, err = cli(segment_args(src, out=tmp_path / "o", extra=["--config", cfg]),
                       capsys)
    assert code == 2 and "not a regular file" in err and one_clear_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("suffix, text", [
    (".toml", "x = " + "[" * 100_000 + "]" * 100_000),
    (".json", "[" * 100_000 + "]" * 100_000),
    (".toml", "# " + "x" * (2 << 20)),
])
def test_deep_or_huge_settings_files_are_one_clear_error(src, tmp_path, capsys, suffix,
                                                         text):
    cfg = tmp_path / f"s{suffix}"
    cfg.write_text(text)
    code, _, err = cli(segment_args(src, out=tmp_path / "o", extra=["--config", cfg]),
                       capsys)
    assert code == 2 and one_clear_line(err)
    assert "nested" in err or "more than the limit" in err


@pytest.mark.parametrize("params, knob", [
    ("max_iter = -5", "max_iter"), ("max_iter = 0", "max_iter"),
    ("max_iter = 2.5", "max_iter"), ("smooth_threshold = 0", "smooth_threshold"),
    ("smooth_threshold = 100", "smooth_threshold"), ("lam = nan", "lam"),
])
def test_degenerate_settings_are_refused_before_any_work(src, tmp_path, capsys, params,
                                                         knob):
    """A run that could not do work is never written as done."""
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'preset = "default"\n[params]\n{params}\n')
    out = tmp_path / "o"
    code, _, err = cli(segment_args(src, out=out, extra=["--config", cfg]), capsys)
    assert code == 2 and knob in err and one_clear_line(err)
    assert not out.exists()


def test_load_settings_checks_the_whole_file_first(tmp_path):
    """What the widget's Load settings calls: one bad knob anywhere refuses the file,
    so nothing of it can be half-applied."""
    from napari_iem.files.settings import SettingsError, load_settings

    cfg = tmp_path / "s.toml"
    cfg.write_text('preset = "photo"\nregions = 3\n[params]\nsigma = 4.0\nmax_iter = -5\n')
    with pytest.raises(SettingsError, match="max_iter"):
        load_settings(cfg)


# ------------------------------------------------------------------ images

@NO_HANG
def test_fifos_and_devices_among_the_inputs_fail_alone(src, tmp_path, capsys):
    os.mkfifo(src / "pipe.png")
    (src / "zero.tif").symlink_to("/dev/zero")
    code, _, err = cli(segment_args(src / "pipe.png", src / "zero.tif", src / "good.png",
                                    out=tmp_path / "o"), capsys)
    rows = {os.path.basename(r["file"]): r for r in report_rows(tmp_path / "o")}
    assert code == 1 and rows["good.png"]["status"] == "done"
    for name in ("pipe.png", "zero.tif"):
        assert rows[name]["status"] == "failed"
        assert "not a regular file" in rows[name]["error"]
    assert "Traceback" not in err


def test_the_samples_axis_counts_against_the_pixel_limit(tmp_path):
    """A small TIFF of 16x16 pixels with 1024 samples each decodes 256 K values."""
    from napari_iem.files.read import ImageTooLargeError, image_info, read_image

    bomb = tiff_with_samples(tmp_path / "s.tif", 1024)
    assert bomb.stat().st_size < 10_000
    with pytest.raises(ImageTooLargeError, match="262,144 pixels"):
        read_image(bomb, max_pixels=100_000)
    rgb = tiff_with_samples(tmp_path / "rgb.tif", 3)  # a colour axis is not counted
    assert image_info(rgb, max_pixels=256).pixels == 256


def test_pages_count_too(tmp_path):
    from napari_iem.files.read import ImageTooLargeError, read_image

    tifffile.imwrite(tmp_path / "p.tif", np.zeros((50, 16, 16), np.uint8))
    with pytest.raises(ImageTooLargeError, match="12,800 pixels"):
        read_image(tmp_path / "p.tif", max_pixels=10_000)


def test_pillows_limit_is_left_as_it_was(tmp_path):
    """Reading one large image used to raise Pillow's process-wide bomb limit."""
    from PIL import Image

    from napari_iem.files.read import ImageReadError, image_info, read_image

    before = Image.MAX_IMAGE_PIXELS
    big = png_claiming(tmp_path / "big.png", 15000, 15000)  # above Pillow's own limit
    assert image_info(big).shape == (15000, 15000)
    with pytest.raises(ImageReadError):
        read_image(big)  # the data is not there
    assert Image.MAX_IMAGE_PIXELS == before


def test_a_bad_pixel_limit_variable_names_itself(src, tmp_path, capsys, monkeypatch):
    env = dict(os.environ, NAPARI_IEM_MAX_PIXELS="lots")
    done = subprocess.run([sys.executable, "-c", "import napari_iem.files.io"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("NAPARI_IEM_MAX_PIXELS", "lots")
    code, _, err = cli(segment_args(src, out=tmp_path / "o"), capsys)
    assert code == 2 and "NAPARI_IEM_MAX_PIXELS" in err and "'lots'" in err
    assert one_clear_line(err)


def test_broken_images_fail_one_by_one_with_their_reason(src, tmp_path, capsys):
    """Truncated, empty, not an image, a huge header, NaN, 5-D: the rest go on."""
    raw = (src / "good.png").read_bytes()
    (src / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (src / "empty.png").write_bytes(b"")
    (src / "text.png").write_text("not an image")
    png_claiming(src / "bomb.png", 10**6, 10**6)
    tifffile.imwrite(src / "nan.tif", np.full((16, 16), np.nan, np.float32))
    tifffile.imwrite(src / "five.tif", np.zeros((2, 2, 2, 8, 8), np.uint8))
    before = snapshot(src)
    code, _, err = cli(segment_args(src, out=tmp_path / "o"), capsys)
    rows = {os.path.basename(r["file"]): r for r in report_rows(tmp_path / "o")}
    assert code == 1 and rows.pop("good.png")["status"] == "done"
    assert {r["status"] for r in rows.values()} == {"failed"}
    assert all(r["error"] for r in rows.values())
    assert "empty file" in rows["empty.png"]["error"]
    assert "not a PNG, JPEG or TIFF" in rows["text.png"]["error"]
    assert "pixels" in rows["bomb.png"]["error"]
    assert "Traceback" not in err and snapshot(src) == before


@pytest.mark.parametrize("name", ["ä ö.png", "..png", " lead.png", "CON.png",
                                  "a\nb.png", "-dash.png", "x" * 200 + ".png",
                                  "漢" * 80 + ".png"])
def test_odd_names_stay_inside_the_output_folder(tmp_path, capsys, name):
    from napari_iem.batch.report import read_rows

    src, out = tmp_path / "in", tmp_path / "out"
    write_disc(src / name)  # named directly: a folder's hidden files are not inputs
    code, _, err = cli(segment_args(src / name, out=out), capsys)
    assert code == 0, err
    (row,) = read_rows(out / "iem-report.csv")
    made = out / row["output"]
    assert made.is_file() and made.resolve().parent == out.resolve()
    assert not made.name.startswith(".")
    assert row["file"] == str(src / name)


def _one_chunk_ome_zarr(tmp_path):
    from napari_iem.files.ome_zarr import write_ome_zarr_labels

    path = write_ome_zarr_labels((np.arange(64 * 64).reshape(64, 64) % 7).astype(np.uint8),
                                 tmp_path / "img.ome.zarr", axes="yx", scale=(1, 1),
                                 provenance={})
    (chunk,) = [p for p in (path / "0").rglob("*") if p.is_file() and
                not p.name.startswith(".") and p.name != "zarr.json"]
    return path, chunk


@NO_HANG
@pytest.mark.parametrize("kind", ["fifo", "oversized"])
def test_an_ome_zarr_chunk_is_read_bounded(tmp_path, kind):
    """A chunk of an OME-Zarr that is a FIFO (or a link to /dev/zero) hung the reader
    (or read until memory ran out); one far larger than its chunk's pixels was read
    whole."""
    from napari_iem.files.read import ImageReadError, read_image

    path, chunk = _one_chunk_ome_zarr(tmp_path)
    chunk.unlink()
    if kind == "fifo":
        os.mkfifo(chunk)
    else:
        chunk.write_bytes(b"\0" * (4 << 20))  # 4 MB for 4096 pixels of 1 byte
    with pytest.raises(ImageReadError, match="not a regular file" if kind == "fifo"
                       else "more than the limit"):
        read_image(path)


def test_an_ome_zarr_without_a_chunk_reads_its_fill_value(tmp_path):
    """zarr leaves out chunks of fill values: a missing chunk is not an error."""
    from napari_iem.files.read import read_image

    path, chunk = _one_chunk_ome_zarr(tmp_path)
    chunk.unlink()
    assert (read_image(path) == 0).all()


@pytest.mark.parametrize("bad", ["nan", "complex", "negative"])
def test_masks_that_are_not_labels_are_not_scored(tmp_path, capsys, bad):
    """A ground truth of NaN (or complex numbers, or -1: 255 saved as int8) for its
    foreground was scored as background, silently: a wrong score in the table, exit 0."""
    import imageio.v3 as iio

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    mask = np.zeros((24, 24), np.uint8)
    mask[6:18, 6:18] = 1
    for name in ("a", "b"):
        iio.imwrite(pred / f"{name}.png", mask)
    iio.imwrite(gt / "a.png", mask)
    values = {"nan": np.where(mask, np.nan, 0).astype(np.float32),
              "complex": (mask + 1j).astype(np.complex64),
              "negative": mask.astype(np.int8) * -1}[bad]
    tifffile.imwrite(gt / "b.tif", values)
    code, out, err = cli(["evaluate", pred, gt, "--json"], capsys)
    assert code == 1 and "b.tif" in err and "Traceback" not in err
    assert '"n_images": 1' in out


@pytest.mark.parametrize("layout", ["contig", "separate"])
def test_an_rgb_tiff_mask_is_read_as_the_same_png_is(tmp_path, capsys, layout):
    """A colour-coded mask saved as RGB TIFF was refused ('ground truth 24x24x3') while
    the same mask as PNG was read as labels, one per colour."""
    import imageio.v3 as iio

    from napari_iem.files.read import read_labels

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    colours = np.zeros((24, 24, 3), np.uint8)
    colours[6:18, 6:18] = (255, 0, 0)
    colours[:4, :4] = (0, 255, 0)
    iio.imwrite(tmp_path / "m.png", colours)
    stored = colours if layout == "contig" else np.moveaxis(colours, -1, 0)
    tifffile.imwrite(gt / "a.tif", stored, photometric="rgb", planarconfig=layout)
    assert np.array_equal(read_labels(gt / "a.tif"), read_labels(tmp_path / "m.png"))
    iio.imwrite(pred / "a.png", (colours[..., 0] > 0).astype(np.uint8))
    code, out, err = cli(["evaluate", pred, gt, "--json"], capsys)
    assert code == 0 and '"n_images": 1' in out, err


def test_a_stack_of_three_planes_stays_a_stack(tmp_path):
    """A (Y, X, 3) TIFF that is not RGB is three planes, as stored, not colours."""
    from napari_iem.files.read import read_labels

    planes = np.arange(24 * 24 * 3, dtype=np.uint16).reshape(24, 24, 3) % 5
    tifffile.imwrite(tmp_path / "s.tif", planes, photometric="minisblack")
    assert np.array_equal(read_labels(tmp_path / "s.tif"), planes)


def _plain_zarr(tmp_path, group: bool):
    """A zarr of one 64x64 chunk (an array, or a group holding it as ``0``), no NGFF."""
    import zarr

    root = tmp_path / "plain.zarr"
    values = (np.arange(64 * 64).reshape(64, 64) % 7).astype(np.uint16)
    if group:
        zarr.open_group(str(root), mode="w").create_array("0", data=values, chunks=(64, 64))
        node = root / "0"
    else:
        zarr.create_array(str(root), data=values, chunks=(64, 64))
        node = root
    (chunk,) = [p for p in node.rglob("*") if p.is_file() and p.name != "zarr.json"]
    return root, chunk


@NO_HANG
@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("kind", ["fifo", "oversized", "object dtype"])
def test_a_plain_zarr_in_block_mode_is_read_bounded(tmp_path, kind, group):
    """``--blocks`` on a plain zarr (no NGFF) opened it with ``zarr.open``: a FIFO
    chunk hung it, an oversized one was read whole, its metadata went unchecked."""
    import json

    from napari_iem import segment_blocks

    path, chunk = _plain_zarr(tmp_path, group)
    if kind == "object dtype":
        meta_path = (path / "0" if group else path) / "zarr.json"
        meta = json.loads(meta_path.read_text())
        meta["data_type"] = "object"
        meta_path.write_text(json.dumps(meta))
    else:
        chunk.unlink()
    if kind == "fifo":
        os.mkfifo(chunk)
    elif kind == "oversized":
        chunk.write_bytes(b"\0" * (4 << 20))  # 4 MB for 4096 pixels of 2 bytes
    message = {"fifo": "not a regular file", "oversized": "more than the limit",
               "object dtype": "not numeric"}[kind]
    with pytest.raises(ValueError, match=message):
        segment_blocks(path, None, block_size=256, max_size=32, max_iter=3)
