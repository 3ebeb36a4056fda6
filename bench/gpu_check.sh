#!/usr/bin/env bash
# GPU acceptance check (issue 25): what a CPU cannot show, measured in < 8 minutes on one H100/H200 with
# no network. Prepare the wheels first on a machine with PyPI: `make gpu-wheels` (folder gpu-wheels/).
#
#   bench/gpu_check.sh OUT_DIR            # on the GPU machine: install offline, run every step, write
#                                         # OUT_DIR/results.json + summary.md (+ junit.xml, gpu_check.log)
#   bench/gpu_check.sh --dry-run [OUT]    # on a CPU: check the wheels install offline for CPython 3.12,
#                                         # import what the steps need, validate their recipes, print plan
#
# Steps (each with its own time budget; an overrun is killed and the check goes on to the next step, so
# a partial result always comes back): install -> env -> gpu_tests -> sft_throughput -> fsdp2 -> rl.
# Environment: WHEELS (default gpu-wheels), GPU_CHECK_WORK (scratch, default /tmp/distill-gpu-check),
# PYTHON (default python3), GPU_CHECK_TOTAL (seconds, default 470).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GC=$REPO/bench/gpu_check
DRY=0
OUT=""
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) OUT=$arg ;;
  esac
done
WHEELS=${WHEELS:-$REPO/gpu-wheels}
# Scratch in memory where it has room: every SFT variant saves a 6 GB fp32 model (deleted right after).
SCRATCH=/tmp
if [[ $DRY == 0 && -d /dev/shm ]] && (( $(df -Pk /dev/shm | awk 'NR==2 {print $4}') > 24 * 1024 * 1024 )); then
  SCRATCH=/dev/shm
fi
WORK=${GPU_CHECK_WORK:-$SCRATCH/distill-gpu-check}
TOTAL=${GPU_CHECK_TOTAL:-470}
# Step budgets in seconds (455; the total is capped at GPU_CHECK_TOTAL - 10 s kept for the report).
B_INSTALL=40 B_ENV=20 B_TESTS=60 B_SFT=165 B_FSDP=50 B_RL=120
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export DISTILL_CACHE=${DISTILL_CACHE:-$WORK/cache}
if [[ $DRY == 1 && -z ${PYTHON:-} && -x $REPO/.venv/bin/python ]]; then PYTHON=$REPO/.venv/bin/python; fi
PY=${PYTHON:-python3}
cd "$REPO" || exit 1

if [[ $DRY == 1 ]]; then
  OUT=${OUT:-$WORK/dry-run-out}
  mkdir -p "$WORK" "$OUT"
  echo "== dry run: wheels in $WHEELS, python $($PY -c 'import sys; print(sys.version.split()[0])')"
  [[ -f $WHEELS/manifest.json ]] || { echo "no $WHEELS/manifest.json: run 'make gpu-wheels' first"; exit 1; }
  "$PY" "$GC/wheels.py" check "$WHEELS" --target "$WORK/site-cp312" || exit 1
  # Pure-Python wheels import here as they will there; binary ones (cp312) come from this venv instead.
  "$PY" "$GC/wheels.py" install-universal "$WHEELS" --target "$WORK/site-pure" || exit 1
  PYTHONPATH=$WORK/site-pure:$REPO "$PY" "$GC/imports.py" --cpu || exit 1
  rc=0
  "$PY" "$GC/sft_bench.py" --work "$WORK/dry/sft" --dry-run || rc=1
  "$PY" "$GC/fsdp_check.py" --work "$WORK/dry/fsdp" --dry-run || rc=1
  "$PY" "$GC/rl_bench.py" --work "$WORK/dry/rl" --dry-run || rc=1
  echo "== would run on the GPU (budgets in s, total $TOTAL):"
  echo "install  $B_INSTALL: $PY -m pip install --no-index --no-deps --target $WORK/site $WHEELS/*.whl; imports + pip check"
  echo "env      $B_ENV: nvidia-smi, torch device properties, dense bf16 peak by name, 8192^3 bf16 matmul"
  echo "gpu_tests $B_TESTS: $PY -m pytest -m gpu --continue-on-collection-errors --junitxml OUT/junit.xml"
  echo "sft_throughput $B_SFT: sft_bench.py (Qwen2.5-1.5B shape, bf16, packing 4096/8192, grad. ckpt, Liger)"
  echo "fsdp2    $B_FSDP: fsdp_check.py (tiny model, distill sft --launch fsdp2 --nproc 1)"
  echo "rl       $B_RL: rl_bench.py (GRPO and on-policy steps, Qwen2.5-0.5B shape, bf16)"
  mkdir -p "$WORK/dry/steps"
  "$PY" "$GC/report.py" "$WORK/dry" "$OUT" --quiet || rc=1
  echo "== dry run $([[ $rc == 0 ]] && echo ok || echo FAILED); empty report in $OUT/summary.md"
  exit $rc
