#!/usr/bin/env bash
# One prepared GPU check: the CUDA smoke test of the surrogates and selectors
# (benchmarks/gpu_smoke.py), then every benchmarks/speed_*.py with --device cuda --quick.
# All JSON lines go to one file; human text (the scripts' stderr) to <out>.log.
#
#   bash benchmarks/gpu_check.sh [OUT.jsonl]        (default gpu_check.jsonl)
#
# Needs only what the scripts import: torch with CUDA, bayesal (this checkout), and for the peer
# rows BoTorch, Pyro, baal, batchbald_redux and bmdal_reg (a missing peer gives null peer fields).
# PYTHON picks the interpreter (default: .venv/bin/python when present, else python3).
# Bounded to about 7.5 minutes: the smoke test gets 90 s, each speed script at most 60 s (a script
# cut short keeps the lines it printed, and a {"bench": "gpu_check", "timed_out": true} line says so).
# Without a GPU (torch.cuda.is_available() false) it says so and exits 0.
# For testing the script itself: GPU_CHECK_DEVICE=cpu runs the same steps on the CPU, and
# GPU_CHECK_LIMIT=S caps each speed script at S seconds.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-gpu_check.jsonl}"
LOG="${OUT%.jsonl}.log"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

DEVICE="${GPU_CHECK_DEVICE:-cuda}"
LIMIT="${GPU_CHECK_LIMIT:-60}"
if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' 2>/dev/null; then
    echo "gpu_check: no CUDA device (torch.cuda.is_available() is false, or torch is missing): nothing to check." >&2
    exit 0
fi

DEADLINE=$(( $(date +%s) + 450 ))
: > "$OUT"
: > "$LOG"
"$PYTHON" -c 'import json, sys, torch; cuda = sys.argv[1] == "cuda"; print(json.dumps({"bench": "gpu_check",
    "case": "device", "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
    "cuda": torch.version.cuda}))' "$DEVICE" >> "$OUT"

status=0
run_step() {  # run_step NAME LIMIT_S CMD...
    local name="$1" limit="$2"; shift 2
    local left=$(( DEADLINE - $(date +%s) ))
    if [ "$left" -lt 10 ]; then
        echo "{\"bench\": \"gpu_check\", \"case\": \"$name\", \"skipped\": true, \"note\": \"overall deadline reached\"}" >> "$OUT"
        return
    fi
    [ "$limit" -gt "$left" ] && limit="$left"
    echo "== $name (limit ${limit}s)" | tee -a "$LOG" >&2
    local start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >> "$OUT" 2>> "$LOG"
    local rc=$?
    local took=$(( $(date +%s) - start ))
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "{\"bench\": \"gpu_check\", \"case\": \"$name\", \"timed_out\": true, \"limit_s\": $limit}" >> "$OUT"
    elif [ "$rc" -ne 0 ]; then
        echo "{\"bench\": \"gpu_check\", \"case\": \"$name\", \"rc\": $rc, \"seconds\": $took, \"note\": \"failed: see $LOG\"}" >> "$OUT"
        status=1
    else
        echo "{\"bench\": \"gpu_check\", \"case\": \"$name\", \"rc\": 0, \"seconds\": $took}" >> "$OUT"
    fi
}

run_step gpu_smoke 90 "$PYTHON" benchmarks/gpu_smoke.py --device "$DEVICE"
for script in benchmarks/speed_*.py; do
    run_step "$(basename "$script" .py)" "$LIMIT" "$PYTHON" "$script" --device "$DEVICE" --quick
done
echo "gpu_check: JSON lines in $OUT, stderr in $LOG (exit $status)" >&2
exit $status
