#!/usr/bin/env bash
# Task endpoints with real weights on the offline GPU host: the default model (SmolLM2-135M-Instruct; its GGUF
# carried in parts, .device-carry/g1/part00 ... g4/part03, one per call, de-quantized there by
# finetune/device/convert_gguf.py into the default-model cache) with the shipped ViGGO and NER adapters. One phase per
# `run` call, back to back (the machine must stay warm in between; bench/README.md gives the calls):
#   bash bench/gpu_tasks.sh stage          keep the carried GGUF parts (and gguf's wheel) and the model's
#                                          config/tokenizer files (smol-extra) in /tmp/gguf; once per part
#   bash bench/gpu_tasks.sh service C,..   convert the model, start the service: /extract_entities and /viggo at each
#                                          concurrency (`bench.task_baseline service`), the job API over 2,048 records
#                                          each (`... jobs`), free vs JSON-schema chat completions (`bench --url`)
#   bash bench/gpu_tasks.sh raw C,..       raw `vllm serve`, same flags and the adapter as `--lora-modules`: the same
#                                          engine requests (`... raw`) and chat loads; then ViGGO via `LLM.generate`
#                                          (py-spy, when .device-carry/pyspy is carried, samples the serving process)
#   bash bench/gpu_tasks.sh starts N       N more starts of each, alternating: process start to ready
#   bash bench/gpu_tasks.sh convert        only the model's conversion (carry the last part; for other scripts)
# Environment: OUT (what comes back); REPEATS (runs of each task level, default 3; the median is reported); PARTS
# (what the service/raw phase runs besides the task levels, default "jobs chat offline prep": the job API, the chat
# loads, offline LLM.generate, the service's own work per request before the engine on the host's CPU). Every start's seconds to ready: /tmp/starts.txt (all calls), copied to $OUT.
set -uo pipefail
PHASE=$1; ARG=${2:-}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
ROOT=$PWD; C=$ROOT/.device-carry
source "$ROOT/bench/gpu_lib.sh"
stage() {  # every carried GGUF part, gguf's wheel and the model's small files, kept for the conversion
  mkdir -p /tmp/gguf && for f in "$C"/g*/part* "$C"/g*/gguf-*.whl "$C/smol-extra"; do [ -e "$f" ] && cp -r "$f" /tmp/gguf/; done
}
if [ "$PHASE" = stage ]; then stage && ls -la /tmp/gguf; exit; fi
[ -d /tmp/site-bench/vllm ] || { echo "bundle not installed (machine went cold?)"; exit 3; }
export PYTHONPATH=/tmp/site-bench VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
M=$HOME/.cache/vllm-extraction/models/SmolLM2-135M-Instruct
if [ ! -f "$M/model.safetensors" ]; then
  stage; cat /tmp/gguf/part[0-9][0-9] > /tmp/gguf/model.gguf || exit 3
  # The conversion sees only gguf besides the host's packages (the bundle's vLLM dependencies break transformers').
  # gguf's wheel: the bundle's when it was built with `--extra gguf==0.19.0`, else carried beside a part.
  python3 -m pip install -q --no-index --no-deps --target /tmp/gguf-site \
    "$(ls /tmp/gb-bench/wheels/gguf-*.whl /tmp/gguf/gguf-*.whl 2>/dev/null | head -1)"
  PYTHONPATH=/tmp/gguf-site python3 finetune/device/convert_gguf.py /tmp/gguf/model.gguf "$M" /tmp/gguf/smol-extra 2>&1 | tail -2
  sha256sum "$M/model.safetensors" | cut -c1-16
fi
if [ -f "$C/snap.tar" ]; then rm -rf /tmp/snap && mkdir /tmp/snap && tar -xf "$C/snap.tar" -C /tmp/snap && cd /tmp/snap; fi
unset MODEL VLLM_ARGS
ADAPTER=$ROOT/finetune/adapters/viggo-smollm2
NER_PATH=$ROOT/finetune/adapters/ner-smollm2
CSV=$C/viggo-valid.csv
# Named, not bundled: a snapshot (snap.tar) is made without finetune/adapters.
export ADAPTERS=viggo=$ADAPTER,ner=$NER_PATH VIGGO_ADAPTER=viggo NER_ADAPTER=ner PERSIST_RESULTS=false
export RESULTS_URI=/tmp/job-results SPOOL_DIR=/tmp/spool JOB_INPUT_ROOTS=/tmp/job-in
REPEATS=${REPEATS:-3}; PARTS=${PARTS:-jobs chat offline prep}
PORT=3100; URL=http://127.0.0.1:$PORT
RAW_ARGS=$(raw_args)

