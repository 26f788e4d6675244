"""Reading and writing: round trips, atomic writes, bomb refusal, safe names."""
import os
import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_iem.files import io as iem_io
from napari_iem.files.io import (
    ImageReadError,
    ImageTooLargeError,
    atomic_output,
    existing_labels,
    find_images,
    image_info,
    output_path,
    overlay_rgb,
    read_image,
    read_labels,
    safe_stem,
    unique_stems,
    write_labels,
    write_overlay,
)

# ---------------------------------------------------------------- crafted files

def png_bomb(path, width=10**6, height=10**6):
    """A valid tiny PNG whose IHDR is patched to claim ``width`` x ``height`` (CRC fixed)."""
    iio.imwrite(path, np.zeros((2, 2), np.uint8), extension=".png")
    raw = bytearray(Path(path).read_bytes())
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    Path(path).write_bytes(bytes(raw))


def tiff_bomb(path, height=10**6, width=10**6):
    """A hand-made little-endian TIFF whose tags claim ``height`` x ``width`` 8-bit pixels
    with a 10-byte deflate strip."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 8), (262, 3, 1),
            (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, 10)]
    data_offset = 8 + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, typ, value in tags:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, 1) + packed
    ifd += struct.pack("<I", 0)
    Path(path).write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x78\x9c" + bytes(8))


# ---------------------------------------------------------------- reading

def test_png_round_trip_8bit(tmp_path):
    labels = (np.arange(48 * 40).reshape(48, 40) % 5).astype(np.uint8)
    p = write_labels(labels, tmp_path, "lab")
    assert p == tmp_path / "lab.png"
    back = read_image(p)  # as a picture: the palette's colours
    assert back.dtype == np.uint8 and back.shape == (48, 40, 3)
    assert (read_labels(p) == labels).all()  # as labels: the values


def test_tiff_round_trip_16bit_and_nd(tmp_path):
    labels = (np.arange(32 * 32).reshape(32, 32) % 300).astype(np.uint16)
    p = write_labels(labels, tmp_path, "big")
    assert p.suffix == ".tif"
    back = read_image(p)
    assert back.dtype == np.uint16 and (back == labels).all()
    vol = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    p = write_labels(vol, tmp_path, "vol")
    assert p.suffix == ".tif" and (read_image(p) == vol).all()


def test_reads_16bit_tiff_image_and_rgb_png(tmp_path):
    img = np.random.default_rng(0).integers(0, 65535, (40, 36), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", img)
    info = image_info(tmp_path / "a.tif")
    assert info.shape == (40, 36) and info.dtype == "uint16" and info.pixels == 1440
    assert (read_image(tmp_path / "a.tif") == img).all()
    rgb = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "c.png", rgb)
    info = image_info(tmp_path / "c.png")
    assert info.shape == (20, 30, 3) and info.format == "png"
    assert (read_image(tmp_path / "c.png") == rgb).all()
    iio.imwrite(tmp_path / "d.jpg", rgb)
    assert read_image(tmp_path / "d.jpg").shape == (20, 30, 3)
    rgb16 = np.zeros((4, 16, 16, 3), np.uint16)
    tifffile.imwrite(tmp_path / "e.tif", rgb16, photometric="rgb")
    assert read_image(tmp_path / "e.tif").shape == (4, 16, 16, 3)
    assert image_info(tmp_path / "e.tif").pixels == 4 * 16 * 16


def test_format_from_content_not_name(tmp_path):
    img = np.zeros((8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "really_tiff.png", img)
    assert image_info(tmp_path / "really_tiff.png").format == "tiff"


@pytest.mark.parametrize(
    "content, words",
    [(b"", "empty file"), (b"hello, not an image", "not a PNG, JPEG or TIFF"),
     (b"\x89PNG\r\n\x1a\n\x00\x00", "cannot read")],
)
def test_bad_files(tmp_path, content, words):
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageReadError, match=words):
        read_image(p)


def test_truncated_png(tmp_path):
    img = np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8)
    iio.imwrite(tmp_path / "t.png", img)
    raw = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="t.png"):
        read_image(tmp_path / "t.png")


def test_missing_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_png_bomb_refused_before_decoding(tmp_path):
    png_bomb(tmp_path / "bomb.png")
    with pytest.raises(ImageTooLargeError, match="pixels"):
        image_info(tmp_path / "bomb.png")
    with pytest.raises(ImageTooLargeError):
        read_image(tmp_path / "bomb.png")


def test_png_moderate_claim_uses_our_limit(tmp_path):
    png_bomb(tmp_path / "b.png", 3000, 3000)
    with pytest.raises(ImageTooLargeError, match="limit of 1,000,000"):
        read_image(tmp_path / "b.png", max_pixels=10**6)


def test_tiff_bomb_refused(tmp_path):
    tiff_bomb(tmp_path / "bomb.tif")
    with pytest.raises(ImageTooLargeError, match="1000000x1000000"):
        read_image(tmp_path / "bomb.tif")


@pytest.mark.parametrize("claim", ["file size", "header"])
def test_an_image_too_large_says_what_to_do(tmp_path, claim):
    """A file larger than the pixel limit allows was refused as '... bytes, more than
    the limit for this kind of file', which named neither the limit to raise nor the
    block mode that reads an image larger than memory."""
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((40, 40), np.uint8))
    if claim == "file size":
        os.truncate(path, 4 << 20)  # sparse: no disk taken
    with pytest.raises(ImageTooLargeError) as info:
        image_info(path, max_pixels=1000)
    assert "NAPARI_IEM_MAX_PIXELS" in str(info.value) and "--blocks" in str(info.value)


def test_max_pixels_is_configurable(tmp_path):
    iio.imwrite(tmp_path / "s.png", np.zeros((40, 40), np.uint8))
    with pytest.raises(ImageTooLargeError):
        read_image(tmp_path / "s.png", max_pixels=1000)
    assert read_image(tmp_path / "s.png", max_pixels=1600).shape == (40, 40)


def test_read_labels_colour_mask(tmp_path):
    m = np.zeros((6, 6, 3), np.uint8)
    m[1:3, 1:3] = (255, 0, 0)
    m[4:6, 4:6] = (0, 255, 0)
    iio.imwrite(tmp_path / "m.png", m)
    lab = read_labels(tmp_path / "m.png")
    assert lab.shape == (6, 6) and lab[0, 0] == 0
    assert len(np.unique(lab)) == 3
    grey3 = np.repeat((np.eye(6) * 255).astype(np.uint8)[..., None], 3, -1)
    iio.imwrite(tmp_path / "g.png", grey3)
    assert (read_labels(tmp_path / "g.png") == grey3[..., 0]).all()


def test_a_cmyk_jpeg_is_read_as_its_rgb_colours(tmp_path):
    """A CMYK JPEG (what print workflows save) came back as four ink channels, the
    fourth (black ink) taken for alpha, and as a mask its labels inverted: black ink
    (no light) labelled 255 and white paper 0."""
    from PIL import Image

    grey = np.zeros((16, 16), np.uint8)
    grey[4:12, 4:12] = 255
    Image.fromarray(grey).convert("CMYK").save(tmp_path / "m.jpg", quality=100)
    info, image = image_info(tmp_path / "m.jpg"), read_image(tmp_path / "m.jpg")
    assert image.shape == info.shape == (16, 16, 3)
    assert np.abs(image[..., 0].astype(int) - grey).max() < 8
    assert np.array_equal(read_labels(tmp_path / "m.jpg") > 127, grey > 127)


# ---------------------------------------------------------------- writing

def test_atomic_write_leaves_no_temp_file(tmp_path):
    write_labels(np.ones((8, 8), np.uint8), tmp_path, "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_atomic_write_interrupted_keeps_old_file(tmp_path):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_write_failure_cleans_up(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise OSError("disk full")

    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        write_labels(np.ones((8, 8), np.uint8), tmp_path, "a")
    assert list(tmp_path.iterdir()) == []


def test_write_touches_nothing_but_its_target(tmp_path):
    """The other suffix's file may be a user's: removing it is the manifest's call."""
    write_labels(np.full((4, 4), 300, np.uint16), tmp_path, "a")
    write_labels(np.ones((4, 4), np.uint8), tmp_path, "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.tif"]
    assert existing_labels(tmp_path, "a") == tmp_path / "a.png"
    assert existing_labels(tmp_path, "b") is None


