"""The optional second stage (napari_iem.analysis.distill): a student network trained on noisy
masks finds the object, deterministically, with clear errors; and the CLI subcommand.

Everything is synthetic and tiny (32x32 to 40x40 images, width-8 networks), so the file
runs in seconds on a CPU.
"""
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_iem.analysis import distill
from napari_iem.cli import main
from napari_iem.files.io import read_labels

from synthetic import iou, textured_disc


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the machines running these tests are shared."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def noisy_mask(truth, rng, shift=2, flip=0.03, chunk=6):
    """A pseudo-label with IEM-like mistakes: shifted, with a chunk cut off and a
    blob of background taken in, plus salt-and-pepper flips."""
    m = np.roll(truth, (rng.integers(-shift, shift + 1), rng.integers(-shift, shift + 1)),
                axis=(0, 1)).copy()
    h, w = m.shape
    y, x = rng.integers(0, h - chunk), rng.integers(0, w - chunk)
    m[y:y + chunk, x:x + chunk] = ~m[y:y + chunk, x:x + chunk]
    return m ^ (rng.random(m.shape) < flip)


def disc_set(n=8, size=32, seed=0, rgb=False):
    """Discs of varying position and radius, their truths and noisy masks."""
    rng = np.random.default_rng(seed)
    images, truths, masks = [], [], []
    for i in range(n):
        r = int(rng.integers(size // 6, size // 4 + 1))
        c = tuple(int(v) for v in rng.integers(r + 2, size - r - 2, 2))
        img, truth = textured_disc(size, radius=r, centre=c, seed=seed * 100 + i, rgb=rgb)
        images.append(img)
        truths.append(truth)
        masks.append(noisy_mask(truth, rng))
    return images, truths, masks


FAST = dict(epochs=25, size=32, width=8, batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    images, truths, masks = disc_set(8, 32, seed=1)
    model = distill.train_student(images, masks, seed=0, **FAST)
    return model, images, truths, masks


def test_student_beats_its_noisy_masks(trained):
    model, images, truths, masks = trained
    noisy = np.mean([iou(m, t) for m, t in zip(masks, truths)])
    # unseen images of the same kind, one of them colour-free sizes differ
    test_images, test_truths, _ = disc_set(4, 40, seed=7)
    for imgs, tru in ((images, truths), (test_images, test_truths)):
        preds = distill.predict_student(model, imgs, "cpu")
        assert all(p.dtype == np.uint8 and p.shape == t.shape for p, t in zip(preds, tru))
        assert set(np.unique(np.concatenate([p.ravel() for p in preds]))) <= {0, 1}
        score = np.mean([iou(p, t) for p, t in zip(preds, tru)])
        assert score > 0.8, score
        assert score > noisy + 0.2, (score, noisy)
    losses = model.config["losses"]
    assert len(losses) == FAST["epochs"] and losses[-1] < losses[0]


def test_same_seed_same_weights_other_seed_differs():
    images, _, masks = disc_set(4, 32, seed=2)
    kw = dict(FAST, epochs=2)
    a = distill.train_student(images, masks, seed=3, **kw).state_dict()
    b = distill.train_student(images, masks, seed=3, **kw).state_dict()
    c = distill.train_student(images, masks, seed=4, **kw).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_global_rng_untouched():
    images, _, masks = disc_set(2, 32, seed=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    distill.train_student(images, masks, seed=0, **dict(FAST, epochs=1))
    assert torch.equal(torch.rand(3), expected)


def test_any_size_grey_rgb_and_16bit():
    net = distill.StudentNet(1, 4)
    for h, w in ((5, 7), (33, 18), (64, 64)):
        assert net(torch.zeros(2, 1, h, w)).shape == (2, 1, h, w)
    # colour and grey mixed: the network takes 3 channels, grey is repeated
    rgb, t1 = textured_disc(32, seed=1, rgb=True)
    grey, t2 = textured_disc(36, seed=2)
    deep = (grey.astype(np.uint16) * 40)[:30, :34]
    model = distill.train_student([rgb, grey], [t1, t2], seed=0, **dict(FAST, epochs=1))
    assert model.in_channels == 3
    preds = distill.predict_student(model, [rgb, grey, deep], "cpu")
    assert [p.shape for p in preds] == [(32, 32), (36, 36), (30, 34)]


def test_save_and_load_round_trip(trained, tmp_path):
    model, images, *_ = trained
    path = distill.save_student(model, tmp_path / "student.pt")
    loaded = distill.load_student(path, "cpu")
    assert loaded.config["size"] == model.config["size"]
    for a, b in zip(distill.student_probabilities(model, images[:3], "cpu"),
                    distill.student_probabilities(loaded, images[:3], "cpu")):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable torch file"):
        distill.load_student(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a napari-iem student"):
        distill.load_student(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        distill.load_student(tmp_path / "missing.pt")


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=[], masks=[]), "no images"),
    (dict(masks="two"), "2 images but 1 masks"),
    (dict(masks="wrong shape"), r"image 1: mask shape \(10, 10\)"),
    (dict(masks="empty"), "all background"),
    (dict(epochs=0), "epochs must be from 1 to 10000"),
    (dict(epochs=10**6), "epochs must be from 1 to 10000"),
    (dict(epochs=2.5), "epochs must be a whole number"),
    (dict(size=4), "size must be from 16"),
    (dict(device="tpu"), "device"),
    (dict(images="stack"), "image 0: expected a 2-D grey"),
])
def test_bad_input_messages(kwargs, message):
    images, _, masks = disc_set(2, 32, seed=3)
    kw = dict(images=images, masks=masks, **dict(FAST, epochs=1))
    kw.update(kwargs)
    if kwargs.get("masks") == "two":
        kw["masks"] = masks[:1]
    elif kwargs.get("masks") == "wrong shape":
        kw["masks"] = [masks[0], np.zeros((10, 10), np.uint8)]
    elif kwargs.get("masks") == "empty":
        kw["masks"] = [np.zeros_like(m) for m in masks]
    if kwargs.get("images") == "stack":
        kw["images"] = [np.zeros((3, 32, 32, 5), np.uint8), images[1]]
    with pytest.raises(ValueError, match=message):
        distill.train_student(kw.pop("images"), kw.pop("masks"), **kw)


# ---------------------------------------------------------------- command line

def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folders(tmp_path):
    """4 tiny disc images (one 16-bit TIFF, one other size) and noisy 'IEM' labels."""
    images_dir, labels_dir = tmp_path / "images", tmp_path / "iem"
    images_dir.mkdir()
    labels_dir.mkdir()
    images, truths, masks = disc_set(4, 32, seed=5)
    truths = dict(zip("abcd", zip(truths, masks)))
    for name, img, m in zip("abcd", images, masks):
        if name == "d":
            import tifffile

            tifffile.imwrite(images_dir / "d.tif", img.astype(np.uint16) * 200)
        else:
            iio.imwrite(images_dir / f"{name}.png", img)
        iio.imwrite(labels_dir / f"{name}.png", m.astype(np.uint8))
    return images_dir, labels_dir, truths


def test_cli_distill_end_to_end(folders, tmp_path, capsys):
    images_dir, labels_dir, truths = folders
    out, model_path = tmp_path / "student", tmp_path / "m.pt"
    code, stdout, err = run(["distill", images_dir, labels_dir, "--out", out,
                             "--epochs", 40, "--size", 32, "--device", "cpu",
                             "--seed", 1, "--save-model", model_path], capsys)
    assert code == 0, err
    assert "trained on 4 image(s)" in stdout and "epoch 40/40" in err
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["a.png", "b.png", "c.png", "d.png"]  # as 'segment' names them
    scores, noisy = [], []
    for stem, (truth, mask) in truths.items():
        lab = read_labels(out / f"{stem}.png")
        assert lab.shape == truth.shape and set(np.unique(lab)) <= {0, 1}
        scores.append(iou(lab > 0, truth))
        noisy.append(iou(mask, truth))
    assert np.mean(scores) > max(0.6, np.mean(noisy) + 0.15), (scores, noisy)
    assert distill.load_student(model_path, "cpu").config["epochs"] == 40
    # an image without labels is still predicted; labels of another size are reported
    iio.imwrite(images_dir / "e.png", textured_disc(32, seed=9)[0])
    iio.imwrite(labels_dir / "a.png", np.zeros((20, 20), np.uint8))
    code, _, err = run(["distill", images_dir, labels_dir, "--out", out, "--epochs", 1,
                        "--size", 32, "--device", "cpu", "-q"], capsys)
    assert code == 1 and "a.png: labels 20x20 but image 32x32" in err
    assert (out / "e.png").is_file()


def test_cli_distill_errors(folders, tmp_path, capsys):
    images_dir, labels_dir, _ = folders
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "distill" in out
    code, out, _ = run(["distill", "--help"], capsys)
    assert code == 0 and "--save-model" in out
    assert f"default {distill.DEFAULT_EPOCHS}" in out and "(default 128)" in out
    assert distill.DEFAULT_SIZE == 128
    code, _, err = run(["distill", images_dir, labels_dir, "--out", labels_dir], capsys)
    assert code == 2 and "would replace the IEM labels" in err
    code, _, err = run(["distill", images_dir, tmp_path / "nope", "--out", tmp_path / "o"],
                       capsys)
    assert code == 2 and "LABELS is not a folder" in err
    other = tmp_path / "other"
    other.mkdir()
    iio.imwrite(other / "zzz.png", np.zeros((8, 8), np.uint8))
    code, _, err = run(["distill", images_dir, other, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "no image" in err and "same name" in err
    code, _, err = run(["distill", images_dir, labels_dir, "--out", tmp_path / "o",
                        "--epochs", "0"], capsys)
    assert code == 2 and "at least 1" in err
    assert not (tmp_path / "o").exists()
