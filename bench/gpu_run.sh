#!/usr/bin/env bash
# One device `run` call's work on the offline GPU host (bench/README.md gives the sequence of calls):
#   bash bench/gpu_run.sh install K            unpack bundle piece K (the last one to arrive also installs)
#   bash bench/gpu_run.sh raw|service [ARGS]   streaming bench of that system (ARGS go to `python -m bench`)
# Environment: OUT (results come back from there), LABEL (results key of the service, default "service"),
# LIMIT (seconds the bench may run, default 540).
# The code run is a snapshot, .device-carry/snap.tar (`git archive HEAD`), when carried, so that edits in
# progress in the shared checkout never reach a timed run; files under .device-carry/$OVERLAY/ replace the
# snapshot's (a variant under test). py-spy (wheel in .device-carry/pyspy) samples the serving process for
# 4 s inside the first repetition's short-prompt concurrency-256 level of each path.
set -uo pipefail
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
if [ -f "$C/snap.tar" ]; then
  rm -rf /tmp/snap && mkdir /tmp/snap && tar -xf "$C/snap.tar" -C /tmp/snap || exit 4
  [ -n "${OVERLAY:-}" ] && cp -rv "$C/$OVERLAY/." /tmp/snap/
  cd /tmp/snap
fi
if [ -d "$C/pyspy" ] && [ ! -x /tmp/pyspy/bin/py-spy ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/pyspy "$C"/pyspy/*.whl
fi
export PATH=/tmp/pyspy/bin:$PATH
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
  if [ "$PHASE" = raw ]; then pid=$(pgrep -f "bench.vllm_cli serve" | head -1); else pid=$(pgrep -f "_bentoml_impl.worker.service" | head -1); fi
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