def test_write_rejects_float_labels(tmp_path):
    with pytest.raises(ValueError, match="integers"):
        write_labels(np.zeros((4, 4), np.float32), tmp_path, "f")


def test_overlay(tmp_path):
    img = np.full((16, 16), 100, np.uint8)
    lab = np.zeros((16, 16), np.uint8)
    lab[4:12, 4:12] = 1
    rgb = overlay_rgb(img, lab)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 100).all()  # background untouched
    assert tuple(rgb[4, 4]) == (255, 255, 0)  # boundary in yellow
    p = write_overlay(np.zeros((16, 16), np.uint16), lab, tmp_path / "o.png")
    assert read_image(p).shape == (16, 16, 3)
    with pytest.raises(ValueError):
        overlay_rgb(img, lab[:8])


# ---------------------------------------------------------------- names

@pytest.mark.parametrize(
    "name, stem",
    [("../../etc/passwd", "passwd"), ("..", "image"), ("...png", "image"),
     (".hidden.png", "hidden"), ("a b/c?.d.tif", "c_.d"), ("x\\..\\..\\y.png", "y"),
     ("CON.png", "_CON"), ("Pferd_ä.jpg", "Pferd_ä"), ("img.TIFF", "img"),
     ("a" * 300 + ".png", "a" * 150)],
)
def test_safe_stem(name, stem):
    assert safe_stem(name) == stem


