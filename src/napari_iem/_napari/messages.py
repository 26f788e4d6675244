"""What the widget tells the user: notification texts and status lines.

Notifications (toasts) stay short, a line or two that says what to do; the facts of a
run go to the widget's status line, which wraps.
"""
from __future__ import annotations

import re


def explain(exc: BaseException, device: str) -> str:
    """A notification text for an engine error that says what to do, in the widget's
    words (the engine's are the API's: ``max_size=512`` is *'max size (px)' 512*)."""
    from ..engine.memory import NotEnoughMemoryError

    if isinstance(exc, NotEnoughMemoryError):  # "IEM on ... needs about ..."
        return widget_wording(str(exc))
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return f"IEM ran out of memory on {device}: lower max size or choose another device."
    if isinstance(exc, ValueError):
        return f"IEM could not run: {widget_wording(str(exc))}"
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
    empty = no_structure(result)
    if empty:
        parts.append(empty)
    picked = plan.picked
    parts.append(f"preset '{result.params.get('preset')}'" + (
        f" (default's pick: {picked['why']})" if picked and picked["why"] else ""))
    return "; ".join(parts)


def no_structure(result) -> str:
    """What the status says of planes left empty by the "nothing here" test, or ""."""
    empty, problems = result.empty_problems, result.metadata.get("problems", 1)
    if not empty:
        return ""
    if problems == 1:
        return ("no structure found: no region differs from what IEM finds in noise, "
                "so the labels are all background")
    shown = ", ".join(str(list(i)) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
    return (f"no structure found in {len(empty)} of {problems} (left all background: "
            f"{shown})")


def folder_summary(report, cancelled: bool) -> str:
    """The status line after a folder run: the counts, and for files refused or failed
    what to do and where their reasons are (the widget has no overwrite: what a
    rerun may not replace needs another output folder)."""
    head = "folder run" + (" cancelled (run it again to resume)" if cancelled else "")
    text = (f"{head}: {report.done} done, {report.skipped} skipped, {report.failed} "
            f"failed")
    if report.refused:
        text += (f", {report.refused} refused (labels of other settings or files are in "
                 "the way: choose another output folder)")
    text += f"; labels in {report.out_dir}"
    if (report.refused or report.failed) and report.report_path is not None:
        text += f"; the reasons are in {report.report_path}"
    return text


def _controls() -> dict[str, tuple[str, dict]]:
    """API keyword -> (the widget's control for it, its values in the control's words):
    the knobs' controls from the knob table, and the widget's own for mode and maps."""
    from ..engine.knobs import KNOBS
    from .layers_nd import MODES

    on_off = {"True": "on", "False": "off"}
    controls = {k.name: (k.display, on_off if k.type is bool else {})
                for k in KNOBS if k.widget}
    controls["mode"] = ("mode", {v: k for k, v in MODES.items()})
    controls["maps"] = ("show why", on_off)
    return controls


def widget_wording(text: str) -> str:
    """``text`` (an engine message in the API's keywords, or a batch runner's in the
    command line's flags) as the widget says it: its controls by their labels, and the
    output folder it asked for, where its user never typed ``--out``.

    Examples
    --------
    >>> widget_wording("pick a different output folder (--out)")
    'pick a different output folder'
    >>> widget_wording("wait for it to finish, or choose another --out")
    'wait for it to finish, or choose another output folder'
    >>> widget_wording("use max_size=512 and refine=True, or mode='slices'")
    "use 'max size (px)' 512 and 'refine edges at full size' on, or 'mode' every slice"
    """
    def say(match: re.Match, label: str, values: dict) -> str:
        value = next(g for g in match.groups() if g is not None)
        return f"'{label}' {values.get(value, value)}"

    text = re.sub(r"\s*\(--out\)", "", text)
    text = re.sub(r"(?<![\w-])--out(?![\w-])", "output folder", text)
    for name, (label, values) in _controls().items():
        pattern = r"(?<![\w\-/.])" + name + r"""=(?:'([^']*)'|"([^"]*)"|([^\s,;)'"]+))"""
        text = re.sub(pattern, lambda m, lab=label, v=values: say(m, lab, v), text)
    return text


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
