"""Progress in every phase, with a total known up front, and a cancel that holds in each:
the library's snapshots (refining, maps, finishing, instances) and the widget's Cancel
during refinement (pytest-xvfb for the widget)."""
import threading

import numpy as np
import pytest

from napari_iem import iter_segment

from synthetic import textured_disc

FAST = {"max_iter": 20, "device": "cpu"}


def drain(gen):
    """Every snapshot of ``gen`` and its result."""
    seen = []
    while True:
        try:
            seen.append(next(gen))
        except StopIteration as stop:
            return seen, stop.value


def test_refine_yields_refining_and_maps_and_ends_on_its_total():
    image, _ = textured_disc(300, seed=2)  # 2x2 tiles of 256 at full size
    seen, result = drain(iter_segment(image, 2, max_size=64, refine=True,
                                      instances=True, **FAST))
    phases = [p.phase for p in seen]
    assert phases.index("refining") < phases.index("maps") < phases.index("finishing")
    assert phases[-1] == "instances"
    refining = [p.part for p in seen if p.phase == "refining"]
    assert refining[-1][0] == refining[-1][1] == result.metadata["refine"]["tiles_total"]
    assert len({p.steps for p in seen}) == 1  # the total is known at the first snapshot
    steps = [p.step for p in seen]
    assert steps == sorted(steps) and steps[-1] == seen[0].steps


def test_a_stack_ends_exactly_on_the_total_known_up_front():
    stack = np.stack([textured_disc(32, seed=s)[0] for s in range(3)])
    seen, result = drain(iter_segment(stack, 2, mode="slices", **FAST))
    assert result.iterations < FAST["max_iter"]  # so stopping early is skipped over
    assert len({p.steps for p in seen}) == 1
    assert seen[-1].step == seen[-1].steps
    assert [p.phase for p in seen].count("finishing") == 3


def test_closing_during_refinement_stops_there():
    image, _ = textured_disc(300, seed=2)
    gen = iter_segment(image, 2, max_size=64, refine=True, **FAST)
    phases = []
    for snapshot in gen:
        phases.append(snapshot.phase)
        if snapshot.phase == "refining":
            gen.close()
            break
    assert "maps" not in phases and "finishing" not in phases


@pytest.mark.gui
def test_cancel_during_refinement_leaves_no_layer(viewer_widget, qtbot, monkeypatch):
    from napari_iem._napari import widget as _widget

    ran, cancelled = [], threading.Event()

    def engine(*args, **kwargs):  # the real engine, held after refining until Cancel
        gen = iter_segment(*args, **kwargs)
        while True:
            try:
                snapshot = next(gen)
            except StopIteration as stop:
                return stop.value
            ran.append(snapshot.phase)
            yield snapshot
            if snapshot.phase == "refining":
                cancelled.wait(60)  # as a long refinement: the GUI thread cancels it

    monkeypatch.setattr(_widget, "iter_segment", engine)
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(300, seed=2)[0], name="disc")
    widget.controls["max_size"].value = 64
    widget.controls["refine"].value = True
    widget.show_why.value = True  # maps too: a phase the cancel must cut off
    descriptions = []

    def cancel_on_refining(snapshot):
        if snapshot.phase == "refining" and widget.run_button.text() == "Cancel":
            widget.run_button.click()
            cancelled.set()

    widget.run_button.click()
    widget._progress.bar.events.description.connect(lambda e: descriptions.append(e.value))
    widget.worker.yielded.connect(cancel_on_refining)
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert any("refining" in d for d in descriptions)  # the phase, on the dock's bar
    assert "finishing" not in ran  # the engine stopped during refinement
    assert [layer.name for layer in viewer.layers] == ["disc"]
    assert widget.status.text() == "cancelled: nothing was changed"


def snap(phase, step, steps=10):
    """An engine snapshot as the widget reads it."""
    from types import SimpleNamespace

    return SimpleNamespace(phase=phase, step=step, steps=steps, part=None, objective=0.5)


@pytest.mark.gui
def test_redraws_are_throttled_but_every_phase_and_the_end_are_drawn(monkeypatch, qapp):
    from napari_iem._napari import progress

    monkeypatch.setattr(progress, "BAR_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 3600.0)
    run = progress.RunProgress("disc")
    drawn = [run.show(snap("optimising", 1)), run.show(snap("optimising", 2)),
             run.show(snap("maps", 8)), run.show(snap("finishing", 9)),
             run.show(snap("finishing", 10))]
    assert [text is not None for text in drawn] == [True, False, True, True, True]
    assert run.iterations == 2  # every iteration counted, drawn or not
    assert run.bar.n == run.bar.total == 10
    run.close()


@pytest.mark.gui
def test_a_run_shorter_than_the_delay_gets_no_bar(monkeypatch, qapp):
    from napari_iem._napari import progress

    monkeypatch.setattr(progress, "BAR_DELAY_SECONDS", 3600.0)
    run = progress.RunProgress("disc")
    assert run.show(snap("optimising", 1)) is None and run.show(snap("finishing", 10)) is None
    assert run.bar is None and not run.canceled and run.iterations == 1
    run.close()  # nothing to take out of the dock
