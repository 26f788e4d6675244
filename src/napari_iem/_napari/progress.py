"""A run's progress in napari's activity dock: one bar, its phase named, its Cancel.

The engine measures a run in steps whose total it knows before any work
(:class:`~napari_iem.engine.result.IEMProgress`: ``step`` of ``steps``), so the bar is
set to that total by the first snapshot and ends exactly on it, for one image or a
whole stack, whatever stopped early.  A run shorter than :data:`BAR_DELAY_SECONDS`
gets no bar at all, and redraws are throttled (:data:`REDRAW_SECONDS`): drawing must
not slow the run it shows.  The bar's description names the phase
(optimising, refining edges with its tiles, maps, instances) and the widget's status
line says the same in words; the widget keeps no bar of its own, so that there is one
place to watch and one Cancel (the dock's, or the widget's Run button turned Cancel).
No engine calls here.
"""
from __future__ import annotations

import time

from napari.utils import cancelable_progress

#: Seconds between two redraws of the bar and the status line within one phase.  The
#: engine snapshots every iteration (a few milliseconds on a small image) and a redraw
#: costs the main thread, and the interpreter lock the engine's thread needs, more
#: than that: redrawn every snapshot, a widget run took 2.6 times the library call
#: (``benchmarks/widget_vs_library.py``).  A phase's first and the run's last
#: snapshot are always drawn, so the bar still ends exactly on its total.
REDRAW_SECONDS = 0.2
#: Seconds a run goes before its bar appears.  While any bar exists napari animates
#: its "in progress" indicator, and every frame of it repaints the window (under a
#: software OpenGL such as Xvfb's, as much CPU as the engine's own thread gets): a
#: run that ends sooner needs no bar, and its status line says it started.
BAR_DELAY_SECONDS = 1.0

#: How each engine phase is named on the bar and the status line.
PHASES = {
    "optimising": "optimising",
    "refining": "refining edges at full size",
    "maps": "inpainting maps",
    "finishing": "finishing",
    "instances": "splitting instances",
}


def phase_text(snapshot) -> str:
    """The phase of ``snapshot`` in words, with its own count (tiles, problems)."""
    text = PHASES.get(snapshot.phase, snapshot.phase)
    if snapshot.part is not None:
        done, of = snapshot.part
        unit = " tiles" if snapshot.phase == "refining" else ""
        text += f" ({done}/{of}{unit})"
    return text


class RunProgress:
    """The activity-dock bar of one run, and the optimiser steps it saw.

    Parameters
    ----------
    name : str
        The source layer's name, the start of the bar's description.

    Attributes
    ----------
    iterations : int
        The ``"optimising"`` snapshots seen: the iterations the run took (for a
        stack, those of every batch of planes), which the status line reports.
    ended : bool
        True once the run returned or the bar closed.  napari's bar may process
        pending Qt events while it moves, the run's end among them, so the widget
        checks this before it draws anything for a snapshot.
    """

    def __init__(self, name: str):
        self.name = name
        self.iterations = 0
        self.ended = False  # the run returned, or the bar was closed
        self._phase, self._drawn = None, -float("inf")  # the last redraw
        self._started, self._making = time.monotonic(), False
        #: napari's bar, made by the first snapshot after BAR_DELAY_SECONDS (at once
        #: when that is 0: a busy bar, total 0, while the request is checked)
        self.bar = None if BAR_DELAY_SECONDS > 0 else \
            cancelable_progress(total=0, desc=f"IEM: {name}")

    @property
    def canceled(self) -> bool:
        """True once Cancel was pressed on the bar in the activity dock."""
        return self.bar is not None and self.bar.is_canceled

    def show(self, snapshot) -> str | None:
        """Move the bar to ``snapshot`` and return the status line for it, or None
        when the last redraw is too recent (:data:`REDRAW_SECONDS`): nothing to draw."""
        if snapshot.phase == "optimising":
            self.iterations += 1
        now = time.monotonic()
        if self.bar is None:
            if self._making or now - self._started < BAR_DELAY_SECONDS:
                return None
            self._making = True  # napari processes pending events while it makes a bar
            self.bar = cancelable_progress(total=snapshot.steps, desc=f"IEM: {self.name}")
        if (snapshot.phase == self._phase and snapshot.step < snapshot.steps
                and now - self._drawn < REDRAW_SECONDS):
            return None
        self._phase, self._drawn = snapshot.phase, now
        if self.bar.total != snapshot.steps:
            self.bar.total = snapshot.steps
        if snapshot.step != self.bar.n:
            self.bar.update(snapshot.step - self.bar.n)  # emits the dock's value event
        desc = f"IEM: {self.name}: {PHASES.get(snapshot.phase, snapshot.phase)}"
        if desc != self.bar.desc:
            self.bar.set_description(desc)
        if snapshot.phase == "optimising":
            return f"iteration {self.iterations}: objective {snapshot.objective:.5g}"
        return phase_text(snapshot) + "..."

    def close(self) -> None:
        """Take the bar out of the activity dock."""
        self.ended = True
        if self.bar is not None:
            self.bar.close()
