"""Engine vs the naive autograd reference: speed and agreement of the masks.

    python benchmarks/bench_engine.py [--batch 64] [--iters 150] [--device cpu]

Prints one row per case: ms per iteration (per image), images per second, peak memory,
and how many masks are identical to the naive reference's.  The naive reference runs all
iterations; the engine stops each image at its fixed point (same masks, by construction
and as checked here), so both speed per iteration and per image are shown.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from naive_iem import naive_iem  # noqa: E402

from napari_iem import segment_batch  # noqa: E402

HORSES = ROOT.parent / "shared" / "data" / "horse" / "images"  # --horses overrides


def photos(n: int, size: int, folder: Path = HORSES) -> list[np.ndarray]:
    """``n`` RGB photos at ``size`` x ``size`` (development horses if present, by the
    paper protocol; scikit-image samples otherwise)."""
    from skimage import data
    from skimage.transform import resize

    if folder.is_dir():
        import imageio.v3 as iio

        files = sorted(folder.glob("*.png"))
        sources = [iio.imread(f)[..., :3] for f in files[: max(n, 1)]]
    else:
        sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = []
    for i in range(n):
        im = sources[i % len(sources)]
        h, w = im.shape[:2]
        s = size / min(h, w)
        im = resize(im, (max(size, round(h * s)), max(size, round(w * s))), order=0,
                    preserve_range=True, anti_aliasing=False)
        top, left = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
        out.append(im[top : top + size, left : left + size].astype(np.uint8))
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(size: int, batch: int, iters: int, device: str,
             folder: Path = HORSES) -> list[str]:
    images = photos(batch, size, folder)
    dev = torch.device(device)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().to(dev) / 255 * 2 - 1
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    naive_iem(x[:1], iters=2)  # warm-up: first calls pay for allocation and dispatch
    segment_batch(images[:1], 2, preset="paper", device=device, max_iter=2)
    t0 = time.perf_counter()
    ref = naive_iem(x, iters=iters).cpu().numpy()
    sync(dev)
    t_naive = time.perf_counter() - t0
    mem_naive = peak_memory(dev)

    t0 = time.perf_counter()
    results = segment_batch(images, 2, preset="paper", device=device, max_iter=iters)
    sync(dev)
    t_engine = time.perf_counter() - t0
    mem_engine = peak_memory(dev)
    same = sum(np.array_equal(r.labels == 1, m) for r, m in zip(results, ref))
    its = sum(r.iterations for r in results)
    rows = []
    for name, t, n_it, mem in [("naive", t_naive, batch * iters, mem_naive),
                               ("engine", t_engine, its, mem_engine)]:
        rows.append(
            f"| {size}x{size} | {batch} | {name} | {1000 * t / n_it:.2f} | "
            f"{n_it / batch:.0f} | {1000 * t / batch:.1f} | {batch / t:.1f} | {mem:.0f} | "
            + (f"{t_naive / t_engine:.1f}x | {same}/{batch} |" if name == "engine" else "1.0x | |")
        )
    return rows


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(dev) -> float:
    """Peak MB: CUDA allocator peak on a GPU, the process's peak RSS on the CPU."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images in the large batch")
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="128:1,128:BATCH,512:1",
                        help="comma-separated size:batch cases")
    parser.add_argument("--horses", type=Path, default=HORSES,
                        help="folder of development photos (default ../shared/data/horse/images)")
    args = parser.parse_args(argv)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"device: {args.device} ({name}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {args.iters} iterations at most, paper preset")
    print("| size | batch | method | ms/iteration/image | iterations | ms/image | images/s "
          "| peak MB | speed-up | masks identical |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in args.sizes.split(","):
        size, batch = case.split(":")
        batch = args.batch if batch == "BATCH" else int(batch)
        for row in run_case(int(size), batch, args.iters, args.device, args.horses):
            print(row, flush=True)


if __name__ == "__main__":
    main()
