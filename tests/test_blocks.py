"""One image larger than memory, block by block: the whole-image run's labels, exactly."""
import numpy as np
import pytest
import zarr

from napari_iem import segment, segment_blocks
from napari_iem.batch import BatchError
from napari_iem.batch import blocks as blocks_mod
from napari_iem.engine import blockwise
from napari_iem.engine.resample import carry_labels, downsample, input_support

from synthetic import textured_ball


def blobs(shape=(512, 768), seed=0, centres=((150, 200, 80), (350, 520, 110),
                                             (100, 650, 50), (420, 120, 60))):
    """16-bit smooth bright blobs on a noisy floor."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, 300.0)
    for cy, cx, r in centres:
        img += 900 * np.exp(-((((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) ** 3))
    return (img + rng.normal(0, 60, shape)).clip(0, 65535).astype(np.uint16)


@pytest.mark.parametrize("knobs", [
    dict(preset="microscopy", max_size=512, coarse_size=128, max_iter=30),  # 3 levels
    dict(preset="photo", max_size=200, max_iter=30, flip=True),
    dict(preset="photo", max_size=200, max_iter=2),  # stops at the cap
])
def test_blocks_equal_the_whole_image_run(knobs):
    img = blobs()
    whole = segment(img, refine=True, maps=False, **knobs)
    run = segment_blocks(img, None, 2, block_size=256, **knobs)
    assert run.blocks == 6
    np.testing.assert_array_equal(run.labels[:], whole.labels)
    assert run.facts["levels"] == whole.metadata["levels"]
    assert run.facts["band_pixels"] == whole.metadata["refine"]["band_pixels"]
    assert (run.facts["converged"], run.facts["stopped_at_cap"]) == (whole.converged,
                                                                     whole.stopped_at_cap)


def test_volume_blocks_equal_the_whole_volume_run():
    vol, _ = textured_ball((40, 120, 130), radius=30)
    knobs = dict(preset="microscopy", mode="volume", max_size=50, max_iter=20)
    whole = segment(vol, refine=True, maps=False, **knobs)
    run = segment_blocks(vol, None, 2, block_size=96, **knobs)
    assert run.blocks == 4
    np.testing.assert_array_equal(run.labels[:], whole.labels)


def test_only_blocks_touching_the_band_are_optimised(monkeypatch):
    img = blobs((768, 768), centres=((128, 128, 60),))
    refined = []
    real = blockwise.refine_block
    monkeypatch.setattr(blockwise, "refine_block",
                        lambda plan, lab, core, raw: refined.append(core) or
                        real(plan, lab, core, raw))
    steps = []
    knobs = dict(preset="microscopy", max_size=192, max_iter=30)
    run = segment_blocks(img, None, 2, block_size=256, progress=lambda *a: steps.append(a),
                         **knobs)
    assert run.blocks == 9 and run.blocks_refined == len(refined) == 1
    assert steps == [(i, 9) for i in range(1, 10)]
    plan_labels = carry_labels(run.working_labels, img.shape)
    labels = run.labels[:]
    assert (labels[256:, :] == plan_labels[256:, :]).all()  # copied, not optimised
    np.testing.assert_array_equal(labels, segment(img, refine=True, maps=False,
                                                  **knobs).labels)


def test_pieces_of_the_working_image_are_the_whole_ones():
    rng = np.random.default_rng(1)
    data = rng.uniform(-1, 1, (1, 300, 410)).astype(np.float32)
    work = (77, 105)
    whole = downsample(data, work)
    box = (slice(20, 41), slice(60, 105))
    support = input_support(data.shape[1:], work, box)
    piece = downsample(data[(slice(None), *support)], work, full_shape=data.shape[1:],
                       box=box, offset=tuple(s.start for s in support))
    np.testing.assert_array_equal(piece, whole[(slice(None), *box)])
    from skimage.transform import resize

    near = resize(data, (1, *work), order=1, anti_aliasing=True, preserve_range=True)
    assert np.abs(near - whole).max() < 1e-6  # skimage's resize, to float32 rounding
    labels = rng.integers(0, 3, (40, 50))
    np.testing.assert_array_equal(carry_labels(labels, (123, 201), box),
                                  carry_labels(labels, (123, 201))[box])


def test_cli_blocks_on_a_zarr(tmp_path):
    from napari_iem.cli import main

    img = blobs()
    src = zarr.create_array(store=str(tmp_path / "img.zarr"), shape=img.shape,
                            chunks=(256, 256), dtype=img.dtype)
    src[:] = img
    out = tmp_path / "labels.zarr"
    rc = main(["segment", str(tmp_path / "img.zarr"), "--out", str(out), "--blocks",
               "--block-size", "256", "--max-size", "128", "--preset", "microscopy",
               "--max-iter", "30", "-q"])
    assert rc == 0 and not (tmp_path / "labels.zarr.partial").exists()
    labels = zarr.open_array(str(out), mode="r")
    whole = segment(img, refine=True, maps=False, preset="microscopy", max_size=128,
                    max_iter=30)
    np.testing.assert_array_equal(labels[:], whole.labels)
    assert labels.attrs["napari_iem"]["preset"] == "microscopy"
    assert main(["segment", str(tmp_path / "img.zarr"), "--out", str(out), "--blocks",
                 "-q"]) == 2  # never over an existing output


def test_interrupted_run_leaves_no_output(tmp_path):
    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        segment_blocks(blobs(), tmp_path / "out.zarr", block_size=256, max_size=128,
                       preset="microscopy", max_iter=10, progress=stop)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("block, message", [(16, "below the halo"),
                                            (300, "multiple of the refinement tile")])
def test_block_sizes_refused(block, message):
    with pytest.raises(BatchError, match=message):
        segment_blocks(blobs(), None, block_size=block, max_size=128, preset="microscopy")


def test_nan_in_a_zarr_refused_before_any_work(tmp_path, monkeypatch):
    img = blobs().astype(np.float32)
    img[300, 700] = np.nan
    src = zarr.create_array(store=str(tmp_path / "nan.zarr"), shape=img.shape,
                            chunks=(256, 256), dtype=img.dtype)
    src[:] = img
    monkeypatch.setattr(blocks_mod, "_working_levels", lambda *a: pytest.fail("worked"))
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        segment_blocks(src, tmp_path / "out.zarr", block_size=256, max_size=128)
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("knobs, message", [
    (dict(max_size=128, min_piece_size=20), "min_piece_size"),
    (dict(max_size=128, instances=True), "instances"),
    (dict(), "working size"),
    (dict(max_size=128, max_iter=0), "max_iter"),
])
def test_what_block_mode_cannot_do_is_refused(knobs, message):
    with pytest.raises(ValueError, match=message):
        segment_blocks(blobs(), None, block_size=256, **knobs)


def test_constant_image_refused():
    with pytest.raises(ValueError, match="constant"):
        segment_blocks(np.full((512, 512), 7, np.uint16), None, block_size=256,
                       max_size=128)


def test_ome_zarr_in_and_out(tmp_path):
    import dask.array as da

    from napari_iem.files.ome_zarr import read_ome_zarr_provenance
    from napari_iem.files.ome_zarr import write_ome_zarr_labels

    img = blobs()  # a uint16 NGFF multiscale, written by the package's own writer
    write_ome_zarr_labels(da.from_array(img, chunks=256), tmp_path / "img.ome.zarr",
                          axes="yx", scale=[0.5, 0.5], provenance={}, chunks=(256, 256))
    knobs = dict(preset="microscopy", max_size=128, max_iter=30)
    run = segment_blocks(tmp_path / "img.ome.zarr", tmp_path / "out.ome.zarr", 2,
                         block_size=256, **knobs)
    whole = segment(img, refine=True, maps=False, scale=(0.5, 0.5), **knobs)
    np.testing.assert_array_equal(run.labels[:], whole.labels)
    assert read_ome_zarr_provenance(tmp_path / "out.ome.zarr")["mode"] == "blocks"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ome.zarr", "out.ome.zarr"]


def test_an_ome_zarr_above_the_pixel_limit_is_what_block_mode_is_for(tmp_path,
                                                                       monkeypatch):
    """Block mode refused an OME-Zarr of more pixels than the limit for whole images
    (2**28 by default: 16384x16384 was refused); only its chunks count against it."""
    import dask.array as da

    from napari_iem.files.ome_zarr import write_ome_zarr_labels
    from napari_iem.files.read import ImageTooLargeError

    img = blobs()
    write_ome_zarr_labels(da.from_array(img, chunks=256), tmp_path / "img.ome.zarr",
                          axes="yx", scale=[0.5, 0.5], provenance={}, chunks=(256, 256))
    monkeypatch.setenv("NAPARI_IEM_MAX_PIXELS", str(256 * 256))  # a chunk, not the image
    run = segment_blocks(tmp_path / "img.ome.zarr", tmp_path / "out.ome.zarr", 2,
                         block_size=256, preset="microscopy", max_size=128, max_iter=5)
    assert run.labels.shape == img.shape
    monkeypatch.setenv("NAPARI_IEM_MAX_PIXELS", str(256 * 255))  # chunks still count
    with pytest.raises(ImageTooLargeError, match="256x256"):
        segment_blocks(tmp_path / "img.ome.zarr", tmp_path / "out2.ome.zarr", 2,
                       block_size=256, preset="microscopy", max_size=128, max_iter=5)


def test_block_mode_output_is_checked_before_any_work(tmp_path, monkeypatch):
    """``--out`` inside the input zarr wrote the labels into the user's store; a
    user's folder ``OUT.partial`` was deleted; an existing OUT was found only after
    the whole working-size solve."""
    img = blobs()
    src = zarr.create_array(store=str(tmp_path / "img.zarr"), shape=img.shape,
                            chunks=(256, 256), dtype=img.dtype)
    src[:] = img
    mine = tmp_path / "out.zarr.partial"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    (tmp_path / "taken.zarr").mkdir()
    monkeypatch.setattr(blocks_mod, "_working_levels", lambda *a: pytest.fail("worked"))
    knobs = dict(block_size=256, max_size=128, preset="microscopy", max_iter=5)
    for out, message in [(tmp_path / "img.zarr" / "labels", "input"),
                         (tmp_path / "out.zarr", "not made by napari-iem"),
                         (tmp_path / "taken.zarr", "exists")]:
        with pytest.raises(BatchError, match=message):
            segment_blocks(tmp_path / "img.zarr", out, **knobs)
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "img.zarr").iterdir()) == ["c", "zarr.json"]


def test_block_mode_says_what_it_reads(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(BatchError, match="OME-Zarr or zarr.*without --blocks"):
        segment_blocks(tmp_path / "a.png", tmp_path / "o.zarr", max_size=128)


def test_a_small_image_in_block_mode_is_told_to_go_without_blocks(tmp_path, capsys):
    """A 64x64 zarr with the default working size said 'set max_size below 64 (e.g.
    1024)': 1024 is not below 64, and the image needs no block mode at all."""
    from napari_iem.cli import main

    src = zarr.create_array(store=str(tmp_path / "small.zarr"), shape=(64, 64),
                            chunks=(32, 32), dtype=np.uint16)
    src[:] = blobs((64, 64), centres=((30, 30, 12),))
    code = main(["segment", str(tmp_path / "small.zarr"), "--out", str(tmp_path / "o.zarr"),
                 "--blocks", "--workers", "0", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "no larger than the working size --max-size 1024" in err
    assert "without --blocks" in err and "e.g. 1024" not in err
    assert not (tmp_path / "o.zarr").exists()


def test_a_second_block_run_into_the_same_out_is_refused(tmp_path):
    """Two block runs into one OUT at once: the second removed the first's
    ``OUT.partial`` as an interrupted run's, and the first could then finish an OUT
    holding blocks of both (of other settings, say); it is refused before any work."""
    from napari_iem.batch.guard import BatchError, output_lock

    out = tmp_path / "labels.zarr"
    with output_lock(out):
        with pytest.raises(BatchError, match="another napari-iem run is writing"):
            segment_blocks(blobs((256, 256)), out, block_size=256, max_size=128,
                           preset="microscopy")
        assert sorted(p.name for p in tmp_path.iterdir()) == [".labels.zarr.iem-lock"]
    run = segment_blocks(blobs((256, 256)), out, block_size=256, max_size=128,
                         preset="microscopy", max_iter=5)
    assert run.labels.shape == (256, 256) and sorted(
        p.name for p in tmp_path.iterdir()) == ["labels.zarr"]


def test_cli_blocks_says_when_there_is_nothing_there(tmp_path, capsys):
    """Block mode's summary said nothing of an image the "nothing here" test emptied."""
    from napari_iem.cli import main

    noise = np.random.default_rng(0).normal(1000, 50, (512, 512)).astype(np.uint16)
    src = zarr.create_array(store=str(tmp_path / "noise.zarr"), shape=noise.shape,
                            chunks=(256, 256), dtype=noise.dtype)
    src[:] = noise
    out = tmp_path / "labels.zarr"
    assert main(["segment", str(tmp_path / "noise.zarr"), "--out", str(out), "--blocks",
                 "--block-size", "256", "--max-size", "128", "--preset", "microscopy",
                 "--max-iter", "30", "--workers", "0"]) == 0
    assert "no structure found" in capsys.readouterr().out
    assert zarr.open_array(str(out), mode="r")[:].max() == 0
