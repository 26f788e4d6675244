"""The napari-iem command: segment folders, report bad files, evaluate, clear errors.

Images are small synthetic discs (40x40 to 48x48) and runs use at most 20 iterations,
so the whole file runs in a few seconds on a laptop CPU.
"""
import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_iem import available_devices
from napari_iem.cli import main
from napari_iem.files.read import read_labels


def disc_image(h=40, w=40, cy=None, cx=None, r=11, seed=0, dtype=np.uint8):
    """A bright textured disc on a darker textured background, and its mask."""
    rng = np.random.default_rng(seed)
    cy = h // 2 if cy is None else cy
    cx = w // 2 if cx is None else cx
    yy, xx = np.mgrid[:h, :w]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    img = np.where(mask, 170.0, 70.0) + rng.normal(0, 15, (h, w))
    img += 10 * np.sin(xx / 2.0) * mask  # texture inside the disc
    img = img.clip(0, 255)
    if dtype == np.uint16:
        img = img * 257
    return img.astype(dtype), mask


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    masks = {}
    for i, (cy, cx) in enumerate([(20, 20), (18, 22), (22, 19)]):
        img, m = disc_image(cy=cy, cx=cx, seed=i)
        iio.imwrite(d / f"disc{i}.png", img)
        masks[f"disc{i}"] = m
    img, m = disc_image(48, 44, seed=9, dtype=np.uint16)
    tifffile.imwrite(d / "deep.tif", img)
    masks["deep"] = m
    return d, masks


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


# ---------------------------------------------------------------- help

