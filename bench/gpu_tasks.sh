#!/usr/bin/env bash
# Task endpoints with real weights on the offline GPU host: the default model (SmolLM2-135M-Instruct; its GGUF
# carried in two calls, .device-carry/g1/part00 then .device-carry/g2/part01, de-quantized there by
# finetune/device/convert_gguf.py into the default-model cache) with the shipped ViGGO adapter.
#   bash bench/gpu_tasks.sh stage              keep part00 in /tmp/gguf (the machine must stay warm until the next)
#   bash bench/gpu_tasks.sh run 16,64,256      convert, start the service, /extract_entities and /viggo at each
#                                              concurrency (4*C requests, `python -m bench --url`), then process start
#                                              to ready: raw `vllm serve` and the service again (compile cache warm)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
ROOT=$PWD; C=$ROOT/.device-carry
if [ "$1" = stage ]; then mkdir -p /tmp/gguf && cp "$C/g1/part00" /tmp/gguf/ && ls -la /tmp/gguf; exit; fi
export PYTHONPATH=/tmp/site-bench VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
M=$HOME/.cache/vllm-extraction/models/SmolLM2-135M-Instruct
cat /tmp/gguf/part00 "$C/g2/part01" > /tmp/gguf/model.gguf || exit 3
# The conversion sees only gguf besides the host's packages (the bundle's vLLM dependencies break transformers' import).
python3 -m pip install -q --no-index --no-deps --target /tmp/gguf-site /tmp/gb-bench/wheels/gguf-*.whl
PYTHONPATH=/tmp/gguf-site python3 finetune/device/convert_gguf.py /tmp/gguf/model.gguf "$M" "$C/smol-extra" 2>&1 | tail -2
sha256sum "$M/model.safetensors" | cut -c1-16
if [ -f "$C/snap.tar" ]; then rm -rf /tmp/snap && mkdir /tmp/snap && tar -xf "$C/snap.tar" -C /tmp/snap && cd /tmp/snap; fi
unset MODEL VLLM_ARGS
export ADAPTERS=viggo=$ROOT/finetune/adapters/viggo-smollm2 VIGGO_ADAPTER=viggo PERSIST_RESULTS=false
PORT=3100
start() {  # $1: label; prints seconds to ready
  t0=$(date +%s.%N)
  setsid python3 -m bentoml serve . --host 127.0.0.1 --port $PORT >"/tmp/svc-$1.log" 2>&1 &
  SVC=$!
  until python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
      http://127.0.0.1:$PORT/readyz 2>/dev/null; do
    sleep 0.5; kill -0 $SVC 2>/dev/null || { echo "$1 died"; tail -20 "/tmp/svc-$1.log"; return 1; }
  done
  echo "[tasks] $1 ready after $(python3 -c "import time; print(round(time.time() - $t0, 1))") s"
}
stop() { kill -TERM -- -$SVC 2>/dev/null; for _ in $(seq 30); do kill -0 $SVC 2>/dev/null || break; sleep 1; done
         kill -KILL -- -$SVC 2>/dev/null; sleep 3; }
start service-first || exit 4
for c in ${2//,/ }; do
  timeout 150 python3 -m bench --url http://127.0.0.1:$PORT --label service --machine "h100-tasks-c$c" \
    --concurrency '' --stream-shapes '' --structured-concurrency '' --task-concurrency "$c" --task-requests $((4 * c)) \
    --out-dir /tmp/tasks-res --work-dir /tmp/tasks-work 2>&1 | grep "\[bench\] tasks" | cut -c1-600
  cp /tmp/tasks-res/h100-tasks-c$c.json "$OUT/" 2>/dev/null
done
stop
timeout 200 python3 -m bench --systems raw --machine h100-coldstart-smollm2 --concurrency '' --stream-shapes '' \
  --structured-concurrency '' --task-requests 0 --out-dir /tmp/cs-res --work-dir /tmp/cs-work 2>&1 | grep "ready at"
start service-again && stop
tail -c 100000 /tmp/svc-service-first.log >"$OUT/server-tasks.log"
