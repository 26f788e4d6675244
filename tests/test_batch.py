"""run_batch: Dask equals sequential, resume after a crash, failures, unwritable output.

Small synthetic images (32x32 to 48x48), at most 20 iterations; the Dask cluster is
in-process (threads), so nothing is spawned.
"""
import csv
import importlib
import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_iem.batch import (
    BatchError,
    BatchInterrupted,
    guard,
    plan_tasks,
    run_batch,
    task,
    where,
)
from napari_iem.files.write import TEMP_SUFFIX
from napari_iem.files.read import read_labels

# the module, not the function that napari_iem re-exports under the same name
seg = importlib.import_module("napari_iem.api")

ITER = 20


def disc(h, w, cy, cx, r, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    img = np.where(inside, 160.0, 80.0) + rng.normal(0, 18, (h, w))
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(5):
        iio.imwrite(d / f"s{i}.png", disc(32, 32, 16 + i % 3, 15 + i % 2, 9, i))
    for i in range(3):
        iio.imwrite(d / f"m{i}.png", disc(40, 48, 20, 24 - i, 12, 10 + i))
    return d


def label_files(out):
    return {p.name: read_labels(p) for p in sorted(out.glob("*.png"))}


def report_rows(out):
    rows = csv.DictReader((out / "iem-report.csv").read_text().splitlines())
    return {r["file"].rsplit("/", 1)[-1]: r for r in rows}


def test_a_run_on_workers_leaves_the_processs_dask_scheduler_alone(folder, tmp_path,
                                                                   monkeypatch):
    """The run's own client was made the process's default scheduler while it ran
    (and stayed so when closing it failed): the caller's dask arrays went to the run's
    cluster, and hung once it was gone."""
    import dask

    from napari_iem.batch import run as batch_run

    seen, absorb = [], batch_run._Job.absorb

    def watching(self, results):
        seen.append(dask.config.get("scheduler", None))
        return absorb(self, results)

    monkeypatch.setattr(batch_run._Job, "absorb", watching)
    with dask.config.set(scheduler="synchronous"):
        rep = run_batch(folder / "s0.png", tmp_path / "out", workers=1, progress=False,
                        max_iter=ITER)
    assert rep.ok and seen and set(seen) == {"synchronous"}


def test_dask_cluster_equals_sequential(folder, tmp_path):
    from distributed import Client, LocalCluster

    seq = run_batch(folder, tmp_path / "seq", workers=0, progress=False, max_iter=ITER)
    assert seq.ok and seq.done == 8 and seq.mode == "in-process"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        par = run_batch(folder, tmp_path / "dask", scheduler=client, progress=False,
                        task_images=2, max_iter=ITER)
        assert "2 workers" in par.mode
        # an address string works too; the caller's client stays usable
        by_addr = run_batch(folder, tmp_path / "addr", scheduler=cluster.scheduler_address,
                            progress=False, max_iter=ITER)
        assert client.submit(sum, [1, 2]).result() == 3
    assert par.ok and par.done == 8 and by_addr.done == 8
    a, b, c = label_files(tmp_path / "seq"), label_files(tmp_path / "dask"), \
        label_files(tmp_path / "addr")
    assert a.keys() == b.keys() == c.keys() and len(a) == 8
    for name in a:
        assert np.array_equal(a[name], b[name]) and np.array_equal(a[name], c[name]), name
    r1, r2 = report_rows(tmp_path / "seq"), report_rows(tmp_path / "dask")
    for name in r1:
        assert r1[name]["iterations"] == r2[name]["iterations"]
        assert float(r1[name]["objective"]) == pytest.approx(float(r2[name]["objective"]))


def test_batched_equals_one_by_one(folder, tmp_path):
    """Tasks of one image (segment_batch of 1) give the same labels as larger tasks."""
    run_batch(folder, tmp_path / "big", workers=0, progress=False, max_iter=ITER)
    run_batch(folder, tmp_path / "one", workers=0, progress=False, task_images=1,
              max_iter=ITER)
    a, b = label_files(tmp_path / "big"), label_files(tmp_path / "one")
    assert all(np.array_equal(a[n], b[n]) for n in a)


def test_resume_after_crash(folder, tmp_path, monkeypatch):
    """A Ctrl-C in the middle keeps finished outputs, leaves no partial file, and a rerun
    does only the rest."""
    out = tmp_path / "out"
    real_write = task.write_labels
    written = []

    def crash_on_fifth(labels, out_dir, stem, *suffix):
        if len(written) == 4:
            raise KeyboardInterrupt
        written.append(stem)
        return real_write(labels, out_dir, stem, *suffix)

    monkeypatch.setattr(task, "write_labels", crash_on_fifth)
    with pytest.raises(BatchInterrupted) as info:
        run_batch(folder, out, workers=0, progress=False, task_images=4, max_iter=ITER)
    rep = info.value.report
    # tasks: [m0 m1 m2] [s0 s1 s2 s3] [s4]; the crash comes inside the second task, after
    # s0 was written: s0 counts as done although its task never returned.
    assert rep.interrupted and rep.done == 4 and not rep.ok
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{s}.png" for s in written)
    assert not list(out.glob(f".*{TEMP_SUFFIX}"))
    rows = report_rows(out)
    assert sum(r["status"] == "done" for r in rows.values()) == 4
    assert sum(r["status"] == "cancelled" for r in rows.values()) == 4
    monkeypatch.setattr(task, "write_labels", real_write)

    # Count the images the rerun segments.
    real_batch = seg.segment_batch
    seen = []

    def counting(images, *a, **k):
        seen.extend(images)
        return real_batch(images, *a, **k)

    monkeypatch.setattr(seg, "segment_batch", counting)
    again = run_batch(folder, out, workers=0, progress=False, max_iter=ITER)
    assert again.ok and again.skipped == 4 and again.done == 4 and len(seen) == 4
    rows = report_rows(out)
    skipped = [r for r in rows.values() if r["status"] == "skipped"]
    assert len(skipped) == 4
    assert all(r["output"] for r in skipped)
    # details of files whose task returned are kept from the old report
    assert sum(bool(r["iterations"]) for r in skipped) == 3
    assert len(list(out.glob("*.png"))) == 8

    seen.clear()
    redo = run_batch(folder, out, workers=0, progress=False, overwrite=True, max_iter=ITER)
    assert redo.done == 8 and len(seen) == 8


def test_failures_recorded_rest_go_on(folder, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "zero.tif").write_bytes(b"")
    rep = run_batch(folder, tmp_path / "out", workers=0, progress=False, max_iter=ITER,
                    report="json")
    assert rep.done == 8 and rep.failed == 2 and not rep.ok
    text = rep.summary()
    assert "2 failed" in text and "broken.png" in text and "zero.tif" in text
    data = json.loads((tmp_path / "out" / "iem-report.json").read_text())
    assert data["summary"]["failed"] == 2
    failed = [f for f in data["files"] if f["status"] == "failed"]
    assert all(f["error"] for f in failed)


def test_segmentation_error_isolated(folder, tmp_path, monkeypatch):
    """When a batch fails, images are retried one by one and only the culprit fails."""
    real_segment = seg.segment

    def no_batch(*a, **k):
        raise RuntimeError("batch failed")

    def picky(image, *a, **k):
        if image.shape == (40, 48):
            raise RuntimeError("cannot do this one")
        return real_segment(image, *a, **k)

    monkeypatch.setattr(seg, "segment_batch", no_batch)
    monkeypatch.setattr(seg, "segment", picky)
    rep = run_batch(folder, tmp_path / "out", workers=0, progress=False, max_iter=ITER)
    assert rep.done == 5 and rep.failed == 3
    assert all("cannot do this one" in r.error for r in rep.records if r.status == "failed")


@pytest.mark.parametrize("where", ["read_image", "write_labels"])
def test_a_library_bug_fails_its_file_alone(folder, tmp_path, monkeypatch, where):
    """A reader or writer raising other than the read and write errors (a decoder's
    RuntimeError, a struct.error in a broken header) stopped the whole in-process run
    with a traceback, every other file cancelled."""
    real = getattr(task, where)

    def buggy(*a, **k):
        if "s1" in map(str, a) or str(a[0]).endswith("s1.png"):
            raise RuntimeError("a bug in a library")
        return real(*a, **k)

    monkeypatch.setattr(task, where, buggy)
    rep = run_batch(folder, tmp_path / "out", workers=0, progress=False, max_iter=ITER)
    assert rep.done == 7 and rep.failed == 1, rep.summary()
    (bad,) = [r for r in rep.records if r.status == "failed"]
    assert bad.file.endswith("s1.png") and "a bug in a library" in bad.error
    assert not (tmp_path / "out" / "s1.png").exists()


def test_unwritable_output_folder(folder, tmp_path, monkeypatch):
    """Tests run as root, where chmod does not stop writes: a read-only folder is
    simulated by making the write probe fail (and, separately, by a path under a file)."""
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(guard.tempfile, "mkstemp", denied)
    with pytest.raises(BatchError, match="not writable: Permission denied"):
        run_batch(folder, tmp_path / "ro", workers=0, progress=False)
    monkeypatch.undo()
    with pytest.raises(BatchError, match="is a file; choose a folder"):
        run_batch(folder, folder / "s0.png" / "out", workers=0, progress=False)


@pytest.mark.parametrize(
    "kwargs, words",
    [({"regions": 1}, "regions"), ({"sigmaa": 2}, "unknown parameter"),
     ({"preset": "nope"}, "preset must be one of"), ({"protocol": "x"}, "protocol"),
     ({"workers": -1}, "workers"), ({"report": "xml"}, "report")],
)
def test_bad_arguments(folder, tmp_path, kwargs, words):
    with pytest.raises(BatchError, match=words):
        run_batch(folder, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_cluster_without_distributed_says_what_to_install(folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # its import fails
    with pytest.raises(BatchError, match=r"pip install 'dask\[distributed\]'"):
        run_batch(folder, tmp_path / "out", scheduler="tcp://127.0.0.1:1", progress=False)


def test_missing_input_and_no_images(tmp_path):
    with pytest.raises(BatchError, match="input not found"):
        run_batch([tmp_path / "nope"], tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchError, match="no images found"):
        run_batch(tmp_path / "empty", tmp_path / "out", progress=False)


def test_name_clashes_get_distinct_outputs(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    iio.imwrite(d1 / "x.png", disc(32, 32, 16, 16, 8, 0))
    iio.imwrite(d2 / "x.png", disc(32, 32, 16, 16, 8, 1))
    rep = run_batch([d1, d2], tmp_path / "out", workers=0, progress=False, max_iter=5)
    assert sorted(r.output for r in rep.records) == ["x_a.png", "x_b.png"]


def test_paper_protocol_and_overlay(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    iio.imwrite(d / "w.png", disc(60, 90, 30, 45, 20, 3))
    rep = run_batch(d, tmp_path / "out", workers=0, progress=False, protocol="paper",
                    overlay=True, max_iter=5)
    assert rep.ok and rep.records[0].shape == "60x90"
    assert read_labels(tmp_path / "out" / "w.png").shape == (128, 128)
    assert iio.imread(tmp_path / "out" / "overlays" / "w.png").shape == (128, 128, 3)


def test_plan_tasks_bounds():
    keys = ["a"] * 5 + ["b"] * 3 + ["a"]
    pixels = [100] * 9
    tasks = plan_tasks(keys, pixels, max_images=2, max_megapixels=1.0)
    assert all(len(t) <= 2 for t in tasks)
    assert sorted(i for t in tasks for i in t) == list(range(9))
    assert all(len({keys[i] for i in t}) == 1 for t in tasks)
    tasks = plan_tasks(keys, pixels, max_images=10, max_megapixels=250e-6)
    assert all(len(t) <= 2 for t in tasks)
    assert plan_tasks(["a"], [1e9], 10, 1.0) == [[0]]  # an oversized item runs alone



def test_local_workers_start_with_ctrl_c_ignored():
    """Spawned workers inherit an ignored SIGINT, so Ctrl-C reaches only the client;
    the client's own handler is restored afterwards."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    with where._workers_ignore_sigint(True):
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is before
    with where._workers_ignore_sigint(False):  # threads: nothing to do
        assert signal.getsignal(signal.SIGINT) is before


def test_channel_axis_first(tmp_path):
    """(C, Y, X) TIFFs with channel_axis=0 give the same labels as (Y, X, C) PNGs."""
    import tifffile

    rgb = np.stack([disc(32, 32, 16, 16, 9, s) for s in range(3)], axis=-1)
    d = tmp_path / "in"
    d.mkdir()
    iio.imwrite(d / "last.png", rgb)
    tifffile.imwrite(d / "first.tif", np.moveaxis(rgb, -1, 0), photometric="minisblack")
    a = run_batch(d / "last.png", tmp_path / "a", workers=0, progress=False, max_iter=ITER)
    b = run_batch(d / "first.tif", tmp_path / "b", workers=0, progress=False,
                  channel_axis=0, max_iter=ITER)
    assert a.ok and b.ok and b.records[0].shape == "3x32x32"
    assert np.array_equal(read_labels(tmp_path / "a" / "last.png"),
                          read_labels(tmp_path / "b" / "first.png"))
    bad = run_batch(d / "first.tif", tmp_path / "c", workers=0, progress=False,
                    channel_axis=5, max_iter=ITER)
    assert bad.failed == 1 and "axis" in bad.records[0].error


def test_outputs_inside_input_folder_are_not_inputs(folder):
    out = folder / "labels"
    first = run_batch(folder, out, workers=0, progress=False, recursive=True, max_iter=5,
                      overlay=True)
    assert len(list((out / "overlays").glob("*.png"))) == 8
    again = run_batch(folder, out, workers=0, progress=False, recursive=True, max_iter=5,
                      overlay=True)
    assert len(first.records) == len(again.records) == 8
    assert again.skipped == 8


def test_report_names_the_preset_the_default_picked(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    grey = disc(40, 40, 20, 20, 10, 1)
    iio.imwrite(d / "grey.png", grey)  # one channel: a micrograph to "default"
    iio.imwrite(d / "photo.png", np.stack([grey, grey // 2 + 40, 255 - grey], -1))
    report = run_batch(d, tmp_path / "out", workers=0, progress=False, max_iter=ITER)
    assert report.ok and report.settings["preset"] == "default"
    rows = report_rows(tmp_path / "out")
    assert rows["grey.png"]["preset"] == "microscopy"
    assert rows["photo.png"]["preset"] == "photo"
    again = run_batch(d, tmp_path / "out", workers=0, progress=False, max_iter=ITER)
    assert again.skipped == 2  # a skipped file keeps what its earlier run recorded
    assert report_rows(tmp_path / "out")["grey.png"]["preset"] == "microscopy"


def test_a_failed_redo_keeps_the_old_labels_and_is_redone_later(folder, tmp_path,
                                                                monkeypatch):
    out = tmp_path / "out"
    assert run_batch(folder / "s0.png", out, workers=0, progress=False,
                     max_iter=ITER).done == 1
    before = (out / "s0.png").read_bytes()

    def broken(*a, **k):
        raise RuntimeError("no")

    monkeypatch.setattr(seg, "segment_batch", broken)
    monkeypatch.setattr(seg, "segment", broken)
    rep = run_batch(folder / "s0.png", out, workers=0, progress=False, overwrite=True,
                    max_iter=ITER)
    assert rep.failed == 1 and (out / "s0.png").read_bytes() == before
    monkeypatch.undo()
    again = run_batch(folder / "s0.png", out, workers=0, progress=False, max_iter=ITER)
    assert again.done == 1  # the claim of the failed redo: its own file, redone


def test_json_report_is_merged_too(folder, tmp_path):
    out = tmp_path / "out"
    run_batch(folder / "s0.png", out, workers=0, progress=False, max_iter=ITER,
              report="json")
    run_batch(folder / "s1.png", out, workers=0, progress=False, max_iter=ITER,
              report="json")
    files = json.loads((out / "iem-report.json").read_text())["files"]
    assert sorted(f["file"].rsplit("/", 1)[-1] for f in files) == ["s0.png", "s1.png"]


def test_runs_stopped_at_the_cap_are_counted_in_summary_and_report(folder, tmp_path):
    rep = run_batch(folder, tmp_path / "out", workers=0, progress=False, max_iter=1,
                    report="json")
    capped = sum(r.converged is False for r in rep.records)
    assert capped >= 1  # one iteration converges nowhere on these textured discs
    assert all(r.stopped_at_cap for r in rep.records if r.converged is False)
    assert f"{capped} stopped at the iteration cap without converging" in rep.summary()
    data = json.loads((tmp_path / "out" / "iem-report.json").read_text())
    assert data["summary"]["not_converged"] == data["summary"]["stopped_at_cap"] == capped
    assert all(f["stopped_at_cap"] == (not f["converged"]) for f in data["files"])
    done = run_batch(folder, tmp_path / "out2", workers=0, progress=False, report="json")
    assert ("iteration cap" in done.summary()) == any(r.stopped_at_cap
                                                      for r in done.records)
    assert ("ended in a cycle" in done.summary()) == any(
        r.converged is False and not r.stopped_at_cap for r in done.records)


def test_an_image_with_nothing_in_it_is_counted_in_summary_and_report(folder, tmp_path):
    """The "nothing here" test emptied an image without a word in the report or the
    summary: both say so now, and a rerun that skips it keeps its count."""
    rng = np.random.default_rng(5)
    iio.imwrite(folder / "z-noise.png", rng.normal(128, 20, (48, 48)).clip(0, 255)
                .astype(np.uint8))
    out = tmp_path / "out"
    rep = run_batch(folder, out, workers=0, progress=False, max_iter=ITER, report="json")
    counts = {Path(r.file).name: r.no_structure for r in rep.records}
    assert counts.pop("z-noise.png") == 1 and set(counts.values()) == {0}
    assert read_labels(out / "z-noise.png").max() == 0
    assert "1 with no structure found" in rep.summary()
    data = json.loads((out / "iem-report.json").read_text())
    assert data["summary"]["no_structure"] == 1
    again = run_batch(folder, out, workers=0, progress=False, max_iter=ITER, report="json")
    assert again.skipped == len(again.records) and again.no_structure == 0
    assert {Path(r.file).name: r.no_structure for r in again.records}["z-noise.png"] == 1


def test_a_rerun_removes_the_unfinished_writes_a_killed_run_left(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".m0.png.0123abcd{TEMP_SUFFIX}"
    stale.write_bytes(b"half a png")
    mine = out / ".notes.iem-part"  # not the tool's pattern: kept
    mine.write_text("user's")
    run_batch(folder, out, workers=0, progress=False, max_iter=ITER)
    assert not stale.exists() and mine.read_text() == "user's"


def test_a_rerun_removes_the_unfinished_writes_in_every_folder_it_writes(folder,
                                                                          tmp_path):
    """An OME-Zarr's hidden folders, an overlay's and a write record's temporary files
    stayed for ever; names like them that this tool does not make are kept."""
    out = tmp_path / "out"
    zarr_part = out / f".m0.ome.zarr.0123abcd{TEMP_SUFFIX}"
    zarr_old = out / ".m0.ome.zarr.89abcdef.iem-old"
    stale = [out / "overlays" / f".m0.png.0123abcd{TEMP_SUFFIX}",
             out / ".iem-written" / f".{'0' * 32}.json.89abcdef{TEMP_SUFFIX}",
             zarr_part / "0" / ".zarray", zarr_old / ".zattrs"]
    kept = [out / "overlays" / ".notes.iem-part",
            out / f".m0.ome.zarr.0123abcd{TEMP_SUFFIX}.mine",
            out / f".photos.0123abcd{TEMP_SUFFIX}" / "a.png",  # a folder, not OME-Zarr's
            out / f".m0.ome.zarr.0123abcX{TEMP_SUFFIX}" / "a.txt"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left")
    run_batch(folder, out, workers=0, progress=False, max_iter=ITER)
    assert not [p for p in [*stale, zarr_part, zarr_old] if p.exists()]
    assert all(p.read_text() == "left" for p in kept)
    assert not (out / ".iem-written").exists()  # its records settled, it is removed


def test_the_clean_up_does_not_look_into_a_linked_folder(tmp_path):
    from napari_iem.batch.guard import out_dir_lock

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    theirs = elsewhere / f".m0.png.0123abcd{TEMP_SUFFIX}"
    theirs.write_text("theirs")
    (out / "overlays").symlink_to(elsewhere)
    with out_dir_lock(out):
        pass
    assert theirs.read_text() == "theirs"
