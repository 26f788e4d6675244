"""Unsupervised segmentation by Inpainting Error Maximization (IEM).

>>> from napari_iem import segment
>>> result = segment(image, regions=2)        # doctest: +SKIP
>>> result.labels                             # doctest: +SKIP
"""
from .engine.devices import available_devices
from .engine.presets import PRESETS, IEMParams
from .api import IEMProgress, IEMResult, iter_segment, segment, segment_batch

__version__ = "0.1.0"
__all__ = [
    "IEMParams", "IEMProgress", "IEMResult", "PRESETS", "available_devices",
    "iter_segment", "segment", "segment_batch", "segment_blocks",
]


def __getattr__(name):
    """``segment_blocks`` (:mod:`napari_iem.batch.blocks`) on first use: Dask and
    zarr are not imported with the package."""
    if name == "segment_blocks":
        from .batch.blocks import segment_blocks

        return segment_blocks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
