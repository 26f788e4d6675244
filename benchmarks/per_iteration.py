"""Milliseconds per iteration of one 128x128 photo, paper preset, from a given checkout.

    git worktree add /tmp/base 6506599
    for src in /tmp/base . /tmp/base .; do
        OMP_NUM_THREADS=1 python benchmarks/per_iteration.py $src
    done

Alternating two checkouts in turn compares engines side by side on one machine.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve() / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data  # noqa: E402
from skimage.transform import resize  # noqa: E402

import napari_iem  # noqa: E402
from napari_iem import segment  # noqa: E402

image = (resize(data.astronaut(), (128, 128), anti_aliasing=True) * 255).astype(np.uint8)
segment(image, 2, preset="paper", max_iter=3, device="cpu")  # warm-up
times = []
for _ in range(3):
    start = time.perf_counter()
    result = segment(image, 2, preset="paper", device="cpu")
    times.append(time.perf_counter() - start)
median = sorted(times)[1]
print(f"{napari_iem.__file__}: threads {torch.get_num_threads()}, {median:.3f} s, "
      f"{result.iterations} iterations, {1000 * median / result.iterations:.2f} ms/iteration")
