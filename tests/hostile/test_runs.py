"""Hostile situations around a run: a second run, links, tampered records, a full disk,
formulas in names, kill -9 and Ctrl-C half way.  No user file ever changes."""
import json
import os
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest

from napari_iem.batch.report import REPORT_FIELDS
from napari_iem.files.read import read_labels
from hostile_files import (
    ITER,
    cli,
    disc,
    one_clear_line,
    report_rows,
    segment_args,
    snapshot,
    write_disc,
)


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "in"
    for i in range(3):
        write_disc(d / f"p{i}.png", seed=i, cx=9 + 3 * i)
    return d


def test_a_second_run_into_the_same_folder_is_refused(src, tmp_path, capsys):
    from napari_iem.batch.guard import LOCK_NAME, out_dir_lock

    out = tmp_path / "out"
    out.mkdir()
    with out_dir_lock(out):
        code, _, err = cli(segment_args(src, out=out), capsys)
        assert code == 2 and "another napari-iem run" in err and one_clear_line(err)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    assert not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_run_does_not_block(src, tmp_path, capsys):
    from napari_iem.batch.guard import LOCK_NAME

    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("12345\n")  # its holder is gone: nobody holds the lock
    assert cli(segment_args(src, out=out), capsys)[0] == 0


def test_overlays_are_not_written_through_a_link(src, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "overlays").symlink_to(elsewhere)
    code, _, err = cli(segment_args(src, out=out, extra=["--overlay"]), capsys)
    assert code == 2 and "link" in err and one_clear_line(err)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_an_output_name_that_links_to_a_file_changes_nothing(src, tmp_path, capsys, how):
    """A link at an output's name is not the tool's: neither it nor its target (an
    input, for the hard link) is written, with or without --overwrite."""
    out = tmp_path / "out"
    out.mkdir()
    victim = src / "p0.png" if how == "hardlink" else write_disc(tmp_path / "mine.png")
    getattr(os, "link" if how == "hardlink" else "symlink")(victim, out / "p0.png")
    before = snapshot(tmp_path / "in"), victim.read_bytes()
    code, _, _ = cli(segment_args(src, out=out, extra=["--overwrite"]), capsys)
    assert code == 1 and (snapshot(tmp_path / "in"), victim.read_bytes()) == before
    row = next(r for r in report_rows(out) if r["file"].endswith("p0.png"))
    assert row["status"] == "refused"
    assert ("is an input" if how == "hardlink" else "not written by") in row["error"]


def test_a_stem_that_ends_in_an_image_suffix_gets_its_own_output(tmp_path, capsys):
    """``a.png`` and ``a.png.tif`` both wrote ``a.png``: the report said both were
    done into it, one's labels were lost, and the next run refused the file."""
    src, out = tmp_path / "in", tmp_path / "out"
    write_disc(src / "a.png", seed=1, cx=6)
    write_disc(src / "a.png.tif", seed=2, cx=17)
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    rows = {r["file"]: r["output"] for r in report_rows(out)}
    assert rows == {str(src / "a.png"): "a.png", str(src / "a.png.tif"): "a.png.png"}
    first, second = (read_labels(out / name) for name in rows.values())
    assert not np.array_equal(first, second)
    code, stdout, err = cli([a for a in segment_args(src, out=out) if a != "-q"], capsys)
    assert code == 0 and "2 skipped" in stdout, err


