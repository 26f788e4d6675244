"""The four ways the hostile-input catalogue (issue 14) found to lose data or silently
give wrong results, each in the form it was found in.

Every test here failed on the code of commit e9961cb and passes now; they use only the
command line and ``run_batch``, which both versions have, so that this stays checkable.
"""
import imageio.v3 as iio
import numpy as np
import pytest

from napari_iem.files.read import read_labels
from hostile_files import (
    ITER,
    cli,
    disc,
    png_claiming,
    report_rows,
    segment_args,
    write_disc,
)


def fresh_labels(path, tmp_path, capsys, *extra):
    """The labels ``path`` gets when it is segmented alone into a new folder."""
    out = tmp_path / f"alone-{abs(hash(str(path)))}"
    assert cli(segment_args(path, out=out, extra=extra), capsys)[0] == 0
    (made,) = [p for p in out.iterdir() if p.suffix in (".png", ".tif")]
    return read_labels(made)


# ------------------------------------------------------------- 1. distill over its input

def test_distill_never_writes_over_the_input_image(tmp_path, capsys):
    """``distill IMAGE.png LABELS --out FOLDER_OF_IMAGE`` overwrote the image."""
    photos, labels = tmp_path / "photos", tmp_path / "iem"
    image = write_disc(photos / "cat.png")
    labels.mkdir()
    iio.imwrite(labels / "cat.png", (disc() > 120).astype(np.uint8))
    before = image.read_bytes()
    code, _, err = cli(["distill", image, labels, "--out", photos, "--epochs", 1,
                        "--size", 16, "--device", "cpu", "-q"], capsys)
    assert image.read_bytes() == before
    assert code == 2 and "is an input" in err and "Traceback" not in err


# ------------------------------------------------- 2. an input inside --out, a second input

def test_an_input_inside_out_is_never_overwritten(tmp_path, capsys):
    """``segment out/good.png good.tif --out out --overwrite`` wrote good.tif's labels
    over the user's good.png; without --overwrite good.tif was 'skipped' against it."""
    out = tmp_path / "out"
    good = write_disc(out / "good.png", seed=1)
    tif = write_disc(tmp_path / "good.tif", seed=2, cx=8)
    before = good.read_bytes()
    for extra in ([], ["--overwrite"]):  # refused before any work: nothing is written
        code, _, err = cli(segment_args(good, tif, out=out, extra=extra), capsys)
        assert good.read_bytes() == before
        assert code == 2 and "lies in the output folder" in err and "--out" in err
        assert sorted(p.name for p in out.iterdir()) == ["good.png"]


# ------------------------------------------------------- 3. resume by more than a name

def test_an_added_file_of_the_same_stem_is_not_skipped(tmp_path, capsys):
    """After a.tif was segmented, an added a.png was 'skipped' while its output held
    a.tif's labels."""
    src, out = tmp_path / "in", tmp_path / "out"
    write_disc(src / "a.tif", cx=7, seed=3)
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    png = write_disc(src / "a.png", cx=17, seed=4)
    _, _, err = cli(segment_args(src, out=out), capsys)
    row = next(r for r in report_rows(out) if r["file"].endswith("a.png"))
    assert row["status"] == "done", err
    assert np.array_equal(read_labels(out / row["output"]), fresh_labels(png, tmp_path, capsys))


def test_swapping_two_folders_of_one_name_keeps_each_its_labels(tmp_path, capsys):
    """Two input folders with equal names, given in the other order, swapped labels."""
    one, two, out = tmp_path / "r1" / "img", tmp_path / "r2" / "img", tmp_path / "out"
    first = write_disc(one / "x.png", cx=7, seed=5)
    second = write_disc(two / "x.png", cx=17, seed=6)
    assert cli(segment_args(one, two, out=out), capsys)[0] == 0
    assert cli(segment_args(two, one, out=out), capsys)[0] == 0
    rows = {r["file"]: r for r in report_rows(out)}
    for source in (first, second):
        row = rows[str(source)]
        assert np.array_equal(read_labels(out / row["output"]),
                              fresh_labels(source, tmp_path, capsys)), source


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_file_at_the_output_name_is_neither_finished_nor_replaced(
        tmp_path, capsys, overwrite):
    """Any ``<stem>.png`` already in the output folder counted as finished (and
    --overwrite replaced it)."""
    src, out = tmp_path / "in", tmp_path / "out"
    write_disc(src / "a.png")
    mine = write_disc(out / "a.png", seed=9, r=3)
    before = mine.read_bytes()
    code, _, err = cli(segment_args(src, out=out,
                                    extra=["--overwrite"] if overwrite else []), capsys)
    assert mine.read_bytes() == before
    assert code == 1 and "not written by napari-iem" in err
    assert report_rows(out)[0]["status"] == "refused"


