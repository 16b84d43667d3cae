#!/usr/bin/env bash
# One run of the study-controls issue: study_controls_job.sh CLONE RUNS_DIR NAME OVERRIDES...
# Trains from the frozen clone CLONE (its own src/, the project's .venv) into RUNS_DIR/NAME; a run whose
# metrics.json exists is skipped, an interrupted one restarts from scratch. Writes RUNS_DIR/NAME.job.json
# (exit status, wall seconds, CPU model, commit, overrides) for `study_controls.py collect`.
#   python tools/study/study_controls.py queue --item 1 | \
#       xargs -P 2 -L 1 tools/study/study_controls_job.sh /path/to/frozen/clone /path/to/runs
set -u
clone=$1; runs=$2; name=$3; shift 3
out=$runs/$name
[ -f "$out/metrics.json" ] && exit 0
rm -rf "$out"
mkdir -p "$runs"
start=$(date +%s.%N)
(cd "$clone" && PYTHONPATH="$clone/src" "${PYTHON:-$clone/.venv/bin/python}" src/train.py experiment=study data=audio_dir \
    data.root="$(cd "$clone/.." && pwd)/shared/data/fsdd-3spk" trainer.precision=32-true "$@" hydra.run.dir="$out") \
    > "$out.log" 2>&1
rc=$?
wall=$(python3 -c "import time; print(round(time.time() - $start, 1))")
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
commit=$(git -C "$clone" rev-parse --short HEAD)
printf '{"name": "%s", "rc": %d, "wall_s": %s, "cpu": "%s", "commit": "%s", "overrides": "%s"}\n' \
    "$name" "$rc" "$wall" "$cpu" "$commit" "$*" > "$out.job.json"