fi

[[ -n $OUT ]] || { echo "usage: bench/gpu_check.sh OUT_DIR | --dry-run [OUT_DIR]"; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$WORK/steps" && mkdir -p "$WORK/steps"
LOG=$OUT/gpu_check.log
: >"$LOG"
DEADLINE=$(( $(date +%s) + TOTAL - 10 ))  # 10 s kept for the report

report() { "$PY" "$GC/report.py" "$WORK" "$OUT" --quiet >>"$LOG" 2>&1 || echo "report failed (see $LOG)"; }

# run_step NAME BUDGET COMMAND...: at most BUDGET seconds (less if the total is nearly spent); the step's
# own planning reads STEP_BUDGET (a few seconds under the hard limit, to write its results in time).
run_step() {
  local name=$1 budget=$2; shift 2
  local left=$(( DEADLINE - $(date +%s) ))
  local limit=$(( budget < left ? budget : left ))
  if (( limit < 10 )); then
    printf '{"rc": 0, "seconds": 0, "budget": %d, "skipped": "total time spent"}\n' "$budget" >"$WORK/steps/$name.status"
    echo "== $name: skipped, total time spent" | tee -a "$LOG"; report; return
  fi
  echo "== $name (budget ${limit} s)" | tee -a "$LOG"
  local started=$(date +%s)
  STEP_BUDGET=$(( limit > 20 ? limit - 8 : limit )) timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$? seconds=$(( $(date +%s) - started ))
  if (( (rc == 124 || rc == 137) && seconds >= limit )); then rc=124; fi
  printf '{"rc": %d, "seconds": %d, "budget": %d}\n' "$rc" "$seconds" "$limit" >"$WORK/steps/$name.status"
  echo "== $name: exit $rc after $seconds s" | tee -a "$LOG"
  report
}

install_wheels() {
  cp "$WHEELS/manifest.json" "$WORK/wheels-manifest.json"
  "$PY" "$GC/wheels.py" install "$WHEELS" --target "$WORK/site" &&
    "$PY" "$GC/imports.py" --json "$WORK/steps/install.json"
}
export -f install_wheels
export PY GC WHEELS WORK

export PYTHONPATH=$WORK/site:$REPO${PYTHONPATH:+:$PYTHONPATH}
run_step install "$B_INSTALL" bash -c install_wheels
run_step env "$B_ENV" "$PY" "$GC/hardware.py" --json "$WORK/steps/env.json" --matmul
PEAK=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('peak_bf16_tflops') or '')" \
  "$WORK/steps/env.json" 2>/dev/null)
run_step gpu_tests "$B_TESTS" "$PY" -m pytest -m gpu -p no:cacheprovider --continue-on-collection-errors \
  --timeout 60 -q -rA --junitxml "$OUT/junit.xml" tests
run_step sft_throughput "$B_SFT" "$PY" "$GC/sft_bench.py" --work "$WORK/sft" --json "$WORK/steps/sft_throughput.json" \
  ${PEAK:+--peak "$PEAK"}
run_step fsdp2 "$B_FSDP" "$PY" "$GC/fsdp_check.py" --work "$WORK/fsdp" --json "$WORK/steps/fsdp2.json"
run_step rl "$B_RL" "$PY" "$GC/rl_bench.py" --work "$WORK/rl" --json "$WORK/steps/rl.json"
"$PY" "$GC/report.py" "$WORK" "$OUT" | tee -a "$LOG"