def test_other_settings_are_not_skipped_as_finished(tmp_path, capsys):
    """A rerun with ``--regions 4 --preset paper`` skipped everything, exit 0."""
    src, out = tmp_path / "in", tmp_path / "out"
    write_disc(src / "a.png")
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    other = ["--regions", 4, "--preset", "paper"]
    code, _, err = cli(segment_args(src, out=out, extra=other), capsys)
    assert code == 1 and "other settings" in err and "--overwrite" in err
    code, _, err = cli(segment_args(src, out=out, extra=other + ["--overwrite"]), capsys)
    assert code == 0, err
    assert report_rows(out)[0]["regions"] == "4"


def test_overwrite_never_deletes_a_users_file_of_the_other_suffix(tmp_path, capsys):
    """``--overwrite`` deleted a user's scan.tif in --out when it wrote scan.png."""
    src, out = tmp_path / "in", tmp_path / "out"
    write_disc(src / "scan.png")
    theirs = write_disc(out / "scan.tif", seed=8)
    before = theirs.read_bytes()
    cli(segment_args(src, out=out, extra=["--overwrite"]), capsys)
    assert theirs.read_bytes() == before


def test_a_resumed_report_keeps_the_earlier_rows(tmp_path, capsys):
    """Every resume replaced iem-report.csv, so earlier rows were lost."""
    out = tmp_path / "out"
    a, b = write_disc(tmp_path / "a.png"), write_disc(tmp_path / "b.png", seed=2)
    assert cli(segment_args(a, out=out), capsys)[0] == 0
    assert cli(segment_args(b, out=out), capsys)[0] == 0
    assert cli(segment_args(b, out=out), capsys)[0] == 0
    rows = report_rows(out)
    assert sorted(r["file"] for r in rows) == [str(a), str(b)]  # one row per input
    assert {r["status"] for r in rows} == {"done", "skipped"}


# ------------------------------------------------ 4. memory checked before allocation

def test_the_batch_path_checks_memory_before_decoding(tmp_path, monkeypatch):
    """A 16000x16000 PNG went straight to the allocator (a raw RuntimeError)."""
    import imageio.v3

    from napari_iem.batch.run import run_batch
    from napari_iem.engine import memory

    decoded = []
    monkeypatch.setattr(memory, "available_bytes", lambda device: 8 * 2**30)
    monkeypatch.setattr(imageio.v3, "imread",
                        lambda *a, **k: decoded.append(a) or np.zeros((2, 2), np.uint8))
    big = png_claiming(tmp_path / "big.png", 16000, 16000)
    report = run_batch([big], tmp_path / "out", workers=0, progress=False, max_iter=ITER)
    (rec,) = report.records
    assert rec.status == "failed" and "needs about" in rec.error and "GB" in rec.error
    assert "--max-size" in rec.error  # what to lower, as the command line says it
    assert "maps" not in rec.error and "widget" not in rec.error  # files have no maps
    assert decoded == []


def test_an_input_in_the_output_folder_refuses_the_run_and_writes_nothing(tmp_path,
                                                                        capsys):
    """``segment photo.jpg --out .``: the labels would land among the user's images
    (a .png over an input of that name, and read as an image by the next run); the
    run is refused before it writes a report or a manifest there.  An output folder
    above the inputs' is not the inputs' folder and is taken."""
    photos = tmp_path / "photos"
    image = write_disc(photos / "cat.png")
    iio.imwrite(photos / "dog.jpg", np.stack([disc()] * 3, -1))
    code, _, err = cli(segment_args(photos / "dog.jpg", out=photos), capsys)
    assert code == 2 and "lies in the output folder" in err and "Traceback" not in err
    assert sorted(p.name for p in photos.iterdir()) == ["cat.png", "dog.jpg"]
    code, _, err = cli(segment_args(image, out=tmp_path), capsys)
    assert code == 0, err
