"""Memory: estimate, refuse clearly before starting, fall back from a GPU to the CPU."""
import warnings

import numpy as np
import pytest
import torch

from napari_iem import segment, segment_batch
from napari_iem.engine import memory, pipeline, request
from napari_iem.engine.memory import NotEnoughMemoryError, check_memory, estimate_bytes

from synthetic import textured_disc

seg = pipeline

FAST = {"max_iter": 10}


def test_estimate_grows_with_size_channels_regions_and_maps():
    base = estimate_bytes((512, 512), 1, 2)
    assert estimate_bytes((1024, 1024), 1, 2)["engine"] > 3 * base["engine"]
    assert estimate_bytes((512, 512), 3, 2)["engine"] > base["engine"]
    assert estimate_bytes((512, 512), 1, 4)["engine"] > base["engine"]
    assert estimate_bytes((512, 512), 1, 2, maps=False)["host"] < base["host"]
    small = estimate_bytes((4096, 4096), 1, 2, (512, 512))
    assert small["engine"] < estimate_bytes((4096, 4096), 1, 2)["engine"] / 30


def test_refusal_is_a_memory_and_value_error_that_says_what_to_do(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2**20)
    with pytest.raises(NotEnoughMemoryError, match="max_size") as info:
        check_memory(estimate_bytes((2048, 2048), 1, 2), "cpu")
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)
    assert "mode='slices'" in str(info.value)
    check_memory(estimate_bytes((16, 16), 1, 2), "cpu")  # tiny fits


def test_the_advice_is_in_the_apis_words_and_only_what_helps(monkeypatch):
    """It said "or lower 'max size' in the widget" to every face, and "pass maps=False"
    where the maps were not computed (a batch run's files get labels only)."""
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10 * 2**20)
    need = estimate_bytes((2048, 2048), 1, 2)
    with pytest.raises(NotEnoughMemoryError) as info:
        check_memory(need, "cpu")
    assert "in the widget" not in str(info.value) and "maps=False" in str(info.value)
    with pytest.raises(NotEnoughMemoryError) as info:
        check_memory(estimate_bytes((2048, 2048), 1, 2, maps=False), "cpu",
                     asked={"maps": False})
    assert "maps" not in str(info.value) and "max_size=512" in str(info.value)


def test_segment_refuses_before_any_work(monkeypatch):
    im, _ = textured_disc(48)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**16)
    started = []
    monkeypatch.setattr(pipeline, "available_bytes", lambda device: 2**16)
    monkeypatch.setattr(pipeline, "solve_levels", lambda *a, **k: started.append(1))
    monkeypatch.setattr(pipeline, "prepare_image", lambda *a, **k: started.append(1))
    with pytest.raises(NotEnoughMemoryError, match="needs about"):
        segment(im, **FAST)
    with pytest.raises(MemoryError):
        segment(np.stack([im, im]), mode="slices", **FAST)
    assert not started


def test_a_batch_whose_outputs_together_do_not_fit_is_refused_before_any_work(monkeypatch):
    images = [textured_disc(256, seed=s)[0] for s in range(10)]
    one = estimate_bytes((256, 256), 1, 2, (16, 16))  # one image fits, ten do not
    free = 1.5 * (one["engine"] + one["host"]) / memory.USABLE_FRACTION
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(free))
    monkeypatch.setattr(pipeline, "available_bytes", lambda device: int(free))
    segment(images[0], max_size=16, **FAST)
    started = []
    monkeypatch.setattr(pipeline, "solve_levels", lambda *a, **k: started.append(1))
    with pytest.raises(NotEnoughMemoryError, match="images before it"):
        segment_batch(images, max_size=16, **FAST)
    assert not started


def _fake_cuda(monkeypatch, error):
    """A 'cuda' device whose tensors cannot be allocated: raises ``error``."""
    real = seg._to_device
    tried = []

    def to_device(array, dev):
        tried.append(torch.device(dev).type)
        if torch.device(dev).type == "cuda":
            raise error
        return real(array, dev)

    monkeypatch.setattr(request, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(seg, "_to_device", to_device)
    return tried


@pytest.mark.parametrize("mode", ["2d", "slices"])
def test_gpu_out_of_memory_falls_back_to_cpu(monkeypatch, mode):
    im, _ = textured_disc(48)
    expected = segment(im, device="cpu", mode=mode, **FAST)
    tried = _fake_cuda(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory."))
    with pytest.warns(RuntimeWarning, match="running on the CPU instead") as caught:
        res = segment(im, device="cuda", mode=mode, **FAST)
    assert [w.filename for w in caught] == [__file__]  # the caller's line
    assert tried[-2:] == ["cuda", "cpu"]
    assert res.device == "cpu"
    assert res.metadata["device_fallback"]["from"] == "cuda"
    assert "OutOfMemoryError" in res.metadata["device_fallback"]["reason"]
    np.testing.assert_array_equal(res.labels, expected.labels)


def test_runtime_error_out_of_memory_also_falls_back(monkeypatch):
    im, _ = textured_disc(48)
    _fake_cuda(monkeypatch, RuntimeError("CUDA error: out of memory"))
    with pytest.warns(RuntimeWarning):
        res = segment(im, device="cuda", **FAST)
    assert res.metadata["device_fallback"]["to"] == "cpu"


def test_other_gpu_errors_are_not_hidden(monkeypatch):
    im, _ = textured_disc(48)
    _fake_cuda(monkeypatch, RuntimeError("CUDA error: illegal memory access"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="illegal memory access"):
            segment(im, device="cuda", **FAST)


def test_cpu_out_of_memory_is_not_retried(monkeypatch):
    im, _ = textured_disc(48)
    calls = []

    def to_device(array, dev):
        calls.append(dev)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(seg, "_to_device", to_device)
    with pytest.raises(RuntimeError, match="out of memory"):
        segment(im, device="cpu", **FAST)
    assert len(calls) == 1


def test_the_start_labels_are_counted_before_they_are_copied(monkeypatch):
    im, truth = textured_disc(256)
    one = estimate_bytes((256, 256), 1, 2, (16, 16), maps=False)
    free = (one["engine"] + one["host"] + 4 * im.size) / memory.USABLE_FRACTION
    monkeypatch.setattr(memory, "available_bytes", lambda device: int(free))
    monkeypatch.setattr(pipeline, "available_bytes", lambda device: int(free))
    segment(im, max_size=16, maps=False, **FAST)  # fits; its int64 labels would not
    with pytest.raises(NotEnoughMemoryError):
        segment(im, max_size=16, maps=False, init=truth.astype(np.uint8), **FAST)


def test_the_advice_is_what_the_run_can_still_change():
    huge = np.broadcast_to(np.float32(1), (200_000, 200_000))  # 160 GB, not allocated
    with pytest.raises(NotEnoughMemoryError) as info:
        segment(huge, max_size=256, maps=False, **FAST)
    message = str(info.value)
    assert "crop" in message and "segment_blocks" in message
    for done in ("max_size=512", "maps=False", "mode='slices'"):  # set, or no stack
        assert done not in message
    with pytest.raises(NotEnoughMemoryError, match="mode='slices'.*maps=False"):
        segment(np.broadcast_to(np.float32(1), (4000, 4000, 4000)), mode="volume", **FAST)