def test_help(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "segment" in out and "evaluate" in out
    code, out, _ = run(["segment", "--help"], capsys)
    assert code == 0 and "--protocol" in out and "exit status" in out
    assert "$NAPARI_IEM_MAX_PIXELS" in out  # the default batch.md names
    code, out, _ = run(["evaluate", "--help"], capsys)
    assert code == 0 and "fixed IoU" in out
    code, _, err = run([], capsys)
    assert code == 2 and "COMMAND" in err
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and "napari-iem" in out


def _flag_helps():
    """Every flag's help of every command, as argparse prints it (``%(default)s``
    filled in)."""
    import argparse

    from napari_iem.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help:
                yield command, action, formatter._expand_help(action)


def test_every_flags_help_speaks_the_command_line():
    """The knobs' help said 'None:' and keyword=value, the Python API's words, and a
    maximum of 1099511627776."""
    import re

    for command, action, text in _flag_helps():
        where = f"{command} {action.option_strings or action.dest}: {text}"
        assert not re.search(r"\b(None|True|False)\b|\b[a-z_]+=", text), where
        assert not re.search(r"\d{8}", text), where  # a bound of 13 digits is no help
    helps = {a.dest: text for c, a, text in _flag_helps() if c == "segment"}
    assert "none: the image's own size" in helps["max_size"]  # and what leaving it out
    assert "default: none" in helps["max_size"]  # means: the presets' own value
    assert "default by preset: paper none, photo 128" in helps["coarse_size"]
    assert "from 0 to 2**40; default: 0" in helps["min_piece_size"]
    assert "(--scale, else" in helps["sigma_units"]


def test_bad_option_values(capsys, tmp_path):
    code, _, err = run(["segment", tmp_path, "--out", tmp_path / "o", "--iterations", "0"],
                       capsys)
    assert code == 2 and "argument --max-iter/--iterations: must be a whole number from 1 " \
                         "to 100000" in err
    code, _, err = run(["segment", tmp_path, "--out", tmp_path / "o", "--regions", "1"],
                       capsys)
    assert code == 2 and "regions" in err and "Traceback" not in err


def test_a_mistyped_value_is_said_in_two_lines(capsys, tmp_path):
    """segment's usage line listed every flag: 30 lines above each mistake."""
    code, _, err = run(["segment", tmp_path, "--out", tmp_path / "o", "--mode", "slice"],
                       capsys)
    assert code == 2 and "argument --mode: must be one of '2d', 'slices', 'volume'" in err
    assert len(err.strip().splitlines()) == 2, err  # and the flag said once


# ---------------------------------------------------------------- segment

def test_segment_folder(image_dir, tmp_path, capsys):
    src, masks = image_dir
    out = tmp_path / "out"
    code, stdout, _ = run(["segment", src, "--out", out, "--iterations", 20,
                           "--workers", 0, "--overlay"], capsys)
    assert code == 0
    assert "4 segmented" in stdout and "iem-report.csv" in stdout
    for stem, mask in masks.items():
        labels = read_labels(out / f"{stem}.png")
        assert labels.shape == mask.shape and labels.dtype == np.uint8
        assert set(np.unique(labels)) <= {0, 1}
        assert iou(labels == 1, mask) > 0.5, stem  # the disc, not its complement
        assert (out / "overlays" / f"{stem}.png").is_file()
    rows = list(csv.DictReader(open(out / "iem-report.csv")))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    best = available_devices()[0]  # "auto": the GPU where there is one
    assert all(int(r["iterations"]) <= 20 and r["device"] == best for r in rows)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_bad_files_are_reported_and_skipped(image_dir, tmp_path, capsys):
    src, masks = image_dir
    (src / "junk.png").write_bytes(b"this is not a png")
    (src / "empty.tif").write_bytes(b"")
    raw = (src / "disc0.png").read_bytes()
    (src / "truncated.png").write_bytes(raw[: len(raw) // 2])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    out = tmp_path / "out"
    code, _, err = run(["segment", src, notes, "--out", out, "--iterations", 20,
                        "--workers", 0, "-q"], capsys)
    assert code == 1
    for name in ["junk.png", "empty.tif", "truncated.png", "notes.txt"]:
        assert name in err
    assert "empty file" in err and "not a PNG, JPEG or TIFF" in err
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{s}.png" for s in masks)
    rows = {r["file"].split("/")[-1]: r for r in csv.DictReader(open(out / "iem-report.csv"))}
    assert rows["junk.png"]["status"] == "failed" and rows["junk.png"]["error"]
    assert rows["disc1.png"]["status"] == "done"


def test_rerun_skips_and_json_report(image_dir, tmp_path, capsys):
    src, _ = image_dir
    out = tmp_path / "out"
    args = ["segment", src, "--out", out, "--iterations", 20, "--workers", 0]
    assert run(args, capsys)[0] == 0
    code, stdout, _ = run(args + ["--report", "json"], capsys)
    assert code == 0 and "4 skipped" in stdout
    data = json.loads((out / "iem-report.json").read_text())
    assert data["summary"]["skipped"] == 4
    assert {f["status"] for f in data["files"]} == {"skipped"}


def test_config_file_and_overrides(image_dir, tmp_path, capsys):
    src, _ = image_dir
    cfg = tmp_path / "s.toml"
    cfg.write_text('preset = "default"\nregions = 3\n[params]\nmax_iter = 5\n')
    out = tmp_path / "out"
    code, _, _ = run(["segment", src / "disc0.png", "--out", out, "--config", cfg,
                      "--workers", 0, "-q"], capsys)
    assert code == 0
    row = next(csv.DictReader(open(out / "iem-report.csv")))
    assert row["regions"] == "3" and int(row["iterations"]) <= 5
    code, _, _ = run(["segment", src / "disc0.png", "--out", out, "--config", cfg,
                      "--regions", "2", "--overwrite", "--workers", 0, "-q"], capsys)
    row = next(csv.DictReader(open(out / "iem-report.csv")))
    assert code == 0 and row["regions"] == "2"


def test_protocol_paper_gives_128(tmp_path, capsys):
    img, _ = disc_image(100, 150, r=30)
    src = tmp_path / "in"
    src.mkdir()
    iio.imwrite(src / "wide.png", img)
    out = tmp_path / "out"
    code, _, _ = run(["segment", src, "--out", out, "--protocol", "paper",
                      "--iterations", 5, "--workers", 0, "-q"], capsys)
    assert code == 0
    assert read_labels(out / "wide.png").shape == (128, 128)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda t: ["segment", t / "missing", "--out", t / "o"], "input not found"),
        (lambda t: ["segment", t / "in", "--out", t / "in" / "a.png" / "sub"],
         "a.png is a file; choose a folder"),
        (lambda t: ["segment", t / "in", "--out", t / "o", "--config", t / "bad.toml"],
         "not valid TOML"),
        (lambda t: ["segment", t / "in", "--out", t / "o", "--config", t / "unk.toml"],
         "unknown key"),
        (lambda t: ["segment", t / "in", "--out", t / "o", "--config", t / "none.json"],
         "settings file not found"),
        (lambda t: ["segment", t / "in", "--out", t / "o", "--device", "tpu"], "device"),
        (lambda t: ["segment", t / "empty", "--out", t / "o"], "no images found"),
        (lambda t: ["evaluate", t / "missing", t / "in"], "not a folder"),
        (lambda t: ["segment", t / "in", "--out", t / "o", "--scheduler", "bogus://x:1"],
         "cannot connect to the Dask scheduler"),
    ],
)
def test_errors_are_one_clear_line(tmp_path, capsys, make, words):
    """Setup errors exit with 2 and one line on stderr, no traceback.

    The unwritable output folder is simulated by a path under a regular file (tests run
    as root, where chmod would not stop writes).
    """
    (tmp_path / "in").mkdir()
    (tmp_path / "empty").mkdir()
    iio.imwrite(tmp_path / "in" / "a.png", disc_image()[0])
    (tmp_path / "bad.toml").write_text("regions = = 2")
    (tmp_path / "unk.toml").write_text("colour = 'red'")
    code, out, err = run(make(tmp_path), capsys)
    assert code == 2
    assert words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- evaluate

