"""The widget's controls: derived from the knob table, shown when they apply, set from
settings files all or nothing, remembered between sessions (pytest-xvfb)."""
import numpy as np
import pytest
from synthetic import textured_disc

from napari_iem._napari import form as _form
from napari_iem._napari.messages import TOAST_CHARS
from napari_iem._napari.widget import IEMWidget
from napari_iem.engine.knobs import KNOBS
from napari_iem.engine.presets import PRESET_ALIASES, PRESETS

pytestmark = pytest.mark.gui
TIMEOUT_MS = 60_000


def test_every_widget_knob_has_a_control_with_the_knobs_range(viewer_widget):
    _, widget = viewer_widget
    shown = {k.name for k in KNOBS if k.widget}
    assert set(widget.controls) == shown
    for knob in KNOBS:
        if not knob.widget:
            continue
        control = widget.controls[knob.name]
        assert control.label == knob.display
        said = _form._tooltip(knob)  # an optional knob's None said as its 0
        assert said in control.tooltip and knob.allowed().split(" or ")[0] in said
        if not knob.optional:
            assert knob.help in said and knob.allowed() in said
        if knob.choices:
            assert tuple(control.choices) == tuple(
                c for c in knob.choices if c not in PRESET_ALIASES)
        elif knob.type in (int, float):
            low = 0 if knob.optional else knob.low  # 0 is max size's "full size"
            high = min(knob.high, _form.QT_INT_MAX) if knob.type is int else knob.high
            assert (control.min, control.max) == (low, high), knob.name
            if knob.high > high:
                assert str(_form.QT_INT_MAX) in control.tooltip  # says why it is less


def test_the_advanced_tooltip_lists_the_knobs_a_settings_file_sets(viewer_widget):
    """It listed mode, sigma_units, flip and maps too, as 'set by the preset or by a
    loaded settings file': the widget has controls for them (mode, sigma in layer
    units, Flip, show why) and a settings file holds none of them."""
    _, widget = viewer_widget
    listed = widget.advanced.toolTip().split("(", 1)[1].split(")", 1)[0].split(", ")
    assert listed == [k.name for k in KNOBS if not k.widget and k.kind == "param"]


def test_tooltips_say_the_controls_zero_not_pythons_none(viewer_widget):
    """'max size (px)' said "None: the image's own size" and "or none": the spin box
    has no None, its 0 stands for it."""
    _, widget = viewer_widget
    tip = widget.controls["max_size"].tooltip
    assert "None" not in tip and "0: the image's own size" in tip and "or 0" in tip


def test_options_are_keyed_by_knob_name(viewer_widget):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(32)[0], name="disc")
    widget.controls["max_size"].value = 0
    options = widget.form.options()
    assert set(widget.controls) <= set(options)
    assert options["max_size"] is None and options["preset"] == "microscopy"


def test_controls_shown_match_the_layer_type(viewer_widget):
    viewer, widget = viewer_widget
    shown = widget.form.shown
    grey = viewer.add_image(textured_disc(32)[0], name="grey")
    assert not {"mode", "channel axis", "more channels", "sigma in layer units"} & shown()
    assert "show why" in shown()
    rgb = viewer.add_image(textured_disc(32, rgb=True)[0], name="rgb")
    widget.image.value = rgb
    assert not {"mode", "channel axis", "more channels"} & shown()
    stack = viewer.add_image(np.zeros((3, 32, 32), np.float32), name="stack",
                             scale=(4, 1, 1))
    widget.image.value = stack
    assert {"mode", "channel axis", "sigma in layer units"} <= shown()
    assert "more channels" not in shown()  # no other grey layer of its shape
    widget.mode.value = "every slice"
    assert "show why" not in shown()  # whole stacks: labels only
    widget.image.value = grey
    assert "mode" not in shown() and widget.mode.value == "current slice"
    viewer.add_image(textured_disc(32)[0], name="second channel")
    assert "more channels" in shown()


def test_load_settings_changes_nothing_unless_all_fit(viewer_widget, tmp_path, errors):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(32)[0], name="disc")
    before = {name: c.value for name, c in widget.controls.items()}
    # valid for the engine and the CLI, beyond what a Qt spin box holds
    big = tmp_path / "big.toml"
    big.write_text("regions = 3\n[params]\nsigma = 3.0\nmin_piece_size = 34359738368\n")
    widget.load_settings(str(big))
    assert len(errors) == 1 and "min_piece_size" in widget.status.text()
    bad = tmp_path / "bad.toml"
    bad.write_text("regions = 3\n[params]\nsigma = 3.0\nmax_iter = 0\n")
    widget.load_settings(str(bad))
    assert len(errors) == 2 and "max_iter" in widget.status.text()
    assert all(len(e) <= TOAST_CHARS for e in errors)  # the details are in the panel
    assert {name: c.value for name, c in widget.controls.items()} == before


def test_hidden_knobs_come_from_a_settings_file(viewer_widget, tmp_path):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(32)[0], name="disc")
    path = tmp_path / "s.toml"
    path.write_text("preset = 'paper'\n[params]\nkernel_size = 7\nsigma = 3.0\n")
    widget.load_settings(str(path))
    assert widget.form.options()["kernel_size"] == 7
    assert widget.settings()["params"]["kernel_size"] == 7
    widget.reset_button.click()  # back to the preset, the file's knobs forgotten
    assert "kernel_size" not in widget.form.options()
    assert widget.controls["sigma"].value == PRESETS["paper"].sigma


def test_settings_are_remembered_between_sessions(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(textured_disc(32)[0], name="disc")
    widget = IEMWidget(viewer)
    widget.controls["regions"].value = 3
    widget.controls["max_iter"].value = 12
    widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)
    later = IEMWidget(make_napari_viewer())  # a new session
    assert later.controls["regions"].value == 3
    assert later.controls["max_iter"].value == 12


def test_working_size_starts_per_mode_and_a_users_value_stays(viewer_widget):
    """A plane starts at 1024 px, a volume at 256 (one 3-D problem at 1024 would take
    minutes); a size the user typed is kept whatever the mode."""
    viewer, widget = viewer_widget
    viewer.add_image(np.zeros((4, 32, 32), np.float32), name="stack")
    size, mode = widget.controls["max_size"], widget.mode
    assert size.value == _form.START_MAX_SIZE == 1024
    mode.value = "volume"
    assert size.value == _form.VOLUME_START_MAX_SIZE == 256
    mode.value = "every slice"
    assert size.value == 1024
    size.value = 512
    mode.value = "volume"
    assert size.value == 512
    widget.form.reset_to_preset()
    assert size.value == 256
