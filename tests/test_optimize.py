import pytest
import torch

from napari_iem.engine.objective import IEMObjective
from napari_iem.engine.optimize import (
    _border, _flip_binary, _flip_general, _smooth_binary, _smooth_general, optimize,
    kmeans_init, square_init,
)
from napari_iem.engine.presets import PRESETS

PAPER = PRESETS["paper"]


def run(x, regions=2, params=PAPER, **kw):
    gen = optimize(x, regions, params, **kw)
    states = []
    try:
        while True:
            states.append(next(gen))
    except StopIteration as stop:
        return stop.value, states


def disc_batch(b=2, size=40):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2).float()
    x = disc * torch.sin(xx / 1.5) * 0.4 + disc * 0.3 - (1 - disc) * 0.5
    return x.expand(b, 1, size, size).clone()


def test_square_init_matches_the_paper():
    lab = square_init((10, 15), 1, "cpu")[0]
    assert lab[2:8, 3:12].all() and lab.sum() == 6 * 9


def test_binary_rules_equal_the_general_rules_for_two_regions():
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(3, 30, 30, generator=g) > 0.5).long()
    gains = torch.randn(3, 1, 30, 30, generator=g)
    border = _border((30, 30), "cpu")
    locked = torch.rand(3, 30, 30, generator=g) > 0.8
    assert torch.equal(_flip_binary(labels, gains[:, 0], border, locked),
                       _flip_general(labels, gains, 2, border, locked))
    for t in (3, 4, 5):
        assert torch.equal(_smooth_binary(labels, t), _smooth_general(labels, 2, t))


def test_k2_general_path_gives_the_binary_path_result():
    x = disc_batch()
    fast, _ = run(x, params=PAPER.replace(max_iter=40))
    labels = fast.labels
    a = IEMObjective(x, 2, PAPER)
    b = IEMObjective(x, 2, PAPER)
    b.binary_path = False
    ja, ga = a.evaluate(labels)
    jb, gb = b.evaluate(labels)
    assert torch.allclose(ja, jb) and torch.allclose(ga, gb, atol=1e-9)


def test_stops_at_a_fixed_point_with_the_same_labels():
    x = disc_batch(b=1)
    state, states = run(x)
    assert state.converged.all()
    assert state.iterations[0] == len(states) < PAPER.max_iter
    # one more iteration from the fixed point changes nothing
    again, more = run(x, init=state.labels, params=PAPER.replace(max_iter=5))
    assert len(more) == 1 and torch.equal(again.labels, state.labels)


def test_images_of_a_batch_stop_independently():
    x = torch.cat([disc_batch(b=1), torch.rand(1, 1, 40, 40) * 2 - 1])
    state, _ = run(x, params=PAPER.replace(max_iter=60))
    single = [run(x[i : i + 1], params=PAPER.replace(max_iter=60))[0] for i in range(2)]
    for i in range(2):
        assert torch.equal(state.labels[i], single[i].labels[0])
        assert state.iterations[i] == single[i].iterations[0]
    assert len(state.history[0]) == int(state.iterations[0])


def test_locked_pixels_keep_their_label():
    x = disc_batch(b=1)
    init = torch.zeros(1, 40, 40, dtype=torch.long)
    locked = torch.zeros(1, 40, 40, dtype=torch.bool)
    init[0, 18:22, 18:22] = 0  # the centre of the disc, forced to background
    locked[0, 17:23, 17:23] = True
    init[0, 8:32, 8:32] = 1
    init[0, 17:23, 17:23] = 0
    state, _ = run(x, init=init, locked=locked)
    assert (state.labels[0][locked[0]] == 0).all()
    assert state.labels[0].sum() > 100  # the rest of the disc is still found


def test_kmeans_init_gives_every_region_in_brightness_order():
    x = torch.linspace(-1, 1, 40).view(1, 1, 1, 40).expand(1, 1, 40, 40).clone()
    labels = kmeans_init(x, 4, IEMObjective(x, 4, PAPER))
    assert sorted(labels.unique().tolist()) == [0, 1, 2, 3]
    assert (labels[0, :, 0] == 0).all() and (labels[0, :, -1] == 3).all()


def test_progress_is_yielded_and_closing_stops_the_work():
    gen = optimize(torch.rand(1, 1, 32, 32) * 2 - 1, 2, PAPER)
    first = next(gen)
    assert first.iteration == 1 and len(first.history[0]) == 1
    gen.close()  # a GUI's cancel
    assert first.iterations[0] == 1


def test_a_detected_cycle_gives_the_labels_of_the_full_run():
    """Stopping at a repeated state returns what max_iter iterations would give."""
    import napari_iem.engine.optimize as op

    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 3, 40, 40, generator=g) * 2 - 1
    for n in (37, 38):  # both parities of a period-2 oscillation
        fast, _ = run(x, params=PAPER.replace(max_iter=n))
        window, op.CYCLE_WINDOW = op.CYCLE_WINDOW, 0
        try:
            full, _ = run(x, params=PAPER.replace(max_iter=n))
        finally:
            op.CYCLE_WINDOW = window
        assert torch.equal(fast.labels, full.labels)
        assert (full.iterations == n).all()
        assert fast.iterations.sum() < full.iterations.sum()  # it did stop early


@pytest.mark.parametrize("shape", [(3, 37, 41), (2, 9, 13, 17), (1, 1, 5)])
def test_boundary_pixels_are_where_both_dilations_meet(shape):
    """The K = 2 band (pixels with a neighbour of the other label) is the paper's
    ``dilate(M) & dilate(~M)``, in 2-D and 3-D."""
    from napari_iem.engine.optimize import _differs, _shift_or

    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.6
    nd = len(shape) - 1
    assert torch.equal(_differs(mask, nd), _shift_or(mask, nd) & _shift_or(~mask, nd))


@pytest.mark.parametrize("regions", [2, 3])
def test_the_inside_border_rule_keeps_a_region_at_the_corner(regions):
    """A true majority of a zero-padded window can never keep a corner pixel (4 of
    its 9 are inside the image); counted among the pixels inside, a region filling
    the corner keeps it, and the interior is decided as before."""
    from napari_iem.engine.optimize import smooth

    labels = torch.zeros(1, 9, 9, dtype=torch.int64)
    labels[0, :4, :4] = regions - 1  # a block in the corner
    labels[0, 6, 6] = regions - 1  # a lone pixel inside: removed by both rules
    zero = smooth(labels, regions, 5, border="zero")
    inside = smooth(labels, regions, 5, border="inside")
    assert zero[0, 0, 0] == 0 and (inside[0, :3, :3] == regions - 1).all()
    assert torch.equal(zero[0, 1:-1, 1:-1], inside[0, 1:-1, 1:-1])  # 9 inside: the same
    assert inside[0, 6, 6] == 0
