#!/usr/bin/env bash
# The checks a GPU machine is lent for, in one run (docs/benchmarks.md, "On a GPU").
#
# Runs the engine's tests on the GPU (the GUI tests need napari and a display, which a
# bare GPU machine lacks; they run in CI), then the engine benchmark and the evaluation
# on CUDA and on the same machine's CPU, so that every ratio is side by side.  Uses the
# machine's own python3 (with torch and scikit-image) and the package from src/.
#
#   OUT=/tmp/gpu DATA=../shared/data scripts/gpu_checks.sh
#
# DATA: the development sets (horse/, nuclei/); OUT: where the logs go.
set -uo pipefail
OUT=${OUT:-/tmp/napari-iem-gpu}
DATA=${DATA:-../shared/data}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/benchmarks" PYTHONUNBUFFERED=1
PY=${PY:-python3}

log() { echo "== $*"; }
{
  log "machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch, numpy, skimage; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'skimage', skimage.__version__, 'cpu threads', torch.get_num_threads())"
} 2>&1 | tee "$OUT/machine.txt"

# Engine tests only: no conftest (it docks the napari widget), no GUI or manifest
# files, no Dask cluster (not installed there).
ENGINE_TESTS=$(ls tests/test_*.py | grep -v -e widget -e layers -e manifest -e sample_data -e demo)
log "engine tests on $(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
timeout 240 $PY -m pytest -q -p no:cacheprovider --noconftest -o addopts="" $ENGINE_TESTS \
  --deselect tests/test_batch.py::test_dask_cluster_equals_sequential 2>&1 | tee "$OUT/tests.txt" | tail -25

# Every timing twice, on CUDA and then on this machine's CPU, for ratios side by side.
for dev in cuda cpu; do
  log "engine benchmark on $dev"
  timeout 150 $PY benchmarks/bench_engine.py --device $dev --horses "$DATA/horse/images" 2>&1 \
    | tee "$OUT/bench_engine_$dev.txt"
  log "evaluation on $dev"
  {
    for preset in paper photo; do
      for batch in 0 64; do  # one image per call, then 64 per call
        echo "horse, $preset, batch $batch"
        timeout 90 $PY benchmarks/evaluate.py --set "$DATA/horse" --protocol paper \
          --preset $preset --device $dev --batch $batch 2>&1 | tail -1
      done
    done
    if [ $dev = cuda ]; then  # the whole set once, for the scores
      timeout 120 $PY benchmarks/evaluate.py --set "$DATA/nuclei" --protocol full \
        --preset default --device $dev 2>&1 | tail -3
    fi
    timeout 120 $PY benchmarks/evaluate.py --set "$DATA/nuclei" --protocol full \
      --preset default --device $dev --limit 60 2>&1 | tail -3
  } | tee "$OUT/evaluate_$dev.txt"
done

# Issue 13's GPU targets, each case in a fresh process: the paper preset on 1,020 and
# on 169 crops (masks against the authors'), the default on the 4096x4096 micrograph,
# coffee and the 2048x2048 photo; then the same cases on this machine's CPU.
for dev in cuda cpu; do
  log "speed targets on $dev"
  cases=paper1020,paper169,micro4096,coffee,photo2048
  [ $dev = cpu ] && cases=paper169,micro4096,coffee,photo2048
  timeout 400 $PY benchmarks/speed_targets.py --device $dev --repeat 1 --cases $cases \
    --reference "$DATA/paper-reference/horse128" 2>&1 | tee "$OUT/speed_targets_$dev.txt"
done