def write_pair(pred_dir, gt_dir, stem, pred, gt):
    pred_dir.mkdir(exist_ok=True)
    gt_dir.mkdir(exist_ok=True)
    iio.imwrite(pred_dir / f"{stem}.png", pred.astype(np.uint8))
    iio.imwrite(gt_dir / f"{stem}.png", (gt * 255).astype(np.uint8))


@pytest.mark.parametrize(
    "extra, said, not_said",
    [
        ([], "use --mode slices to segment every 2-D plane, --mode volume for a 3-D "
             "stack, or --channel-axis for", "mode='"),
        (["--channel-axis", "7"], "--channel-axis 7 is not an axis of an array of shape "
                                  "(4, 40, 40)", "source: axis 7"),
        (["--mode", "volume", "--channel-axis", "0"], "--mode volume needs 3 spatial "
                                                      "axes; shape (4, 40, 40)", "mode="),
        (["--regions", "3", "--flip"], "needs --regions 2, got --regions 3", "regions="),
        (["--mode", "slices", "--scale", "1,1,1,1"], "give --scale one value per spatial "
                                                     "axis (2)", "scale has"),
    ],
)
def test_errors_name_the_flags(tmp_path, capsys, extra, said, not_said):
    """The engine's messages reached the command line in the API's words
    (``mode='slices'``, ``channel_axis=``); an axis not in the file was numpy's
    'source: axis 7 is out of bounds'."""
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([disc_image()[0]] * 4),
                     photometric="minisblack")
    _, _, err = run(["segment", tmp_path / "stack.tif", "--out", tmp_path / "o",
                     "--iterations", 3, "--workers", 0, "-q", *extra], capsys)
    assert said in err and not_said not in err, err


def test_the_report_names_the_flags_too(tmp_path, capsys):
    """The report file kept the engine's words (``use mode='slices'``) while the
    summary on the terminal gave the flags."""
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([disc_image()[0]] * 4),
                     photometric="minisblack")
    run(["segment", tmp_path / "stack.tif", "--out", tmp_path / "o", "--workers", 0, "-q"],
        capsys)
    error = next(csv.DictReader(open(tmp_path / "o" / "iem-report.csv")))["error"]
    assert "use --mode slices" in error and "mode='" not in error, error


