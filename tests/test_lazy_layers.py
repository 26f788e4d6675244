"""Lazy and multiscale Image layers: a run reads only what it needs, once, and a
multiscale run reads the pyramid level nearest the working size (pytest-xvfb)."""
from collections import Counter

import numpy as np
import pytest

from synthetic import textured_disc

da = pytest.importorskip("dask.array")
pytestmark = pytest.mark.gui
TIMEOUT_MS = 60_000


def counted(array: np.ndarray, chunks, reads: Counter, name=None):
    """``array`` as a dask array whose every chunk counts its reads in ``reads``
    (keyed by chunk location, or by ``(name, location)``)."""
    def read(block, block_info=None):
        where = tuple(block_info[0]["chunk-location"])
        reads[where if name is None else (name, where)] += 1
        return block

    return da.from_array(array, chunks=chunks).map_blocks(read, dtype=array.dtype)


def movie(frames=20, size=48):
    return np.stack([textured_disc(size, seed=s)[0] for s in range(frames)])


def run(qtbot, widget):
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)


def test_current_slice_reads_the_displayed_chunk_only(viewer_widget, qtbot, errors):
    viewer, widget = viewer_widget
    reads = Counter()
    viewer.add_image(counted(movie(), (1, 48, 48), reads), name="lazy",
                     contrast_limits=(0, 255))
    viewer.dims.set_point(0, 7)
    qtbot.wait(50)
    reads.clear()  # what napari read to show it
    run(qtbot, widget)
    assert errors == []
    assert set(reads) == {(7, 0, 0)}  # one chunk of 20: the displayed plane
    out = viewer.layers["lazy IEM"]
    assert out.data.shape == (20, 48, 48) and out.data[7].any() and not out.data[6].any()


def reads_of_the_run(monkeypatch, reads: Counter, group=None) -> list:
    """``reads`` (grouped by ``group``) when the run's worker starts (what planning
    read) and when it ends, apart from what napari reads to show the layers."""
    from napari_iem._napari import widget as _widget

    seen, real_job = [], _widget._engine_job

    def job(plan):
        seen.append(Counter(reads) if group is None else group(reads))
        result = yield from real_job(plan)
        seen.append(Counter(reads) if group is None else group(reads))
        return result

    monkeypatch.setattr(_widget, "_engine_job", job)
    return seen


def test_every_slice_reads_each_chunk_once(viewer_widget, qtbot, errors, monkeypatch):
    viewer, widget = viewer_widget
    reads = Counter()
    viewer.add_image(counted(movie(), (1, 48, 48), reads), name="lazy",
                     contrast_limits=(0, 255))
    widget.mode.value = "every slice"
    qtbot.wait(50)
    seen = reads_of_the_run(monkeypatch, reads)
    reads.clear()  # what napari read to show it
    run(qtbot, widget)
    assert errors == []
    planned, ended = seen
    assert len(planned) == 20 and set(planned.values()) == {1}  # each chunk, once
    assert ended == planned  # and nothing again while it ran
    assert viewer.layers["lazy IEM"].data.shape == (20, 48, 48)


def pyramid(reads: Counter, size=768):
    """Three levels (size, size/2, size/4) of a small disc in one corner, so that its
    boundary lies in one refinement tile (256 px) of level 0; each level counts the
    reads of its 64-px chunks."""
    image, truth = textured_disc(size, radius=size // 12, centre=(size // 6, size // 6),
                                 seed=3)
    levels = [image, image[::2, ::2], image[::4, ::4]]
    return [counted(level, 64, reads, name=i) for i, level in enumerate(levels)], truth


def level_reads(reads: Counter) -> Counter:
    out = Counter()
    for (level, _), n in reads.items():
        out[level] += n
    return out


