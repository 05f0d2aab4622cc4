#!/usr/bin/env bash
# One device `run` call's work on the offline GPU host (bench/README.md gives the sequence of calls):
#   bash bench/gpu_run.sh install K            unpack bundle piece K (the last one to arrive also installs)
#   bash bench/gpu_run.sh raw|service [ARGS]   streaming bench of that system (ARGS go to `python -m bench`)
#   bash bench/gpu_run.sh up                   raw vLLM and the service side by side (each SHARE of the GPU's
#                                              memory, default 0.42), left running for the calls that follow
#   bash bench/gpu_run.sh paired [ARGS]        `python -m bench.paired` on those two (ARGS go to it)
#   bash bench/gpu_run.sh restart              stop the service alone and start it again from .device-carry/$SNAP_TAR
#                                              (default snap.tar; e.g. a `git archive` of another commit) and
#                                              $OVERLAY: an A/B of two versions of the service against one raw vLLM
#   bash bench/gpu_run.sh down                 stop both
# GCWATCH=1 on up: both servers log their garbage collector's pauses (bench/gcwatch/); on restart, the service
# (give it what up had: a service watched against a raw one not is no comparison). HANDLERWATCH=1 instead: both
# time vLLM's output handler (bench/handlerwatch/; after `paired`, `python -m bench.handler_cost compare` on
# $OUT/handlerwatch-{raw,service}-$LABEL.txt).
# Environment: OUT (results come back from there), LABEL (results key of the service, default "service"),
# LIMIT (seconds the bench may run, default 540); for `paired`, SPY_S (py-spy both serving processes for that many
# seconds, SPY_AFTER_S (default 30) into the run: .device-carry/pyspy carried; $OUT/spy-{raw,service}-$LABEL.txt).
# The code run is a snapshot, .device-carry/snap.tar (`git archive HEAD`), when carried, so that edits in
# progress in the shared checkout never reach a timed run; files under .device-carry/$OVERLAY/ replace the
# snapshot's (a variant under test). py-spy (wheel in .device-carry/pyspy) samples the serving process for
# 4 s inside the first repetition's short-prompt concurrency-256 level of each path.
set -uo pipefail
source "$(dirname "$0")/gpu_lib.sh"
PHASE=$1; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ "$PHASE" = install ]; then exec python3 .gpu-bundle/ib.py ".gpu-bundle/piece$1.tar"; fi
[ -d /tmp/site-bench/vllm ] || { echo "bundle not installed (machine went cold?)"; exit 3; }
export PYTHONPATH=/tmp/site-bench VLLM_USE_FLASHINFER_SAMPLER=0
C=$PWD/.device-carry
M=/tmp/llama-8b-shape
if [ ! -f $M/tokenizer.json ]; then rm -rf $M; cp -r "$C/llama-8b-shape" $M && gunzip $M/tokenizer.json.gz; fi
# Prefix caching off: every path gets the same prompts, and a path measured second must not find them cached.
export MODEL=${MODEL:-$M} VLLM_ARGS=${VLLM_ARGS:---load-format dummy} ENABLE_PREFIX_CACHING=${ENABLE_PREFIX_CACHING:-false}
SNAP=/tmp/snap
case $PHASE in up|paired|down) SNAP=/tmp/pair/snap ;; esac  # the side-by-side servers run from theirs across calls
[ "$PHASE" = restart ] && SNAP=/tmp/pair/service-snap  # raw keeps running from /tmp/pair/snap
TAR=$C/${SNAP_TAR:-snap.tar}
[ "$PHASE" = restart ] && [ ! -f "$TAR" ] && { echo "restart: carry $TAR (the service to start)"; exit 4; }
if [ -f "$TAR" ] && { [ "$SNAP" != /tmp/pair/snap ] || [ "$PHASE" = up ]; }; then
  rm -rf "$SNAP" && mkdir -p "$SNAP" && tar -xf "$TAR" -C "$SNAP" || exit 4
  [ -n "${OVERLAY:-}" ] && cp -rv "$C/$OVERLAY/." "$SNAP/"
  cd "$SNAP"
elif [ "$SNAP" != /tmp/snap ] && [ -d "$SNAP/bench" ]; then
  cd "$SNAP"  # paired/down: the code the servers were started from
fi
stop() {  # $1 raw|service, if started
  if [ -f "/tmp/pair/$1.pid" ]; then stop_tree "$(cat "/tmp/pair/$1.pid")"; rm -f "/tmp/pair/$1.pid"; fi
}
if [ "$PHASE" = down ]; then
  stop service & stop raw; wait
  nvidia-smi --query-gpu=memory.used --format=csv; exit 0
fi
RAW_URL=http://127.0.0.1:3201 SERVICE_URL=http://127.0.0.1:3202
watch() {  # $1: a folder of bench/ with a sitecustomize, first on the servers' PYTHONPATH
  local dir=/tmp/pair/snap/bench/$1  # the bench's own copy (up's snapshot): a restarted older service may have none
  [ -d "$dir" ] || dir=$PWD/bench/$1
  [ -f "$dir/sitecustomize.py" ] || { echo "no $dir/sitecustomize.py"; exit 4; }
  export PYTHONPATH=$dir:$PYTHONPATH
}
if [ "${GCWATCH:-}" = 1 ] && [ "${HANDLERWATCH:-}" = 1 ]; then
  echo "GCWATCH=1 and HANDLERWATCH=1: Python imports one sitecustomize, so one watcher a run"; exit 4
