"""What the widget tells the user: notification texts and status lines.

Notifications (toasts) stay short, a line or two that says what to do; the facts of a
run go to the widget's status line, which wraps.
"""
from __future__ import annotations


def explain(exc: BaseException, device: str) -> str:
    """A notification text for an engine error that says what to do."""
    from ..engine.memory import NotEnoughMemoryError

    if isinstance(exc, NotEnoughMemoryError):
        return f"IEM: {exc}"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return f"IEM ran out of memory on {device}: lower max size or choose another device."
    if isinstance(exc, ValueError):
        return f"IEM could not run: {exc}"
    return f"IEM failed ({type(exc).__name__}: {exc}); see the console for details."


def run_summary(plan, target, result, iterations: int) -> str:
    """The status line after a run: what, how much work, whether it converged, and
    which preset (and why, when default picked it).

    ``iterations`` are the optimiser steps the widget counted (for a stack, the steps
    of every batch of planes), the same number its progress bar ends on.
    """
    where = f" (plane {list(plan.index)})" if plan.index else ""
    unit = {"every slice": "plane", "volume": "volume"}.get(plan.mode)
    problems = result.metadata.get("problems", 1)
    count = f"{problems} {unit}{'s' * (problems != 1)}, " if unit else ""
    parts = [f"'{target.name}'{where}: " + count
             + f"{iterations} iterations in {result.seconds:.1f} s on {result.device}"]
    if result.converged:
        parts.append("converged")
    elif result.stopped_at_cap:
        parts.append(f"stopped at {result.iterations} iterations without converging: "
                     "raise max iterations or lower max size")
    else:  # an exact cycle: more iterations would give the same labels
        parts.append("ended in a cycle (a few boundary pixels alternate; more iterations "
                     "would not change the labels)")
    picked = plan.picked
    parts.append(f"preset '{result.params.get('preset')}'" + (
        f" (default's pick: {picked['why']})" if picked and picked["why"] else ""))
    return "; ".join(parts)


def folder_summary(report, cancelled: bool) -> str:
    """The status line after a folder run."""
    head = "folder run" + (" cancelled (run it again to resume)" if cancelled else "")
    return (f"{head}: {report.done} done, {report.skipped} skipped, {report.failed} "
            f"failed; labels in {report.out_dir}")


#: What a napari notification shows on its one folded line (400 px): longer texts are
#: cut there, so the toast gets a headline and the widget's status line the whole text.
TOAST_CHARS = 60


def headline(text: str) -> str:
    """``text`` if it fits a folded toast, else its start cut at a word, pointing to
    the status line for the rest."""
    if len(text) <= TOAST_CHARS:
        return text
    more = "… (see panel)"
    return text[:TOAST_CHARS - len(more)].rsplit(" ", 1)[0] + more


def tell(show, text: str, status) -> None:
    """Notify with ``show`` (napari's show_error, show_warning, show_info) in a toast
    that fits, and put the whole ``text`` on the ``status`` line (a QLabel)."""
    status.setText(text)
    show(headline(text))
