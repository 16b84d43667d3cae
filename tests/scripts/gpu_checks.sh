#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run (CI has no GPU): the GPU tests, `make bench` on the
# GPU, and training through src/train.py with and without CUDA graphs. Logs go to $OUT (default
# ./gpu-checks). On a machine without hydra-core, omegaconf or soundfile, put their wheels in .whl/.
#   bash tests/scripts/gpu_checks.sh
#   FULL_SUITE=1 SKIP_TRAIN=1 bash tests/scripts/gpu_checks.sh   # + the whole suite (pytest-xdist), no training runs
set -uo pipefail
OUT=${OUT:-gpu-checks}
RUNS=$(mktemp -d)  # training runs (checkpoints, TensorBoard); only their logs and metrics go to $OUT
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__, torch.cuda.get_device_name())"

echo "== tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_loop_linear.py tests/test_reference.py \
  >"$OUT/pytest.log" 2>&1
echo "pytest exit $?"; grep -E "passed|failed|Error|error:" "$OUT/pytest.log" | tail -15

echo "== bench"
timeout 170 python3 src/bench.py --output "$OUT/bench.json" ${BENCH_ARGS:-} >"$OUT/bench.log" 2>&1
echo "bench exit $?"; grep -v -i -E "warn|^\s*$|litlogger|stopped|LOCAL_RANK|available:" "$OUT/bench.log" | tail -12

if [ -n "${FULL_SUITE:-}" ]; then
  echo "== the whole suite on a machine with a GPU (sweep launchers are not installed there: left out)"
  # two threads per worker: 8 workers x 16 threads each oversubscribed the 16 cores (the one run
  # without this line had passed about 120 of 136 tests, none failed, when 300 s were up)
  OMP_NUM_THREADS=2 timeout 300 python3 -m pytest -q -p no:cacheprovider -n 8 --ignore tests/test_sweeps.py \
    >"$OUT/pytest_all.log" 2>&1
  echo "pytest exit $?"; grep -E "passed|failed|FAILED|ERROR" "$OUT/pytest_all.log" | tail -15
fi

[ -n "${SKIP_TRAIN:-}" ] && exit 0
echo "== train (synthetic corpus, 200 iterations, bf16-mixed)"
for graphs in false true; do
  start=$(date +%s.%N)
  timeout 75 python3 src/train.py ${TRAINER:-trainer=gpu} training.cuda_graphs=$graphs training.max_iterations=200 \
    trainer.enable_progress_bar=false hydra.run.dir="$RUNS/train_graphs_$graphs" ${TRAIN_ARGS:-} \
    >"$OUT/train_graphs_$graphs.log" 2>&1
  status=$?
  echo "cuda_graphs=$graphs exit $status, $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s wall"
  grep -E "captured|finished|Error" "$OUT/train_graphs_$graphs.log" | tail -4
  cp "$RUNS/train_graphs_$graphs/metrics.json" "$OUT/metrics_graphs_$graphs.json" 2>/dev/null
done
python3 - "$OUT" <<'EOF'
import json, sys, pathlib
for path in sorted(pathlib.Path(sys.argv[1]).glob("metrics_graphs_*.json")):
    m = json.loads(path.read_text())
    print(path.stem, {k: round(m[k], 2) for k in ("val/best_elbo_per_timestep", "test/elbo_per_timestep") if k in m})
EOF
