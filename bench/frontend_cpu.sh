#!/usr/bin/env bash
# The front end's CPU time per request, on this machine: the service (BentoML's worker process) or raw `vllm serve`
# (its API server process) started from checkout DIR, driven by this checkout's `bench.task_baseline` at concurrency 8
# (`--cpu-pid`), after 20 s of idle time that gives the process' CPU rate with no requests (report it, and subtract it
# per request: on a CPU engine a request takes seconds, so the idle rate is part of the gross figure).
#   bash bench/frontend_cpu.sh DIR service|raw LABEL     -> $OUT_DIR/LABEL.json, a line per figure in $OUT_DIR/summary.txt
# DIR: a checkout (a `git worktree` of the commit to measure); both systems get the service's engine flags and the
# shipped adapters; the service's settings come from the environment as usual (TRACE_REQUESTS=true, ...). Environment:
# OUT_DIR (default /tmp/frontend-cpu), RPL (requests per level = RPL x 8, default 4), TASKS (default both).
set -u
DIR=$(cd "$1" && pwd); KIND=$2; LABEL=$3
REPO=$(cd "$(dirname "$0")/.." && pwd); PY=$REPO/.venv/bin/python
OUT_DIR=${OUT_DIR:-/tmp/frontend-cpu}; mkdir -p "$OUT_DIR"
export PERSIST_RESULTS=false RESULTS_URI=$OUT_DIR/results SPOOL_DIR=$OUT_DIR/spool
PORT=3300; URL=http://127.0.0.1:$PORT; A=$DIR/finetune/adapters
cd "$DIR" || exit 2
if [ "$KIND" = service ]; then
  PYTHONPATH=$DIR setsid "$PY" -m bentoml serve . --host 127.0.0.1 --port $PORT >"$OUT_DIR/$LABEL.log" 2>&1 &
  SVC=$!; READY=/readyz
else
  RAW_ARGS=$(PYTHONPATH=$DIR "$PY" -c "from serving.engine import resolve_model, vllm_cli_args; from serving.settings \
import ServiceSettings; s = ServiceSettings(); print(' '.join(vllm_cli_args(s, resolve_model(s))))")
  # shellcheck disable=SC2086
  PYTHONPATH=$DIR setsid "$PY" -m bench.vllm_cli serve $RAW_ARGS --lora-modules "viggo=$A/viggo-smollm2" \
    "ner=$A/ner-smollm2" --host 127.0.0.1 --port $PORT >"$OUT_DIR/$LABEL.log" 2>&1 &
  SVC=$!; READY=/health
fi
until curl -sf "$URL$READY" >/dev/null; do
  sleep 1; kill -0 $SVC 2>/dev/null || { echo "$KIND died"; tail "$OUT_DIR/$LABEL.log"; exit 1; }
done
if [ "$KIND" = service ]; then PID=$(pgrep -f _bentoml_impl.worker.service | head -1); ADAPTER=(); else PID=$SVC; ADAPTER=(--adapter viggo); fi
cd "$REPO" || exit 2
cpu() { PYTHONPATH=$REPO "$PY" -c "from bench.task_baseline import cpu_seconds; print(cpu_seconds($PID))"; }
sleep 5; I0=$(cpu); sleep 20; I1=$(cpu)
echo "$LABEL idle CPU ms/s: $("$PY" -c "print(round(($I1 - $I0) * 1000 / 20, 2))")" | tee -a "$OUT_DIR/summary.txt"
PYTHONPATH=$REPO "$PY" -m bench.task_baseline "$KIND" --url $URL "${ADAPTER[@]}" --concurrency 8 --repeats 1 \
  --tasks "${TASKS:-extract_entities,viggo}" --requests-per-level "${RPL:-4}" --cpu-pid "$PID" --out "$OUT_DIR/$LABEL.json" 2>&1 | grep task-baseline \
  | sed "s/^/$LABEL /" | tee -a "$OUT_DIR/summary.txt"
kill -TERM -- -$SVC; for _ in $(seq 40); do kill -0 $SVC 2>/dev/null || break; sleep 1; done; kill -KILL -- -$SVC 2>/dev/null
