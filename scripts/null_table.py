"""Measure the structure test's nulls for the presets and write them into the package.

    python scripts/null_table.py

Runs the real pipeline (so the parameters are exactly those a run passes) on noise,
for the ``photo`` and ``microscopy`` presets, 2 to 4 regions, images and volumes, and
writes ``src/napari_iem/engine/null_selection.json``.  Rerun it after changing a
preset's optimiser parameters or the null's definition; ``tests/test_structure.py``
checks that the table holds the presets and agrees with a fresh measurement.
"""
import json

import numpy as np
import torch

from napari_iem import segment
from napari_iem.engine import structure

torch.set_num_threads(1)
rng = np.random.default_rng(0)
structure._TABLE = {}  # measure everything afresh
for preset in ("photo", "microscopy"):
    for regions in (2, 3, 4):
        segment(rng.integers(0, 256, (256, 256), dtype=np.uint8), regions, preset=preset,
                maps=False, device="cpu")
        segment(rng.integers(0, 4096, (48, 48, 48), dtype=np.uint16), regions,
                preset=preset, mode="volume", maps=False, device="cpu")
table = {key: value for (key, device), value in sorted(structure._NULLS.items())}
structure.TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
print(f"{len(table)} nulls written to {structure.TABLE}")
