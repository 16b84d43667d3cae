#!/bin/bash
# One parity run of this project's side (docs/dvae-parity.md), one thread, resumable: the same command again
# resumes a stopped run from its last.ckpt and does nothing for a finished one.
#   tools/parity/train_ours.sh CORPUS SEED ITERATIONS OUT_DIR
# CORPUS: fsdd (16 kHz copies of fsdd-3spk: $FSDD16K_ROOT, lists in $FSDD_LISTS/{train,val,test}.txt; 16-frame
# sequences, as the benchmark's run) or vcc ($VCC_ROOT, its splits/; 50-frame sequences, the benchmark's default).
# ITERATIONS: the benchmark run's updates (its epochs x its batches per epoch), for an equal budget.
# Run from the repository's root; PYTHON: the interpreter (default .venv/bin/python, what make install builds).
set -euo pipefail
corpus=$1 seed=$2 iterations=$3 out=$4
case $corpus in
  fsdd) root=$FSDD16K_ROOT; lists=$FSDD_LISTS; crop=16; per_epoch=11 ;;  # 1,340 training sequences / 128
  vcc) root=$VCC_ROOT; lists=splits; crop=50; per_epoch=4 ;;  # 426 training sequences / 128
  *) echo "CORPUS must be fsdd or vcc, not $corpus" >&2; exit 2 ;;
esac
exec env OMP_NUM_THREADS=1 "${PYTHON:-.venv/bin/python}" src/train.py experiment=dvae_vrnn data=audio_dir data.root="$root" \
  "data.split_lists={train: $lists/train.txt, val: $lists/val.txt, test: $lists/test.txt}" \
  data.crop_frames=$crop training.iterations_per_epoch=$per_epoch model.kl_warmup_iterations=$((50 * per_epoch)) \
  training.max_iterations="$iterations" seed="$seed" num_threads=1 training.audio_every_n_epochs=0 \
  hydra.run.dir="$out"  # a run folder holding this run's last.ckpt resumes from it (avrnn.training.run_folder)