def test_output_path_stays_inside(tmp_path):
    for evil in ["../x", "/etc/passwd", "..", "a/../../b", "\x00"]:
        p = output_path(tmp_path, evil, ".png")
        assert p.resolve().parent == tmp_path.resolve()


def test_unique_stems():
    """Clashing stems all get names from what tells them apart, whatever the order."""
    assert unique_stems(["d1/a.png", "d2/a.png", "b.png"]) == ["a_d1", "a_d2", "b"]
    assert unique_stems(["d/a.png", "d/a.tif"]) == ["a_png", "a_tif"]
    assert unique_stems(["x/A.png", "y/a.png", "z/a.png"]) == ["A_x", "a_y", "a_z"]
    assert unique_stems(["r1/img/a.png", "r2/img/a.png"]) == ["a_r1_img", "a_r2_img"]
    # a longer name that is another input's own takes its path's tag
    names = unique_stems(["d/a.png", "d/a.tif", "d/a_png.png"])
    assert len({n.lower() for n in names}) == 3 and names[1] == "a_tif"


@pytest.mark.parametrize("names", [
    ["d/a.png", "d/a.png.tif"],  # a stem that ends in an image suffix
    ["d/" + "x" * 160 + ".png", "d/" + "X" * 160 + ".png"],  # tagged beyond the cap
    ["d/CON.png", "d/con.png"],
])
def test_the_output_names_are_the_stems_unique_stems_gave(tmp_path, names):
    """output_path made the stem safe again: ``a.png``'s and ``a.png.tif``'s stems,
    ``a`` and ``a.png``, both became ``a.png`` (the second lost its suffix), and names
    tagged beyond the length cap lost their tags; two inputs then wrote one file."""
    stems = unique_stems(names)
    paths = [output_path(tmp_path, stem, ".png") for stem in stems]
    assert [p.name for p in paths] == [stem + ".png" for stem in stems]
    assert len({p.name.lower() for p in paths}) == len(names)
    assert all(len(p.name.encode()) + 19 <= 255 for p in paths)  # + a temporary name's


def test_unique_stems_do_not_depend_on_the_order():
    import itertools

    paths = ["d1/a.png", "d2/a.png", "d1/a.tif", "e/A.png", "b.png", "x/y/b.png", "b.tif"]
    first = dict(zip(paths, unique_stems(paths)))
    for order in itertools.islice(itertools.permutations(paths), 0, 5040, 97):
        assert dict(zip(order, unique_stems(list(order)))) == first
    assert len({n.lower() for n in first.values()}) == len(paths)


def test_find_images(tmp_path):
    for n in ["b.png", "a.TIF", "c.jpeg", ".hidden.png", "notes.txt"]:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    names = [p.name for p in find_images([tmp_path])]
    assert names == ["a.TIF", "b.png", "c.jpeg"]
    assert "d.png" in [p.name for p in find_images([tmp_path], recursive=True)]
    # a file named directly is taken whatever its suffix; duplicates collapse
    got = find_images([tmp_path / "notes.txt", tmp_path, tmp_path / "b.png"])
    assert [p.name for p in got] == ["notes.txt", "a.TIF", "b.png", "c.jpeg"]
    with pytest.raises(FileNotFoundError, match="input not found"):
        find_images([tmp_path / "missing"])


