"""The IEM optimiser: greedy flips on the region boundaries, smoothing, fixed-point stop.

The labels are discrete at all times.  Each iteration (method.md, "The optimization"):

1. gains ``g_k`` = dJ/dm_k - dJ/dm_0 on the continuous relaxation (:mod:`.objective`);
2. every pixel on a region boundary (a 4-neighbour, 6 in 3-D, has another label; pixels
   on the image border always count, as the reference treats outside as neither region)
   takes, among its own label and its neighbours' labels (all labels on the border), the
   one with the largest gain; ties go to the lower label, so for K = 2 this is exactly
   the paper's ``M = [g > 0]`` on the band;
3. smoothing: a pixel takes the most frequent non-background label of its 3x3 (3x3x3)
   neighbourhood when that label fills at least ``smooth_threshold`` of it, background
   otherwise; for K = 2 this is the paper's ``M = [box3x3(M) >= 4]`` (zero padded).
   With ``smooth_border="inside"`` the threshold is a share of the window's pixels
   inside the image (``box(M) * 9 >= threshold * box(1)``), the same in the interior.

An image whose labels did not change in an iteration is at a fixed point: every later
iteration would reproduce it, so it leaves the batch there and the result is identical to
running all ``max_iter`` iterations.
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from .band_evaluation import band_evaluator
from .objective import IEMObjective, one_hot
from .presets import IEMParams
from .texture import with_texture

#: Longest label cycle detected (states kept per image), and the image size above which
#: only fixed points are detected, to keep that memory small.
CYCLE_WINDOW = 8
CYCLE_WINDOW_MAX_PIXELS = 2**22


@dataclass
class OptimState:
    """Where the optimisation of a batch stands; yielded after every iteration."""

    labels: torch.Tensor  # (B, *S) int64, current labels of every image
    iteration: int  # iterations done so far (of the longest-running image)
    objective: torch.Tensor  # (B,) J of each image's labels at its last evaluation
    iterations: torch.Tensor  # (B,) iterations each image ran
    converged: torch.Tensor  # (B,) bool, reached a fixed point
    period: torch.Tensor | None = None  # (B,) cycle length found (1: fixed point, 0: none)
    history: list[list[float]] = field(default_factory=list)  # J per image, per iteration


def stopped_at_cap(state: OptimState, b: int) -> bool:
    """Whether image ``b`` of a finished optimisation ran out of iterations: it reached
    neither a fixed point nor an exact cycle (whose every later state is known), so
    more iterations could still move its labels.  A cycle is not a failure to tell the
    user about: the contour alternates between a few states for ever."""
    return not bool(state.converged[b]) and int(state.period[b]) == 0


def square_init(shape: tuple[int, ...], batch: int, device) -> torch.Tensor:
    """The paper's start: label 1 on the centred box ``[n//5, n - n//5)`` of every axis."""
    labels = torch.zeros((batch, *shape), dtype=torch.int64, device=device)
    box = tuple(slice(n // 5, n - n // 5) for n in shape)
    labels[(slice(None), *box)] = 1
    return labels


def kmeans_init(x: torch.Tensor, regions: int, objective: IEMObjective,
                iterations: int = 20) -> torch.Tensor:
    """K colour clusters of the Gaussian-smoothed image: a deterministic start for any K.

    Lloyd's k-means on the smoothed channels, started from the means of K equal-count
    bands of smoothed grey value (so label order follows brightness, darkest = 0).
    """
    filt = objective.filt
    feats = (filt(x) / filt.ones).flatten(2).transpose(1, 2)  # (B, N, C)
    grey = feats.mean(-1)
    qs = torch.linspace(0, 1, regions + 1, device=x.device, dtype=x.dtype)[1:-1]
    cuts = torch.quantile(grey, qs, dim=1).T  # (B, K-1)
    labels = (grey[:, :, None] > cuts[:, None, :]).sum(-1)
    for _ in range(iterations):
        onehot = torch.nn.functional.one_hot(labels, regions).to(x.dtype)  # (B, N, K)
        counts = onehot.sum(1)  # (B, K)
        centres = onehot.transpose(1, 2) @ feats / counts.clamp_min(1)[..., None]
        dist = torch.cdist(feats, centres)
        dist = dist.masked_fill((counts == 0)[:, None, :], float("inf"))
        new = dist.argmin(-1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels.view(x.shape[0], *x.shape[2:])


def _shift_or(mask: torch.Tensor, nd: int) -> torch.Tensor:
    """``mask`` OR its 4- (6-) neighbours along the last ``nd`` axes, zero padded."""
    out = mask.clone()
    for d in range(mask.ndim - nd, mask.ndim):
        n = mask.shape[d]
        out.narrow(d, 1, n - 1).logical_or_(mask.narrow(d, 0, n - 1))
        out.narrow(d, 0, n - 1).logical_or_(mask.narrow(d, 1, n - 1))
    return out


def _differs(mask: torch.Tensor, nd: int) -> torch.Tensor:
    """Pixels of boolean ``mask`` with a 4- (6-) neighbour of the other value along the
    last ``nd`` axes: ``_shift_or(mask) & _shift_or(~mask)``, in half the passes over
    memory (a pixel's dilations of both values meet exactly where a neighbour differs)."""
    out = torch.zeros_like(mask)
    for d in range(mask.ndim - nd, mask.ndim):
        n = mask.shape[d]
        step = mask.narrow(d, 1, n - 1) ^ mask.narrow(d, 0, n - 1)
        out.narrow(d, 1, n - 1).logical_or_(step)
        out.narrow(d, 0, n - 1).logical_or_(step)
    return out


def _border(shape: tuple[int, ...], device) -> torch.Tensor:
    border = torch.zeros(shape, dtype=torch.bool, device=device)
    for d, n in enumerate(shape):
        border.narrow(d, 0, 1).fill_(True)
        border.narrow(d, n - 1, 1).fill_(True)
    return border


def _box_sum(x: torch.Tensor, nd: int) -> torch.Tensor:
    """3x3 (3x3x3) box sum over the last ``nd`` axes, zero padded, centre included."""
    for d in range(x.ndim - nd, x.ndim):
        n = x.shape[d]
        s = x.clone()
        s.narrow(d, 1, n - 1).add_(x.narrow(d, 0, n - 1))
        s.narrow(d, 0, n - 1).add_(x.narrow(d, 1, n - 1))
        x = s
    return x


def flip_step(labels, gains, regions, border, locked=None):
    """Move each boundary pixel to the candidate label with the largest gain.

    ``gains`` has shape ``(B, K-1, *S)``: the gain of each label over label 0.  For
    K = 2 the new labels are boolean (region 1), a byte a pixel instead of eight: on
    a 4096x4096 image each int64 temporary is 134 MB.
    """
    if regions == 2:
        return _flip_binary(labels, gains[:, 0], border, locked)
    return _flip_general(labels, gains, regions, border, locked)


def _flip_binary(labels, gain, border, locked):
    """K = 2: ``M = [g > 0]`` on the band, the paper's rule, with boolean masks only."""
    nd = labels.ndim - 1
    inside = labels.bool()
    band = _differs(inside, nd).logical_or_(border)
    if locked is not None:
        band &= ~locked
    return torch.where(band, gain > 0, inside)


def _flip_general(labels, gains, regions, border, locked):
    nd = labels.ndim - 1
    m = one_hot(labels, regions, torch.bool)
    allowed = _shift_or(m, nd) | border
    if locked is not None:
        allowed = torch.where(locked[:, None], m, allowed)
    score = torch.cat([torch.zeros_like(gains[:, :1]), gains], dim=1)
    return score.masked_fill(~allowed, float("-inf")).argmax(1)


def smooth(labels, regions, threshold, locked=None, border="zero"):
    """Most frequent non-background label of the neighbourhood if frequent enough
    (``border``: how the window counts at the image border, see the module doc)."""
    if regions == 2:
        out = _smooth_binary(labels, threshold, border)
    else:
        out = _smooth_general(labels, regions, threshold, border)
    if locked is not None:
        out = torch.where(locked, labels.to(out.dtype), out)
    return out


def _enough(count: torch.Tensor, threshold: int, border: str, nd: int) -> torch.Tensor:
    """Whether a window count reaches ``threshold``: of the full window (``"zero"``:
    the pixels outside the image count as none), or its share of the window's pixels
    inside the image (``"inside"``; 9 everywhere but at the border)."""
    if border == "zero":
        return count >= threshold
    return count.to(torch.int16) * 3**nd >= threshold * _inside(count.shape[-nd:],
                                                                count.device)


@lru_cache(maxsize=16)
def _inside(shape: tuple[int, ...], device) -> torch.Tensor:
    """Pixels of each 3x3 (3x3x3) window inside an image of ``shape``, once per shape:
    the smoothing asks for it every iteration."""
    return _box_sum(torch.ones(shape, dtype=torch.int16, device=device), len(shape))


def _smooth_binary(labels, threshold, border="zero"):
    """K = 2: ``M = [box3x3(M) >= threshold]``, the paper's rule (boolean)."""
    nd = labels.ndim - 1
    return _enough(_box_sum(labels.to(torch.uint8), nd), threshold, border, nd)  # a byte


def _smooth_general(labels, regions, threshold, border="zero"):
    nd = labels.ndim - 1
    counts = _box_sum(one_hot(labels, regions, torch.int16)[:, 1:], nd)
    best_count, best = counts.max(1)
    return torch.where(_enough(best_count, threshold, border, nd), best + 1,
                       torch.zeros_like(best))


def optimize(
    x: torch.Tensor,
    regions: int,
    params: IEMParams,
    init: torch.Tensor | None = None,
    locked: torch.Tensor | None = None,
) -> Generator[OptimState, None, OptimState]:
    """Maximise J for a batch ``x`` of shape ``(B, C, *S)``; yields after each iteration.

    Parameters
    ----------
    x : Tensor (B, C, *S)
        Images scaled to [-1, 1], all of one spatial size.
    regions : int
        K.
    params : IEMParams
    init : Tensor (B, *S) of int, optional
        Starting labels; default from ``params.init``.
    locked : Tensor (B, *S) of bool, optional
        Pixels that keep their ``init`` label.

    Returns (as the generator's value) the final :class:`OptimState`.
    """
    batch, shape = x.shape[0], tuple(x.shape[2:])
    x = with_texture(x, params.texture)  # one more channel for the inpainter, if asked
    objective = IEMObjective(x, regions, params)
    if init is not None:
        labels = init.to(device=x.device, dtype=torch.int64, copy=True)  # one copy
    elif params.init == "square" and regions == 2:
        labels = square_init(shape, batch, x.device)
    elif params.init in ("square", "kmeans"):
        labels = kmeans_init(x, regions, objective)
    else:
        raise ValueError(f"init must be 'square' or 'kmeans', got {params.init!r}")
    if locked is not None:
        locked = locked.to(device=x.device, dtype=torch.bool)
    border = _border(shape, x.device)
    state = OptimState(
        labels=labels,
        iteration=0,
        objective=torch.full((batch,), float("nan"), device=x.device),
        iterations=torch.zeros(batch, dtype=torch.int64),
        converged=torch.zeros(batch, dtype=torch.bool),
        period=torch.zeros(batch, dtype=torch.int64),
        history=[[] for _ in range(batch)],
    )
    active = torch.arange(batch, device=x.device)
    with torch.inference_mode():
        yield from _iterate(objective, labels, locked, border, active, state, regions, params)
    return state


def _iterate(objective, labels, locked, border, active, state, regions, params):
    """The iterations, with exact early stops.

    The update is deterministic, so once an image's labels repeat a state seen ``p``
    iterations earlier they cycle with period ``p`` for ever, and the labels after
    ``max_iter`` iterations are known: the stored state ``(max_iter - t) mod p`` steps
    into the cycle.  ``p = 1`` is a fixed point.  Oscillating contours are common (most
    photos that do not converge alternate between two masks), so this saves most of
    the iterations the reference spends, without changing its result.
    """
    batch, n = labels.shape[0], params.max_iter
    window = CYCLE_WINDOW if labels[0].numel() <= CYCLE_WINDOW_MAX_PIXELS else 1
    recent = [labels.to(torch.uint8)]  # recent[-p] is the state p iterations ago
    running = active.tolist()  # the same images as ``active``, on the host
    # where most pixels are locked, few move after the first iterations: evaluate near
    # them only, until a fixed point or cycle, which exact iterations then decide
    band = band_evaluator(objective, locked)
    for it in range(1, n + 1):
        everyone = len(running) == batch
        index = None if everyone else active
        current = labels if everyone else labels[active]
        lock = None if locked is None else (locked if everyone else locked[active])
        result = None if band is None or it == 1 else band.evaluate(current, index)
        approximate = result is not None
        if approximate:
            j, gains = result
        elif band is not None:
            j, gains, parts = objective.evaluate(current, index, keep=band.tile)
            band.start(current, gains, parts, index)
            del parts
        else:
            j, gains = objective.evaluate(current, index)
        new = flip_step(current, gains, regions, border, lock)
        new = smooth(new, regions, params.smooth_threshold, lock, params.smooth_border)
        if everyone:  # a plain copy, not an indexed write of every image
            labels.copy_(new)
        else:
            labels[active] = new.to(labels.dtype)
        state.objective[active] = j
        new8 = new.to(torch.uint8)
        period = torch.zeros(len(running), dtype=torch.int64, device=labels.device)
        for p in range(min(window, len(recent)), 0, -1):  # smallest period wins
            past = recent[-p] if everyone else recent[-p][active]
            same = (past ^ new8).flatten(1).amax(1) == 0  # 3.7x faster than == .all
            period = torch.where(same, p, period)
        # the one wait for the device per iteration, one transfer: what follows decides
        # on the host (float64 holds the float32 objectives and the periods exactly)
        both = torch.cat([j.to(torch.float64), period.to(torch.float64)]).tolist()
        values, periods = both[: len(running)], [int(p) for p in both[len(running):]]
        # a state repeated since the band evaluation began: exact iterations decide it
        # (a state an exact iteration reproduces is a fixed point however it was reached)
        restart = band is not None and any(p > (0 if approximate else 1) for p in periods)
        if restart:
            band, periods = None, [0] * len(running)
        state.iterations[running] += 1
        for b, value in zip(running, values):
            state.history[b].append(value)
        for b, p in zip(running, periods):
            if p:
                if (n - it) % p:
                    labels[b] = recent[-p + (n - it) % p][b]
                state.period[b], state.converged[b] = p, p == 1
        if any(periods):
            running = [b for b, p in zip(running, periods) if not p]
            active = torch.tensor(running, dtype=torch.int64, device=labels.device)
        # unless an image was set into its cycle above, the labels are ``new``
        snapshot = new8 if everyone and not any(periods) else labels.to(torch.uint8)
        # exact iterations compare only with states they made themselves
        recent = [snapshot] if restart else (recent + [snapshot])[-max(window, 1):]
        state.iteration = it
        yield state
        if not running:
            break