def test_a_settings_files_keys_keep_their_names(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    iio.imwrite(tmp_path / "in" / "a.png", disc_image()[0])
    (tmp_path / "c.toml").write_text("[params]\npercentile_low = 50\npercentile_high = 9\n")
    code, _, err = run(["segment", tmp_path / "in", "--out", tmp_path / "o", "--config",
                        tmp_path / "c.toml"], capsys)
    assert code == 2 and "percentile_low (50.0) must be below percentile_high" in err


def test_evaluate_table_and_json(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    m = np.zeros((8, 8), bool)
    m[2:6, 2:6] = True
    write_pair(pred, gt, "a", m, m)        # perfect
    write_pair(pred, gt, "b", ~m, m)       # inverted: perfect with a flip, fixed IoU 0
    gt.joinpath("c.png").write_bytes(gt.joinpath("a.png").read_bytes())  # no prediction
    code, out, err = run(["evaluate", pred, gt], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["images", "Acc", "IoU", "mIoU", "Dice", "fixed", "IoU"]
    assert lines[1].split() == ["2", "100.0", "100.0", "100.0", "100.0", "50.0"]
    assert "1 ground-truth mask(s) without a prediction" in err and "c" in err
    code, out, _ = run(["evaluate", pred, gt, "--json", "--per-image"], capsys)
    data = json.loads(out)
    assert code == 0 and data["n_images"] == 2
    assert data["iou"] == 1.0 and data["fixed_iou"] == 0.5 and data["acc"] == 1.0
    assert [r["file"] for r in data["per_image"]] == ["a.png", "b.png"]
    assert data["per_image"][1]["fixed_iou"] == 0.0
    assert data["missing_predictions"] == ["c"]
    code, out, _ = run(["evaluate", pred, gt, "--per-image"], capsys)
    assert "a.png" in out and "b.png" in out


def test_evaluate_known_partial_values(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    g = np.zeros((4, 4), bool)
    g[:2] = True
    p = np.zeros((4, 4), bool)
    p[:1] = True
    write_pair(pred, gt, "x", p, g)
    code, out, _ = run(["evaluate", pred, gt, "--json"], capsys)
    data = json.loads(out)
    assert data["acc"] == pytest.approx(0.75) and data["fixed_iou"] == pytest.approx(0.5)
    assert data["dice"] == pytest.approx(2 / 3)


def test_evaluate_paper_protocol(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    g = np.zeros((200, 256), bool)
    g[50:150, 60:200] = True
    from napari_iem.analysis.metrics import paper_protocol

    write_pair(pred, gt, "h", paper_protocol(g), g)
    code, out, _ = run(["evaluate", pred, gt, "--protocol", "paper", "--json"], capsys)
    assert code == 0 and json.loads(out)["fixed_iou"] == 1.0
    code, _, err = run(["evaluate", pred, gt], capsys)
    assert code == 2 and "--protocol paper" in err


def test_evaluate_no_matches(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    m = np.ones((4, 4), bool)
    write_pair(pred, gt, "a", m, m)
    (pred / "a.png").rename(pred / "z.png")
    code, _, err = run(["evaluate", pred, gt], capsys)
    assert code == 2 and "no prediction" in err


def test_stack_slices_and_instances(tmp_path, capsys):
    """--mode slices segments every plane of a TIFF stack; --instances writes objects."""
    from synthetic import touching_discs

    d = tmp_path / "in"
    d.mkdir()
    planes = [disc_image(40, 40, seed=s)[0] for s in range(3)]
    tifffile.imwrite(d / "stack.tif", np.stack(planes), photometric="minisblack")
    discs, truth = touching_discs(64)
    tifffile.imwrite(d / "pair.tif", discs)
    out = tmp_path / "out"
    code, _, err = run(["segment", d / "stack.tif", "--out", out, "--mode", "slices",
                        "--iterations", "30", "-q", "--workers", "0"], capsys)
    assert code == 0, err
    labels = tifffile.imread(out / "stack.tif")
    assert labels.shape == (3, 40, 40)
    for plane, (_, mask) in zip(labels, [disc_image(40, 40, seed=s) for s in range(3)]):
        assert iou(plane == 1, mask) > 0.8
    code, _, err = run(["segment", d / "pair.tif", "--out", out, "--instances", "-q",
                        "--workers", "0"], capsys)
    assert code == 0, err
    objects = read_labels(out / "pair.png")
    assert len(np.unique(objects[truth > 0])) >= 2  # the touching pair is split