fi
[ "${GCWATCH:-}" = 1 ] && watch gcwatch
[ "${HANDLERWATCH:-}" = 1 ] && watch handlerwatch
up() {  # $1 name, $2 readiness path, the rest the command; its process group's leader pid to /tmp/pair/$1.pid
  local name=$1 ready=$2 url=$RAW_URL t0=$SECONDS; shift 2; [ "$name" = service ] && url=$SERVICE_URL
  setsid "$@" >"/tmp/pair/$name.log" 2>&1 & echo $! >"/tmp/pair/$name.pid"
  wait_ready "$name" "$url$ready" "$(cat /tmp/pair/$name.pid)" "/tmp/pair/$name.log" || exit 5
  echo "$name ready at $url after $((SECONDS - t0)) s"
}
up_service() {
  up service /readyz env PERSIST_RESULTS=false RESULTS_URI=/tmp/pair/results SPOOL_DIR=/tmp/pair/spool \
    python3 -m bentoml serve . --host 127.0.0.1 --port 3202
}
# Side by side, each server gets its share; the one-system phases (raw, service) keep the service's default.
case $PHASE in up|restart) export GPU_MEMORY_UTILIZATION=${SHARE:-0.42} ;; esac
if [ "$PHASE" = up ]; then
  mkdir -p /tmp/pair
  RAW_ARGS=$(raw_args)
  # shellcheck disable=SC2086  # one after the other: each sizes its KV cache from the memory it finds free
  up raw /health python3 -m bench.vllm_cli serve $RAW_ARGS --host 127.0.0.1 --port 3201
  up_service
  nvidia-smi --query-gpu=memory.used --format=csv
  exit 0
fi
if [ "$PHASE" = restart ]; then
  stop service; up_service
  nvidia-smi --query-gpu=memory.used --format=csv
  exit 0
fi
if [ -d "$C/pyspy" ] && [ ! -x /tmp/pyspy/bin/py-spy ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/pyspy "$C"/pyspy/*.whl
fi
export PATH=/tmp/pyspy/bin:$PATH
if [ "$PHASE" = paired ]; then
  if [ -n "${SPY_S:-}" ] && command -v py-spy >/dev/null; then  # both serving processes, the same SPY_S seconds
    ( sleep "${SPY_AFTER_S:-30}"
      for s in raw service; do
        py-spy record -p "$(serving_pid $s)" -d "$SPY_S" -r 250 --nonblocking -f raw \
          -o "$OUT/spy-$s${LABEL:+-$LABEL}.txt" >/dev/null 2>&1 &
      done
      wait ) &
  fi
  # Both serving processes' pids: each level also records where their time went (bench/sched.py).
  timeout -s INT -k 30 "${LIMIT:-540}" python3 -m bench.paired --raw $RAW_URL --service $SERVICE_URL \
    --pids "$(serving_pid raw),$(serving_pid service)" \
    --out "$OUT/paired${LABEL:+-$LABEL}.json" --plot "$OUT/paired${LABEL:+-$LABEL}.png" "$@" 2>&1 | tee "$OUT/log-paired${LABEL:+-$LABEL}.txt"
  rc=${PIPESTATUS[0]}; wait
  grep -h '\[gcwatch\]' /tmp/pair/*.log >"$OUT/gcwatch${LABEL:+-$LABEL}.txt" 2>/dev/null
  for s in raw service; do  # whole logs: `python -m bench.handler_cost compare` takes each server's totals
    grep -h '\[handlerwatch\]' "/tmp/pair/$s.log" >"$OUT/handlerwatch-$s${LABEL:+-$LABEL}.txt" 2>/dev/null
  done
  exit "$rc"
fi
LABEL=${LABEL:-service}
NAME=h100-$LABEL; [ "$PHASE" = raw ] && NAME=h100-raw  # both systems may run in one call, into one $OUT
WORK=/tmp/bw-$PHASE-$LABEL
rm -rf "$WORK"; mkdir -p "$WORK"
LOG=$OUT/log-$LABEL.txt
[ "$PHASE" = raw ] && LOG=$OUT/log-raw.txt

sample() {  # $1: path of the level to sample (its start line), $2: output name
  until grep -q "start rep 1/[0-9]* short c=256 $1\$" "$LOG" 2>/dev/null; do sleep 0.2; done
  sleep 1.0  # its requests reach full concurrency
  local pid
  pid=$(serving_pid "$PHASE")
  py-spy record -p "$pid" -d 4 -r 250 --nonblocking -f raw -o "$OUT/$2.txt" >"$WORK/err-$2.txt" 2>&1 || { echo "py-spy failed (pid $pid)"; tail -3 "$WORK/err-$2.txt"; }
}
if command -v py-spy >/dev/null; then
  if [ "$PHASE" = raw ]; then
    sample /v1/completions pyspy-raw-v1-c256 &
  else  # a path the run leaves out (--stream-endpoints) is never sampled
    sample /v1/completions "pyspy-$LABEL-v1-c256" &
    sample /generate "pyspy-$LABEL-generate-c256" &
  fi
fi
# SIGINT at the limit: bench's own clean-up stops the server it started (it runs in a session of its own and
# would outlive this call, holding the GPU), and what was measured so far is copied below.
timeout -s INT -k 30 "${LIMIT:-540}" python3 -m bench --profile gpu --machine "$NAME" --systems "$PHASE" --service-label "$LABEL" \
  --concurrency '' --structured-concurrency '' --task-requests 0 --out-dir "$WORK/res" --work-dir "$WORK" "$@" 2>&1 | tee "$LOG"
rc=$?
cp "$WORK"/res/*.json "$OUT/" 2>/dev/null || cp "$WORK"/*-streams-partial.json "$OUT/" 2>/dev/null
tail -c 200000 "$WORK"/*-server.log >"$OUT/server-$LABEL-$PHASE.log" 2>/dev/null
kill $(jobs -p) 2>/dev/null
exit $rc
