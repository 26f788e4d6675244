import sys
from pathlib import Path

import pytest
import torch

from napari_iem.engine.inpaint import GaussianFilter, inpaint
from napari_iem.engine.objective import IEMObjective, one_hot
from napari_iem.engine.presets import PRESETS

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import naive_iem  # noqa: E402

PAPER = PRESETS["paper"]


def smooth_image(b=2, c=3, shape=(40, 48), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, *shape, generator=g, dtype=torch.float64)
    filt = GaussianFilter(shape, 7, 2.0, 1, dtype=torch.float64)
    return (filt(x) / filt.ones * 4 - 2).clamp(-1, 1)


def random_labels(b, regions, shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, regions, (b, *shape), generator=g)


def k_region_objective(x, m, params):
    """method.md's K-region J, transcribed for autograd (float64)."""
    filt = GaussianFilter(x.shape[2:], params.kernel_size, params.sigma, params.reps,
                          dtype=x.dtype)
    j = 0
    for k in range(m.shape[1]):
        mk = m[:, k : k + 1]
        phi = inpaint(x, 1 - mk, filt)
        area = mk.sum(dim=(1, 2, 3))
        err = (mk * (x - phi).abs().mean(1, keepdim=True)).sum(dim=(1, 2, 3))
        mu = (x * mk).sum(dim=(2, 3), keepdim=True) / area.view(-1, 1, 1, 1)
        j = j + err / area - params.lam * (mk * (x - mu) ** 2).sum(dim=(1, 2, 3))
    return j


@pytest.mark.parametrize("binary_path", [True, False])
def test_binary_objective_and_gain_equal_autograd_of_the_paper_formula(binary_path):
    x = smooth_image()
    labels = random_labels(2, 2, x.shape[2:])
    obj = IEMObjective(x, 2, PAPER)
    obj.binary_path = binary_path
    j, gains = obj.evaluate(labels)
    m = labels[:, None].to(x.dtype).requires_grad_(True)
    k = naive_iem.gaussian_1d().to(x.dtype)
    j_ref = naive_iem.objective(x, m, k)
    (g_ref,) = torch.autograd.grad(j_ref.sum(), m)
    # the naive kernel is built in float32: agreement to ~1e-7 of the gradient's scale
    assert torch.allclose(j, j_ref.detach(), rtol=1e-6)
    assert torch.allclose(gains[:, 0], g_ref[:, 0], rtol=0, atol=1e-7 * g_ref.abs().max())


def test_k_region_gains_equal_autograd_differences():
    x = smooth_image(b=1, c=2)
    labels = random_labels(1, 4, x.shape[2:])
    j, gains = IEMObjective(x, 4, PAPER).evaluate(labels)
    m = one_hot(labels, 4, x.dtype).requires_grad_(True)
    j_ref = k_region_objective(x, m, PAPER)
    (g,) = torch.autograd.grad(j_ref.sum(), m)
    assert torch.allclose(j, j_ref.detach(), rtol=1e-10)
    assert torch.allclose(gains, g[:, 1:] - g[:, :1], rtol=1e-7, atol=1e-12)


def test_objective_is_per_image_in_a_batch():
    x = smooth_image(b=3)
    labels = random_labels(3, 2, x.shape[2:])
    j_batch, g_batch = IEMObjective(x, 2, PAPER).evaluate(labels)
    for b in range(3):
        j_one, g_one = IEMObjective(x[b : b + 1], 2, PAPER).evaluate(labels[b : b + 1])
        assert torch.allclose(j_batch[b], j_one[0])
        assert torch.allclose(g_batch[b], g_one[0])


def test_an_empty_region_gives_finite_values():
    x = smooth_image(b=1)
    labels = torch.zeros(1, *x.shape[2:], dtype=torch.int64)
    j, gains = IEMObjective(x, 3, PAPER).evaluate(labels)
    assert torch.isfinite(j).all() and torch.isfinite(gains).all()


def test_the_true_partition_scores_higher_than_a_shifted_one():
    """The objective prefers the boundary that separates two textures."""
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    truth = ((yy - 24) ** 2 + (xx - 24) ** 2 < 12**2).long()
    x = torch.where(truth.bool(), 0.5 + 0.3 * torch.sin(xx / 1.5), -0.5).float()[None, None]
    shifted = torch.roll(truth, 6, dims=1)
    j, _ = IEMObjective(x, 2, PAPER).evaluate(truth[None])
    j_shift, _ = IEMObjective(x, 2, PAPER).evaluate(shifted[None])
    assert j.item() > j_shift.item()


def test_strip_by_strip_evaluation_equals_one_strip(monkeypatch):
    """The fused K = 2 pass over strips gives the values of the whole image at once."""
    import napari_iem.engine.objective as ob

    x = smooth_image(b=2, c=3, shape=(75, 40))
    labels = random_labels(2, 2, x.shape[2:])
    j_one, g_one = IEMObjective(x, 2, PAPER).evaluate(labels)
    monkeypatch.setattr(ob, "STRIP_ELEMENTS", 1)
    monkeypatch.setattr(ob, "STRIP_ROWS_MIN", 16)
    obj = IEMObjective(x, 2, PAPER)
    assert len(obj.filt.strips()) == 5
    j, g = obj.evaluate(labels)
    assert torch.allclose(j, j_one, rtol=1e-12) and torch.allclose(g, g_one, rtol=1e-10)


@pytest.mark.parametrize("regions", [2, 3])
def test_a_batch_evaluated_in_chunks_gives_the_same_bits(regions):
    """A large batch of small images is evaluated a few images at a time (to stay in
    cache): each image's objective, gains and kept parts are those of one call."""
    x = smooth_image(b=5, shape=(32, 36)).float()
    labels = random_labels(5, regions, x.shape[2:])
    whole = IEMObjective(x, regions, PAPER)
    whole.images_per_chunk = 5
    chunked = IEMObjective(x, regions, PAPER)
    chunked.images_per_chunk = 2
    keep = 16 if regions == 2 else 0
    expected, got = whole.evaluate(labels, keep=keep), chunked.evaluate(labels, keep=keep)
    assert len(_flat(got)) == len(_flat(expected)) == (5 if keep else 2)
    for a, b in zip(_flat(got), _flat(expected)):
        assert torch.equal(a, b)
    index = torch.tensor([4, 0, 2])  # the optimiser's shrinking batch: a gathered subset
    j, g = chunked.evaluate(labels[index], index)
    assert torch.equal(j, expected[0][index]) and torch.equal(g, expected[1][index])


def _flat(result):
    """``(j, gains[, (parts...)])`` as one list of tensors."""
    return [t for item in result for t in (item if isinstance(item, tuple) else (item,))]