start() {  # $1: service|raw; ready time to $OUT/starts.txt
  local t0; t0=$(date +%s.%N)
  if [ "$1" = service ]; then
    setsid python3 -m bentoml serve . --host 127.0.0.1 --port $PORT >"/tmp/$1.log" 2>&1 &
  else  # shellcheck disable=SC2086
    setsid python3 -m bench.vllm_cli serve $RAW_ARGS --lora-modules "viggo=$ADAPTER" "ner=$NER_PATH" --host 127.0.0.1 --port $PORT \
      >"/tmp/$1.log" 2>&1 &
  fi
  SVC=$!
  local ready=/readyz; [ "$1" = raw ] && ready=/health
  wait_ready "$1" "$URL$ready" $SVC "/tmp/$1.log" || return 1
  echo "$1 $(python3 -c "import time; print(round(time.time() - $t0, 1))") $(date -u +%H:%M:%S)" | tee -a /tmp/starts.txt
}
stop() { kill -TERM -- -$SVC 2>/dev/null; for _ in $(seq 30); do kill -0 $SVC 2>/dev/null || break; sleep 1; done
         kill -KILL -- -$SVC 2>/dev/null; sleep 3; }
chat() {  # free vs JSON-schema-constrained chat completions on whichever server runs
  timeout 150 python3 -m bench --url $URL --label "$1" --machine "h100-structured-$1" --concurrency '' --stream-shapes '' \
    --task-requests 0 --structured-concurrency "$ARG" --structured-prompts '2*C' --structured-max-tokens 96 \
    --out-dir "$OUT" --work-dir /tmp/chat-work 2>&1 | grep "\[bench\]" | cut -c1-300
}

case $PHASE in
  service)
    start service || exit 4
    WORKER=$(serving_pid service)  # BentoML's worker: the service's event loop
    if [ -d "$C/pyspy" ]; then  # the serving process, 4 s inside /extract_entities at the last concurrency
      [ -x /tmp/pyspy/bin/py-spy ] || python3 -m pip install -q --no-index --no-deps --target /tmp/pyspy "$C"/pyspy/*.whl
      LEVELS=(${ARG//,/ })
      (until grep -q "service extract_entities c=${LEVELS[-2]} rep $REPEATS/$REPEATS:" /tmp/tasks.log 2>/dev/null; do sleep 0.2; done
       sleep 1.5  # the last level's warm-up request, then its load
       /tmp/pyspy/bin/py-spy record -p "$WORKER" -d 4 -r 200 \
         --nonblocking -f raw -o "$OUT/pyspy-ner-c${LEVELS[-1]}.txt" >"$OUT/pyspy.err" 2>&1) &
      SAMPLER=$!
    fi
    : >/tmp/tasks.log
    timeout 400 python3 -m bench.task_baseline service --url $URL --concurrency "$ARG" --repeats "$REPEATS" \
      --cpu-pid "$WORKER" \
      --viggo-csv "$CSV" --out "$OUT/tasks-service.json" 2>&1 | tee /tmp/tasks.log | grep task-baseline
    [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
    [[ $PARTS == *jobs* ]] && timeout 150 python3 -m bench.task_baseline jobs --url $URL --corpus-dir /tmp/job-in \
      --records 2048 --viggo-csv "$CSV" --out "$OUT/tasks-jobs.json"
    [[ $PARTS == *chat* ]] && chat service
    [[ $PARTS == *prep* ]] && timeout 120 python3 -m bench.task_baseline prep --repeats 5 --viggo-csv "$CSV" \
      --out "$OUT/tasks-prep.json" 2>&1 | grep task-baseline
    stop; tail -c 60000 /tmp/service.log >"$OUT/service.log" ;;
  raw)
    start raw || exit 4
    timeout 400 python3 -m bench.task_baseline raw --url $URL --adapter viggo --concurrency "$ARG" --repeats "$REPEATS" \
      --cpu-pid $SVC --viggo-csv "$CSV" --out "$OUT/tasks-raw.json"
    [[ $PARTS == *chat* ]] && chat raw
    stop; tail -c 30000 /tmp/raw.log >"$OUT/raw.log"
    [[ $PARTS == *offline* ]] && timeout 240 python3 -m bench.task_baseline offline --adapter "viggo=$ADAPTER" --sentences 1024 --viggo-csv "$CSV" \
      --out "$OUT/tasks-offline.json" 2>&1 | grep -v "^\s*$" | tail -5 ;;
  starts)
    for _ in $(seq "$ARG"); do for kind in service raw; do start $kind && stop; done; done ;;
esac
cp /tmp/starts.txt "$OUT/" 2>/dev/null
exit 0