def test_module_exports():
    for name in iem_io.__all__:
        assert hasattr(iem_io, name)


# ---------------------------------------------------------------- bounded reads

def test_read_bounded_counts_what_it_reads(tmp_path):
    from napari_iem.files.read import FileReadError, read_bounded

    p = tmp_path / "f.txt"
    p.write_bytes(b"x" * 100)
    assert read_bounded(p, 100) == b"x" * 100
    with pytest.raises(FileReadError, match="more than the limit"):
        read_bounded(p, 99)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(FileReadError, match="not a regular file"):
        read_bounded(tmp_path / "zero", 10)
    with pytest.raises(FileReadError, match="folder"):
        read_bounded(tmp_path, 10)


# ---------------------------------------------------------------- the manifest

def test_manifest_claims_finishes_and_judges(tmp_path):
    from napari_iem.files.journal import journalled
    from napari_iem.files.manifest import Manifest, Source, file_sha256

    src, other, out = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "out"
    iio.imwrite(src, np.full((8, 8), 7, np.uint8))
    iio.imwrite(other, np.full((8, 8), 9, np.uint8))
    out.mkdir()
    m = Manifest.load(out)
    assert m.owns("a.png") and m.verdict("a.png", Source.of(src), "s") == ("missing", "")
    m.claim("a.png", Source.of(src), "s")
    m.save()
    path = write_labels(np.ones((8, 8), np.uint8), out, "a")  # no write record
    assert Manifest.load(out).verdict("a.png", Source.of(src), "s")[0] == "foreign"
    with journalled(out):  # as a worker writes: recorded before the rename
        path = write_labels(np.ones((8, 8), np.uint8), out, "a")
    assert Manifest.load(out).verdict("a.png", Source.of(src), "s") == ("finished", "")
    m.finish("a.png", path.stat().st_size, file_sha256(path))
    m.save()
    m = Manifest.load(out)  # read back
    assert m.verdict("a.png", Source.of(src), "s") == ("finished", "")
    state, why = m.verdict("a.png", Source.of(src), "t")
    assert state == "stale" and "other settings" in why
    state, why = m.verdict("a.png", Source.of(other), "s")
    assert state == "stale" and "holds the labels of" in why and str(src) in why
    iio.imwrite(src, np.full((8, 8), 8, np.uint8))
    assert "changed since" in m.verdict("a.png", Source.of(src), "s")[1]
    path.write_bytes(path.read_bytes() + b"edited")  # a user's edit: no longer ours
    assert not m.owns("a.png") and m.verdict("a.png", Source.of(src), "s")[0] == "foreign"
    (out / "mine.png").write_bytes(b"a user's file")
    assert not m.owns("mine.png")


def test_a_manifest_that_is_not_ours_is_refused(tmp_path):
    from napari_iem.files.manifest import MANIFEST_NAME, Manifest, ManifestError

    (tmp_path / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(ManifestError, match="move it away"):
        Manifest.load(tmp_path)


def test_label_pngs_are_palette_images_that_keep_their_values(tmp_path):
    """A mask opened in any image viewer shows its regions in colour, and any label
    reader (Pillow, napari) gets the values back unchanged."""
    from PIL import Image

    from napari_iem.files.write import write_labels

    labels = np.zeros((24, 32), np.uint8)
    labels[4:12, 4:20], labels[14:, :6] = 1, 2
    path = write_labels(labels, tmp_path, "mask")
    with Image.open(path) as im:
        assert im.mode == "P" and im.getpalette()[:3] == [0, 0, 0]
        assert im.getpalette()[3:6] != [1, 1, 1]  # label 1 has a visible colour
        np.testing.assert_array_equal(np.asarray(im), labels)


def test_write_records_are_made_for_outputs_only(tmp_path):
    """Records are made for what is renamed into the output folder, not for the files
    of an OME-Zarr's temporary folder or for records themselves."""
    from napari_iem.files.journal import journalled, read_records
    from napari_iem.files.ome_zarr_write import write_ome_zarr_labels

    labels = np.zeros((16, 16), np.uint8)
    labels[4:12, 4:12] = 1
    with journalled(tmp_path):
        write_labels(labels, tmp_path, "a")
        write_ome_zarr_labels(labels, tmp_path / "b.ome.zarr", axes="yx", scale=[1, 1],
                              provenance={})
    assert sorted(read_records(tmp_path)) == ["a.png", "b.ome.zarr"]