def test_an_output_the_user_edited_is_kept(src, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    edited = np.ones((24, 24), np.uint8)
    iio.imwrite(out / "p1.png", edited)
    code, _, err = cli(segment_args(src, out=out, extra=["--overwrite"]), capsys)
    assert code == 1 and "changed since" in err
    assert np.array_equal(read_labels(out / "p1.png"), edited)


def test_a_changed_source_is_refused_then_redone_with_overwrite(src, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    os.utime(src / "p2.png", (1e9, 1e9))  # the same bytes, written again: still finished
    code, stdout, _ = cli(segment_args(src, out=out)[:-1], capsys)
    assert code == 0 and "3 skipped" in stdout
    write_disc(src / "p2.png", seed=20, cx=5)
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 1 and "p2.png changed since" in err
    code, _, err = cli(segment_args(src, out=out, extra=["--overwrite"]), capsys)
    assert code == 0, err


def test_a_source_changed_in_place_with_its_size_and_time_put_back_is_not_finished(
        tmp_path, capsys):
    """The labels are trusted by the source's content, not by its name, size and time:
    one pixel changed in place, the time put back, is a changed source."""
    import tifffile

    src, out = tmp_path / "in", tmp_path / "out"
    tif = write_disc(src / "t.tif")  # uncompressed: one byte changes one pixel
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    st = tif.stat()
    data = tifffile.imread(tif)
    data[0, 0] ^= 1
    tifffile.imwrite(tif, data)
    os.utime(tif, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert tif.stat().st_size == st.st_size and tif.stat().st_mtime_ns == st.st_mtime_ns
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 1 and "t.tif changed since" in err


@pytest.mark.parametrize("record, content", [
    ("iem-manifest.json", "{not json"),
    ("iem-manifest.json", '{"format": "something else", "outputs": {}}'),
    ("iem-report.csv", "name,score\nmine,1\n"),
    ("iem-report.csv", ",".join(REPORT_FIELDS) + "\nmine," + "x" * 2**18 + "\n"),
])
def test_records_that_are_not_ours_stop_the_run_untouched(src, tmp_path, capsys, record,
                                                         content):
    out = tmp_path / "out"
    out.mkdir()
    (out / record).write_text(content)
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 2 and "move it away" in err and one_clear_line(err)
    assert snapshot(out) == {record: content.encode()}


@pytest.mark.parametrize("edit", [{"output_size": None}, {"output_size": "876"},
                                  {"output_sha256": 5}])
def test_a_hand_edited_manifest_entry_leaves_the_labels_alone(src, tmp_path, capsys,
                                                              edit):
    """An entry whose output's size was deleted from the manifest was a KeyError
    traceback; an entry that cannot be checked is not this tool's to replace."""
    out = tmp_path / "out"
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    path = out / "iem-manifest.json"
    data = json.loads(path.read_text())
    entry = data["outputs"]["p0.png"]
    entry.update(edit)
    for key in [k for k, v in edit.items() if v is None]:
        del entry[key]
    path.write_text(json.dumps(data))
    before = (out / "p0.png").read_bytes()
    code, _, err = cli(segment_args(src, out=out, extra=["--overwrite"]), capsys)
    assert code == 1 and "Traceback" not in err, err
    assert "p0.png exists and was not written by napari-iem" in err
    assert (out / "p0.png").read_bytes() == before


def test_numbers_too_large_in_an_old_json_report_are_dropped(src, tmp_path, capsys):
    """A JSON report row with ``"regions": 1e999`` (infinity to Python) was an
    OverflowError traceback; like any value of the wrong type it is dropped."""
    out = tmp_path / "out"
    assert cli(segment_args(src, out=out, extra=["--report", "json"]), capsys)[0] == 0
    path = out / "iem-report.json"
    data = json.loads(path.read_text())
    data["files"].append({"file": "gone.png", "status": "done", "regions": 7,
                          "iterations": 8})
    path.write_text(json.dumps(data).replace(": 7,", ": 1e999,").replace(": 8}", ": -1e999}"))
    code, _, err = cli(segment_args(src, out=out, extra=["--report", "json"]), capsys)
    assert code == 0, err
    (gone,) = [r for r in json.loads(path.read_text())["files"] if r["file"] == "gone.png"]
    assert gone["status"] == "done" and gone["regions"] is None is gone["iterations"]


@pytest.mark.timeout(60)
def test_a_fifo_as_the_old_report_is_refused(src, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "iem-report.csv")
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 2 and "not a regular file" in err and one_clear_line(err)


def test_formulas_in_file_names_are_escaped_in_the_csv(tmp_path, capsys, monkeypatch):
    from napari_iem.batch.report import read_rows

    monkeypatch.chdir(tmp_path)
    name = '=HYPERLINK("evil.example","click").png'
    write_disc(tmp_path / name)
    write_disc(tmp_path / "+1.png")
    assert cli(segment_args(name, "+1.png", out="out"), capsys)[0] == 0
    text = (tmp_path / "out" / "iem-report.csv").read_text()
    assert "\n'=HYPERLINK" in text.replace('"', "") and "\n'+1.png" in text
    assert "\n=" not in text and "\n+" not in text
    assert {r["file"] for r in read_rows(tmp_path / "out" / "iem-report.csv")} == \
        {name, "+1.png"}
    assert cli(segment_args(name, "+1.png", out="out"), capsys)[0] == 0
    assert len(report_rows(tmp_path / "out")) == 2  # read back and merged, not doubled


def test_a_name_that_starts_with_a_quote_reads_back_as_it_is(tmp_path, capsys,
                                                             monkeypatch):
    """A file named ``'=x.png`` read back from the CSV as ``=x.png`` (the quote taken
    for the formula escape): the next run kept its row as another input's, and the
    row was never merged again."""
    from napari_iem.batch.report import read_rows

    monkeypatch.chdir(tmp_path)
    write_disc(tmp_path / "'=x.png")
    for _ in range(2):
        assert cli(segment_args("'=x.png", out="out"), capsys)[0] == 0
    assert [r["file"] for r in read_rows(tmp_path / "out" / "iem-report.csv")] == [
        "'=x.png"]
    with open(tmp_path / "out" / "iem-report.csv", "a") as fh:
        fh.write("'=y.png" + "," * len(REPORT_FIELDS) + "extra\n")  # a cell too many
    assert [r["file"] for r in read_rows(tmp_path / "out" / "iem-report.csv")] == [
        "'=x.png", "=y.png"]


def test_no_cluster_is_started_when_nothing_is_left(src, tmp_path, capsys, monkeypatch):
    import distributed

    out = tmp_path / "out"
    assert cli(segment_args(src, out=out), capsys)[0] == 0

    def no_cluster(*a, **k):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    monkeypatch.setattr(distributed, "Client", no_cluster)
    from napari_iem.batch import run_batch

    report = run_batch(src, out, workers=2, progress=False, max_iter=5)
    assert report.ok and report.skipped == 3 and report.mode == "nothing to do"
    report = run_batch(src, out, scheduler="tcp://127.0.0.1:1", progress=False,
                       max_iter=5)
    assert report.skipped == 3


def test_evaluate_refuses_to_score_a_folder_against_itself(src, tmp_path, capsys):
    code, _, err = cli(["evaluate", src, src], capsys)
    assert code == 2 and "same folder" in err and one_clear_line(err)
    gt = tmp_path / "gt"
    gt.mkdir()
    os.link(src / "p0.png", gt / "p0.png")
    iio.imwrite(gt / "p1.png", np.zeros((24, 24), np.uint8))
    code, _, err = cli(["evaluate", src, gt], capsys)
    assert code == 1 and "are the same file" in err


def _two_masks_of_one_stem(gt):
    """``gt/cat.png`` and ``gt/cat.tif``, each the other's opposite."""
    import tifffile

    gt.mkdir()
    mask = (disc() > 120).astype(np.uint8)
    iio.imwrite(gt / "cat.png", mask)
    tifffile.imwrite(gt / "cat.tif", 1 - mask)
    return mask


def test_evaluate_names_two_masks_of_one_stem(tmp_path, capsys):
    """``gt/cat.png`` and ``gt/cat.tif``: the first found was scored, silently."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    mask = _two_masks_of_one_stem(gt)
    pred.mkdir()
    iio.imwrite(pred / "cat.png", mask)
    iio.imwrite(pred / "dog.png", mask)
    iio.imwrite(gt / "dog.png", mask)
    code, out, err = cli(["evaluate", pred, gt, "--json"], capsys)
    assert code == 1, err
    assert "cat.png and" in err and "cat.tif" in err and "keep one" in err
    assert '"n_images": 1' in out  # dog alone


def test_distill_does_not_train_on_one_of_two_label_files(tmp_path, capsys):
    photos, labels = tmp_path / "photos", tmp_path / "iem"
    write_disc(photos / "cat.png")
    _two_masks_of_one_stem(labels)
    code, _, err = cli(_distill_args(photos, labels, tmp_path / "s"), capsys)
    assert code == 2 and "cat.tif" in err and "keep one" in err, err
    assert not (tmp_path / "s").exists()


def test_a_full_disk_fails_the_files_and_leaves_nothing_half_written(src, tmp_path,
                                                                     capsys, monkeypatch):
    import errno

    from napari_iem.batch import task

    out = tmp_path / "out"
    real = task.write_labels

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(task, "write_labels", full)
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 1 and "No space left on device" in err
    assert not [p for p in out.iterdir() if p.suffix in (".png", ".tif")]
    assert not list(out.glob(".*iem-part"))
    monkeypatch.setattr(task, "write_labels", real)
    assert cli(segment_args(src, out=out), capsys)[0] == 0  # space freed: all done


@pytest.mark.parametrize("nth", [1, 2])  # the claims before any work; one after
def test_a_full_disk_for_the_manifest_says_which_file_and_what_to_do(src, tmp_path,
                                                                     capsys, monkeypatch,
                                                                     nth):
    """A manifest that could not be written was '[Errno 28] No space left on device',
    naming no file."""
    import errno

    from napari_iem.files import manifest

    out = tmp_path / "out"
    real, saves = manifest.atomic_output, []

    def full_after(path):
        saves.append(path)
        if len(saves) >= nth:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path)

    monkeypatch.setattr(manifest, "atomic_output", full_after)
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 2 and one_clear_line(err), err
    assert f"{out / 'iem-manifest.json'}: No space left on device" in err
    assert "run the same command again" in err
    assert not list(out.glob(".*iem-part"))
    monkeypatch.undo()
    code, stdout, err = cli([a for a in segment_args(src, out=out) if a != "-q"], capsys)
    # space freed: the claims were never saved (nth 1), so all is made now; or the labels
    # were written and are known by their write records (nth 2), so none is made twice
    assert code == 0 and ("3 segmented" if nth == 1 else "3 skipped") in stdout, err


def test_a_read_only_output_folder_is_one_clear_error(src, tmp_path, capsys, monkeypatch):
    from napari_iem.batch import guard

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(guard.tempfile, "mkstemp", denied)  # root ignores chmod
    code, _, err = cli(segment_args(src, out=tmp_path / "ro"), capsys)
    assert code == 2 and "not writable" in err and one_clear_line(err)


@pytest.mark.parametrize("command", ["segment", "distill"])
@pytest.mark.parametrize("under", ["", "sub"])
def test_an_out_that_is_a_file_says_so(src, tmp_path, capsys, command, under):
    """``--out afile`` said 'cannot create output folder afile: File exists' (distill:
    '[Errno 17] File exists', after training)."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    out = afile / under if under else afile
    args = (segment_args(src, out=out) if command == "segment"
            else _distill_args(src, src, out))
    code, _, err = cli(args, capsys)
    assert code == 2 and one_clear_line(err), err
    assert f"{afile} is a file" in err and "choose a folder" in err
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("command", ["segment out", "segment in", "segment config",
                                     "distill out", "distill model"])
def test_an_empty_path_is_refused_not_taken_for_this_folder(src, tmp_path, capsys,
                                                            monkeypatch, command):
    """``--out "$OUT"`` with OUT unset wrote the labels, the report and the manifest
    into the folder the command ran in (an empty path is "."), an empty INPUT
    segmented the images found there, and an empty --config ran with the defaults."""
    here = tmp_path / "here"
    here.mkdir()
    write_disc(here / "mine.png")
    monkeypatch.chdir(here)
    before = snapshot(tmp_path)
    args = {"segment out": segment_args(src, out=""),
            "segment in": segment_args("", out=tmp_path / "o"),
            "segment config": segment_args(src, out=tmp_path / "o", extra=["--config", ""]),
            "distill out": _distill_args(src, src, ""),
            "distill model": _distill_args(src, tmp_path, tmp_path / "s")
            + ["--save-model", ""]}[command]
    code, _, err = cli(args, capsys)
    assert code == 2 and "an empty path" in err and "Traceback" not in err, err
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()
                                                   ) == ["here", "in"]


def test_an_out_that_is_a_broken_link_says_so(src, tmp_path, capsys):
    """``--out`` a link to nowhere said 'cannot create output folder out: File
    exists'."""
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone")
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 2 and one_clear_line(err), err
    assert f"{out} is a link to {tmp_path / 'gone'}, which does not exist" in err
    assert out.is_symlink() and not (tmp_path / "gone").exists()


@pytest.mark.parametrize(("command", "out"), [("segment", "in"), ("segment", "above"),
                                              ("distill", "above")])
def test_an_out_that_holds_the_input_folder_says_to_pick_another(src, tmp_path, capsys,
                                                                  command, out):
    """``--out IN`` (or a folder above IN) said 'no images found in IN (outside the output
    folder IN)'."""
    out = src if out == "in" else tmp_path
    args = (segment_args(src, out=out) if command == "segment"
            else _distill_args(src, src, out))
    code, _, err = cli(args, capsys)
    assert code == 2 and one_clear_line(err), err
    assert "is the output folder" in err and "different output folder" in err


# ------------------------------------------------------------ stopped half way

def _many(tmp_path, n=10, size=40):
    d = tmp_path / "many"
    for i in range(n):
        write_disc(d / f"m{i:02d}.png", size=size, seed=i, cx=size // 3 + i, r=size // 4)
    return d


def _labels(out):
    return {p.name: read_labels(p) for p in sorted(out.glob("*.png"))}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_stopped_half_way_then_resumed_gives_identical_labels(tmp_path, capsys, sig):
    many = _many(tmp_path, n=20, size=256)  # the rest outlasts the signal (0.8 s here)
    clean, out = tmp_path / "clean", tmp_path / "out"
    args = ["--iterations", 40, "--task-images", 1]
    assert cli(segment_args(many, out=clean, extra=args), capsys)[0] == 0
    cmd = [sys.executable, "-m", "napari_iem.cli", *map(str, segment_args(
        many, out=out, extra=args))]
    # a shell's background job (CI, nohup ... &) ignores Ctrl-C, and its children
    # inherit that: the run must get Ctrl-C as a user at a terminal would
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not list(out.glob("m*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 130)
    assert len(_labels(out)) < 20, "the run finished before it was stopped"
    code, _, err = cli(segment_args(many, out=out, extra=args), capsys)
    assert code == 0, err
    a, b = _labels(clean), _labels(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    if sig == signal.SIGINT:  # a kill -9 may leave a hidden *.iem-part, never an output
        assert not list(out.glob(".*iem-part"))


def test_overlays_asked_for_on_a_rerun_are_written(src, tmp_path, capsys):
    """``--overlay`` on a rerun skipped the finished labels and wrote no overlay (exit
    0); an overlay deleted since was not written again either.  Labels no overlay is
    drawn for (a stack's) stay skipped."""
    import tifffile

    out = tmp_path / "out"
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    rerun = [a for a in segment_args(src, out=out, extra=["--overlay"]) if a != "-q"]
    code, stdout, _ = cli(rerun, capsys)
    assert code == 0 and "3 segmented" in stdout
    assert sorted(p.name for p in (out / "overlays").iterdir()) == [
        "p0.png", "p1.png", "p2.png"]
    (out / "overlays" / "p1.png").unlink()
    code, stdout, _ = cli(rerun, capsys)
    assert code == 0 and "1 segmented, 2 skipped" in stdout
    assert (out / "overlays" / "p1.png").is_file()
    stack, stacks = tmp_path / "stack" / "s.tif", tmp_path / "stacks"
    stack.parent.mkdir()
    tifffile.imwrite(stack, np.stack([disc(seed=i) for i in range(3)]),
                     photometric="minisblack")
    args = segment_args(stack, out=stacks, extra=["--overlay", "--mode", "slices"])
    assert cli(args, capsys)[0] == 0 and not (stacks / "overlays" / "s.png").exists()
    code, stdout, _ = cli([a for a in args if a != "-q"], capsys)
    assert code == 0 and "1 skipped" in stdout


@pytest.mark.parametrize("age", [0.0, -3600.0])  # just written; a time in the future
def test_an_interrupted_redo_never_takes_the_old_labels_for_its_own(src, tmp_path,
                                                                    monkeypatch, age):
    """A Ctrl-C during a redo with other settings (``--overwrite``) recorded the labels
    of the earlier settings as finished with the new ones when they were less than a
    second old or dated in the future (a clock ahead, a copy): the next run skipped
    them."""
    from napari_iem.batch import BatchInterrupted, run_batch, where

    out = tmp_path / "out"
    assert run_batch(src, out, workers=0, progress=False, max_iter=ITER).ok
    for p in out.glob("*.png"):
        os.utime(p, (time.time() - age,) * 2)

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, "segment_task", stopped)
    with pytest.raises(BatchInterrupted) as info:
        run_batch(src, out, regions=3, overwrite=True, workers=0, progress=False,
                  max_iter=ITER)
    assert info.value.report.done == 0
    monkeypatch.undo()
    again = run_batch(src, out, regions=3, workers=0, progress=False, max_iter=ITER)
    assert again.ok and again.done == 3 and again.skipped == 0


def _killed_after_claiming(src, out, settings="a killed run's settings"):
    """The manifest a run leaves when it is killed (``kill -9``) after claiming its
    names: claims without hashes, nothing settled."""
    from napari_iem.files.manifest import Manifest, Source

    manifest = Manifest.load(out)
    for p in sorted(src.glob("*.png")):
        manifest.claim(p.name, Source.of(p), settings)
    out.mkdir(exist_ok=True)
    manifest.save()


@pytest.mark.parametrize("recorded", [False, True])
def test_a_file_put_at_a_name_a_killed_run_claimed_is_left_alone(src, tmp_path, capsys,
                                                                 recorded):
    """A name a killed run had claimed counted as this tool's whatever was there, so a
    file the user put at it since was replaced by the next run; with a write record
    of what the run wrote there, the user's file differs from it."""
    from napari_iem.files.journal import journalled
    from napari_iem.files.write import write_labels

    out = tmp_path / "out"
    _killed_after_claiming(src, out)
    if recorded:  # the run wrote p0.png before it was killed; the user replaced it
        with journalled(out):
            write_labels(np.zeros((24, 24), np.uint8), out, "p0")
    users = np.full((24, 24), 1, np.uint8)
    iio.imwrite(out / "p0.png", users)
    before = (out / "p0.png").read_bytes()
    code, _, err = cli(segment_args(src, out=out), capsys)
    assert code == 1 and "p0.png is not what the stopped run" in err, err
    assert (out / "p0.png").read_bytes() == before
    assert {p.name for p in out.glob("p*.png")} == {"p0.png", "p1.png", "p2.png"}


def test_labels_a_killed_run_wrote_are_known_by_their_write_records(src, tmp_path,
                                                                   capsys, monkeypatch):
    """A run killed after its workers wrote labels but before it saved their hashes
    (every save after the claims lost, as in a ``kill -9``): the next run takes them
    as finished from their write records and writes nothing again."""
    from napari_iem.batch import task
    from napari_iem.files.manifest import Manifest

    out, real, saves = tmp_path / "out", Manifest.save, []

    def first_only(self):
        saves.append(1)
        return real(self) if len(saves) == 1 else self.path

    monkeypatch.setattr(Manifest, "save", first_only)
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    monkeypatch.undo()
    assert len(list((out / ".iem-written").glob("*.json"))) == 3
    made = {p.name: p.read_bytes() for p in out.glob("p*.png")}
    monkeypatch.setattr(task, "_write_outputs", lambda *a: pytest.fail("written again"))
    code, stdout, err = cli([a for a in segment_args(src, out=out) if a != "-q"], capsys)
    assert code == 0 and "3 skipped" in stdout, err
    assert {p.name: p.read_bytes() for p in out.glob("p*.png")} == made
    assert not (out / ".iem-written").exists()


def test_a_redo_killed_before_it_wrote_replaces_its_own_earlier_labels(src, tmp_path,
                                                                      capsys):
    """A redo with other settings (``--overwrite``) killed after claiming its names:
    the earlier labels are still ours (the claim keeps their fingerprint), so the next
    run redoes them instead of refusing them as a user's."""
    out = tmp_path / "out"
    assert cli(segment_args(src, out=out), capsys)[0] == 0
    _killed_after_claiming(src, out)
    code, stdout, err = cli([a for a in segment_args(src, out=out, extra=["--regions", 3])
                             if a != "-q"], capsys)
    assert code == 0 and "3 segmented" in stdout, err


def test_distill_leaves_a_users_file_alone_and_replaces_its_own(tmp_path, capsys):
    """Refused before training when a prediction's name holds a file napari-iem did not
    write; a second distill replaces what the first wrote."""
    photos, labels, out = tmp_path / "photos", tmp_path / "iem", tmp_path / "student"
    write_disc(photos / "cat.png")
    labels.mkdir()
    iio.imwrite(labels / "cat.png", (iio.imread(photos / "cat.png") > 120).astype(np.uint8))
    theirs = write_disc(out / "cat.png", seed=4)
    before = theirs.read_bytes()
    args = ["distill", photos, labels, "--out", out, "--epochs", 1, "--size", 16,
            "--device", "cpu", "-q"]
    code, _, err = cli(args, capsys)
    assert code == 2 and "not written by napari-iem" in err and one_clear_line(err)
    assert theirs.read_bytes() == before
    theirs.unlink()
    assert cli(args, capsys)[0] == 0
    assert cli(args, capsys)[0] == 0  # its own file, replaced


def _distill_args(photos, labels, out):
    return ["distill", photos, labels, "--out", out, "--epochs", 1, "--size", 16,
            "--device", "cpu", "-q"]


def test_distill_writes_the_name_it_checked(tmp_path, capsys):
    """distill checked ``a.png.png`` for the image ``a.png.tif`` and wrote ``a.png``,
    over a user's file of that name."""
    photos, labels, out = tmp_path / "photos", tmp_path / "iem", tmp_path / "student"
    write_disc(photos / "a.png.tif")
    labels.mkdir()
    iio.imwrite(labels / "a.png.png", (disc() > 120).astype(np.uint8))
    theirs = write_disc(out / "a.png", seed=4)
    before = theirs.read_bytes()
    assert cli(_distill_args(photos, labels, out), capsys)[0] == 0
    assert theirs.read_bytes() == before and (out / "a.png.png").is_file()


def test_distill_waits_for_no_one_writing_into_its_folder(tmp_path, capsys):
    """distill took no lock: while a segment run wrote into the folder, a distill
    there could replace the labels segment had just written (both checked an empty
    folder); it is refused before training, as a second segment run is."""
    from napari_iem.batch.guard import LOCK_NAME, out_dir_lock

    photos, labels, out = tmp_path / "photos", tmp_path / "iem", tmp_path / "student"
    write_disc(photos / "cat.png")
    labels.mkdir()
    iio.imwrite(labels / "cat.png", (iio.imread(photos / "cat.png") > 120).astype(np.uint8))
    out.mkdir()
    with out_dir_lock(out):
        code, _, err = cli(_distill_args(photos, labels, out), capsys)
        assert code == 2 and "another napari-iem run" in err and one_clear_line(err), err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    assert cli(_distill_args(photos, labels, out), capsys)[0] == 0
    assert not (out / LOCK_NAME).exists()


def test_distill_never_replaces_the_labels_segment_wrote(tmp_path, capsys):
    """``distill PHOTOS OTHER_LABELS --out SEGMENT_OUT`` replaced segment's labels: the
    manifest said napari-iem wrote them, not which command."""
    photos, seg, labels = tmp_path / "photos", tmp_path / "seg", tmp_path / "iem"
    write_disc(photos / "cat.png")
    assert cli(segment_args(photos, out=seg), capsys)[0] == 0
    labels.mkdir()
    iio.imwrite(labels / "cat.png", (iio.imread(photos / "cat.png") > 120).astype(np.uint8))
    before = snapshot(seg)
    code, _, err = cli(_distill_args(photos, labels, seg), capsys)
    assert code == 2 and one_clear_line(err), err
    assert "'napari-iem segment'" in err and "fresh --out" in err
    assert snapshot(seg) == before


def test_segment_never_replaces_the_labels_distill_wrote(tmp_path, capsys):
    """``segment PHOTOS --out DISTILL_OUT --overwrite`` replaced distill's labels."""
    photos, labels, out = tmp_path / "photos", tmp_path / "iem", tmp_path / "student"
    write_disc(photos / "cat.png")
    labels.mkdir()
    iio.imwrite(labels / "cat.png", (iio.imread(photos / "cat.png") > 120).astype(np.uint8))
    assert cli(_distill_args(photos, labels, out), capsys)[0] == 0
    before = snapshot(out)
    code, _, err = cli(segment_args(photos, out=out, extra=["--overwrite"]), capsys)
    assert code == 2 and one_clear_line(err), err
    assert "'napari-iem distill'" in err and "fresh --out" in err
    assert snapshot(out) == before


@pytest.mark.parametrize("where", ["a user's file", "a folder", "a missing folder",
                                   "a prediction", "the manifest"])
def test_distill_save_model_is_checked_before_training(tmp_path, capsys, where):
    """``--save-model notes.txt`` replaced the user's file with a torch file; a path in
    a missing folder failed only after training; a path at one of the predictions or
    the manifest was written over by them."""
    photos, labels, out = tmp_path / "photos", tmp_path / "iem", tmp_path / "student"
    write_disc(photos / "cat.png")
    labels.mkdir()
    iio.imwrite(labels / "cat.png", (iio.imread(photos / "cat.png") > 120).astype(np.uint8))
    out.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    model = {"a user's file": notes, "a folder": photos,
             "a missing folder": tmp_path / "nope" / "m.pt", "a prediction": out / "cat.png",
             "the manifest": out / "iem-manifest.json"}[where]
    before = snapshot(tmp_path)
    trained = []
    from napari_iem.analysis import distill

    real = distill.train_student
    args = ["distill", photos, labels, "--out", out, "--epochs", 1, "--size", 16,
            "--device", "cpu", "-q", "--save-model", model]
    import unittest.mock

    with unittest.mock.patch.object(distill, "train_student",
                                    lambda *a, **k: trained.append(1) or real(*a, **k)):
        code, _, err = cli(args, capsys)
    assert code == 2 and one_clear_line(err) and "model" in err, err
    assert trained == [] and snapshot(tmp_path) == before


def test_distill_replaces_its_own_saved_model(tmp_path, capsys):
    photos, labels = tmp_path / "photos", tmp_path / "iem"
    write_disc(photos / "cat.png")
    labels.mkdir()
    iio.imwrite(labels / "cat.png", (iio.imread(photos / "cat.png") > 120).astype(np.uint8))
    model = tmp_path / "m.pt"
    for seed in (0, 1):
        assert cli(["distill", photos, labels, "--out", tmp_path / "s", "--epochs", 1,
                    "--size", 16, "--device", "cpu", "-q", "--seed", seed,
                    "--save-model", model], capsys)[0] == 0
    from napari_iem.analysis.distill import load_student

    assert load_student(model, "cpu").config["seed"] == 1


def test_a_fresh_worker_process_writes_its_labels(src, tmp_path, capsys):
    """Every file failed with ``--workers 1``: a worker process imported
    ``files.ome_zarr_write`` first, and its import cycle with ``files.ome_zarr`` broke."""
    done = subprocess.run([sys.executable, "-c", "from napari_iem.files.ome_zarr_write "
                           "import write_ome_zarr_labels"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    code, _, err = cli(segment_args(src, out=tmp_path / "o")[:-3] + ["--workers", 1, "-q"],
                       capsys)
    assert code == 0, err


def test_read_labels_imports_first_as_a_fresh_worker_does():
    """``import napari_iem.files.labels`` first (as unpickling ``read_labels`` does in a
    fresh process) failed: its import cycle with ``files.read``."""
    done = subprocess.run([sys.executable, "-c", "from napari_iem.files.labels import "
                           "read_labels"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