@pytest.mark.parametrize("refine", [False, True])
def test_multiscale_runs_on_the_nearest_level_and_lines_up(viewer_widget, qtbot, errors,
                                                           monkeypatch, refine):
    from synthetic import iou

    viewer, widget = viewer_widget
    reads = Counter()
    levels, truth = pyramid(reads)
    source = viewer.add_image(levels, multiscale=True, name="pyr", contrast_limits=(0, 255),
                              scale=(0.5, 0.5), translate=(10, 20))
    widget.controls["max_size"].value = 150  # level 2 (192 px): the smallest >= 150
    widget.controls["refine"].value = refine
    widget.controls["preset"].value = "microscopy"
    qtbot.wait(50)
    seen = reads_of_the_run(monkeypatch, reads, group=level_reads)
    reads.clear()
    run(qtbot, widget)
    assert errors == []
    before, after = seen
    assert before[2] == 9 and before[1] == 0 and before[0] == 0  # level 2, once
    during = after - before
    assert during[1] == during[2] == 0
    if refine:  # only the chunks of the one tile with boundary (and its halo)
        assert 0 < during[0] <= 25
    else:
        assert during[0] == 0
    out = viewer.layers["pyr IEM"]
    assert out.data.shape == (768, 768)  # level 0's
    np.testing.assert_allclose(out.scale, source.scale)  # lines up in world coordinates
    np.testing.assert_allclose(out.translate, source.translate)
    labels = np.asarray(out.data)
    score = max(iou(labels == 1, truth), iou(labels == 0, truth))
    assert score > (0.97 if refine else 0.85)
    assert out.metadata["iem"]["working_shape"] == [150, 150]


def run_lazy(viewer_widget, qtbot, monkeypatch):
    """A run on the pyramid whose labels are taken as too large for memory (lazy)."""
    from napari_iem._napari import pyramid as _pyramid

    viewer, widget = viewer_widget
    levels, _ = pyramid(Counter())
    viewer.add_image(levels, multiscale=True, name="pyr", contrast_limits=(0, 255))
    widget.controls["max_size"].value = 150
    widget.controls["preset"].value = "microscopy"
    monkeypatch.setattr(_pyramid, "fits_in_memory", lambda shape, dtype: False)
    run(qtbot, widget)
    return viewer, widget


def test_labels_too_large_for_memory_come_as_a_lazy_layer(viewer_widget, qtbot, errors,
                                                           monkeypatch):
    from napari_iem.engine.preprocess import resize_labels

    viewer, widget = run_lazy(viewer_widget, qtbot, monkeypatch)
    assert errors == []
    out = viewer.layers["pyr IEM"]
    assert isinstance(out.data, da.Array) and out.data.shape == (768, 768)
    coarse = np.asarray(out.data[::4, ::4])  # blocks filled when read
    level2 = resize_labels(np.asarray(out.data), (192, 192))
    np.testing.assert_array_equal(coarse, level2)
    assert coarse.any() and out.metadata["iem"]["source"] == "pyr"


def test_lazy_labels_flip_lazily_and_are_not_refined(viewer_widget, qtbot, errors,
                                                     monkeypatch):
    """Labels too large for memory stay lazy: Flip flips them block by block, and
    Refine (which needs them in memory, painted) says so and changes nothing (it read
    them whole, and wrote a new layer)."""
    viewer, widget = run_lazy(viewer_widget, qtbot, monkeypatch)
    out = viewer.layers["pyr IEM"]
    before = np.asarray(out.data[::8, ::8])
    widget.flip_button.click()
    assert errors == [] and isinstance(out.data, da.Array)
    np.testing.assert_array_equal(np.asarray(out.data[::8, ::8]), 1 - before)
    widget.flip_button.click()  # and back
    np.testing.assert_array_equal(np.asarray(out.data[::8, ::8]), before)
    widget.refine_button.click()
    assert not widget.running and len(errors) == 1 and "memory" in widget.status.text()
    assert [layer.name for layer in viewer.layers] == ["pyr", "pyr IEM"]
