"""What a run gives back: progress snapshots while it runs, one result at the end."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["IEMProgress", "IEMResult", "Meter"]


class IEMProgress:
    """A snapshot yielded by :func:`iter_segment` after every step of a run.

    ``phase`` says which step: ``"optimising"`` after an iteration of the optimiser;
    ``"refining"`` after a batch of full-size refinement tiles (``part`` is
    ``(tiles_done, tiles_total)`` of the problem); ``"maps"`` once a problem's
    inpaintings and error map are made; ``"finishing"`` once a problem (an image, a
    plane, a volume) is finished; ``"instances"`` after splitting a problem's
    foreground into objects (``part``: problems split, of all).  After each of them a
    caller may stop the run by closing the generator.

    ``step`` of ``steps`` measures the whole run in units known before any work (every
    batch's iteration budget over all pyramid levels, each problem's refinement
    tiles, maps and finish, the instance splits): a batch that stops early, or a
    problem with no boundary to refine, skips the rest of its share, so one bar set
    to ``steps`` at the start ends exactly there.  ``iteration`` and
    ``max_iterations`` are the optimiser's own count and bound.

    ``labels`` (at full input size, the final labels' dtype) is built only when read:
    a GUI that previews every few iterations does not pay for the others.
    """

    def __init__(self, iteration: int, max_iterations: int, objective: float, labels,
                 phase: str = "optimising", *, step: int | None = None,
                 steps: int | None = None, part: tuple[int, int] | None = None):
        self.phase = phase
        self.iteration = iteration
        self.max_iterations = max_iterations
        self.objective = objective
        self.step = iteration if step is None else step
        self.steps = max_iterations if steps is None else steps
        self.part = part
        self._labels = labels  # an array, or a function that makes it

    @property
    def labels(self) -> np.ndarray:
        if callable(self._labels):
            self._labels = self._labels()
        return self._labels

    def __repr__(self) -> str:
        part = "" if self.part is None else f", part={self.part[0]}/{self.part[1]}"
        return (f"IEMProgress({self.phase}, step={self.step}/{self.steps}, "
                f"iteration={self.iteration}/{self.max_iterations}, "
                f"objective={self.objective:.4g}{part})")


class Meter:
    """Where a run stands in its ``steps``, and the snapshots that say so.

    The pipeline fixes ``steps`` from the plan before any work, and each part of the
    run moves ``step`` within its own share (:meth:`within`) and to the share's end
    when it is done (:meth:`reach`), so that the count never runs past ``steps`` and
    ends on it, whatever stopped early.
    """

    def __init__(self, steps: int):
        self.steps, self.step = int(steps), 0
        self.iteration, self.max_iterations = 0, 0

    def within(self, start: int, share: int, done: int, of: int) -> None:
        """``done`` of ``of`` units of a share of ``share`` steps from ``start``."""
        self.step = max(self.step, start + share * min(done, of) // max(of, 1))

    def reach(self, step: int) -> None:
        """The end of a share: ``step`` (never backwards)."""
        self.step = max(self.step, step)

    def snapshot(self, phase: str, labels, objective: float = float("nan"),
                 part: tuple[int, int] | None = None) -> IEMProgress:
        return IEMProgress(self.iteration, self.max_iterations, objective, labels, phase,
                           step=self.step, steps=self.steps, part=part)


@dataclass
class IEMResult:
    """Everything a run produced, as numpy arrays at the input's spatial size.

    Attributes
    ----------
    labels : ndarray of uint8 (uint16 for more than 255 regions), shape (H, W)
        0 is background, 1..K-1 the other regions.
    masks : ndarray of bool, shape (K, H, W)
        ``masks[k] == (labels == k)``.
    inpainted : ndarray of float32, shape (K, H, W) or (K, H, W, C)
        ``inpainted[k]`` is the image predicted for region k from all the other regions,
        in the input's intensity units (channels last, as the input).
    error : ndarray of float32, shape (H, W)
        Per-pixel inpainting error of each pixel's own region (mean absolute difference
        over channels, on the [-1, 1] working scale).
    objective : list of float
        The IEM objective J before each iteration (it is maximised).
    iterations : int
        Iterations run.
    converged : bool
        True when the labels reached a fixed point before ``max_iter``.
    stopped_at_cap : bool
        True when the run used all ``max_iter`` iterations without reaching a fixed
        point or an exact cycle, so that more iterations (or a smaller working size)
        could still move its labels.  A run that neither converged nor stopped at the
        cap ended in a cycle: a few boundary pixels alternate for ever, and its labels
        are the ones the cap would give.
    params : dict
        The parameters used (preset plus overrides), with ``preset`` and ``regions``.
    device : str
        The torch device the work ran on.
    seconds : float
        Wall-clock seconds of the whole call.
    metadata : dict
        Extra facts: for n-D calls (see :mod:`napari_iem.engine.layout`) the layout, sigma per
        axis, refinement; ``start``, the start the run grew from (``"labels"``: the
        caller's ``init``); ``device_fallback`` when a GPU ran out of memory and the run
        was repeated on the CPU.
    structure_found : bool
        False when the partition was tested (``check_structure``) and no region
        differs from what the optimisation finds in noise, on every plane: the labels
        are then all background ("no structure found").  Per plane in
        ``metadata["structure"]``; the planes left empty so in :attr:`empty_problems`.
    instances : ndarray of int32 or None
        With ``instances=True``: one label per object of the foreground (0 background),
        see :func:`napari_iem.analysis.instances.split_instances`.

    For stacks (``mode="slices"`` or ``"volume"`` with leading axes) every array has the
    input's shape minus the channel axis (``masks`` and ``inpainted`` with K first),
    ``objective`` holds the final J of each slice or volume, ``iterations`` the largest
    count, ``converged`` is True when all converged and ``stopped_at_cap`` when any
    stopped there.  With ``maps=False``, ``inpainted`` and ``error`` are None.
    """

    labels: np.ndarray
    masks: np.ndarray
    inpainted: np.ndarray
    error: np.ndarray
    objective: list[float]
    iterations: int
    converged: bool
    params: dict
    device: str
    seconds: float
    metadata: dict = field(default_factory=dict)
    instances: np.ndarray | None = None
    structure_found: bool = True
    stopped_at_cap: bool = False

    @property
    def regions(self) -> int:
        return self.masks.shape[0]

    @property
    def empty_problems(self) -> list[tuple[int, ...]]:
        """The planes (or volumes) called "no structure found", whose labels are all
        background: indices on the leading axes, ``()`` for a single image."""
        return [tuple(s["index"]) for s in self.metadata.get("structure", ())
                if not s["found"]]

    def flipped(self) -> "IEMResult":
        """The same result with foreground and background swapped (K=2 only)."""
        if self.regions != 2:
            raise ValueError("flip swaps foreground and background; it needs regions=2")
        return replace(
            self,
            labels=(1 - self.labels).astype(self.labels.dtype),
            masks=self.masks[::-1].copy(),
            inpainted=None if self.inpainted is None else self.inpainted[::-1].copy(),
        )
