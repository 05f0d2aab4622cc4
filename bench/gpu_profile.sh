#!/usr/bin/env bash
# Why is the service slower than raw vLLM at high concurrency? On the GPU host (after the bundle is
# installed; PYTHONPATH, MODEL, VLLM_ARGS exported as in bench/README.md):
#   bash bench/gpu_profile.sh OUT_DIR [systems...]   systems: service (default config), lean (access log and
#   traffic metrics off: bench/bentoml-lean.yaml), raw (vllm serve)
# For each: start it, drive concurrency 64 and 256 with `python -m bench --url`, and sample the process that
# runs the engine client / HTTP server with py-spy for 15 s during the c=256 run (collapsed stacks).
set -u
source "$(dirname "$0")/gpu_lib.sh"
OUT=$1; shift
PORT=3100
URL=http://127.0.0.1:$PORT
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
for sys in "$@"; do
  log=/tmp/prof-$sys.log
  case $sys in
    service) setsid env -u BENTOML_CONFIG python3 -m bentoml serve . --host 127.0.0.1 --port $PORT >"$log" 2>&1 & ready=/readyz ;;
    lean) setsid env BENTOML_CONFIG=bench/bentoml-lean.yaml python3 -m bentoml serve . --host 127.0.0.1 --port $PORT >"$log" 2>&1 & ready=/readyz ;;
    raw) setsid python3 -m bench.vllm_cli serve $(raw_args) --host 127.0.0.1 --port $PORT >"$log" 2>&1 & ready=/health ;;
  esac
  pid=$!
  t0=$(date +%s)
  wait_ready "$sys" "$URL$ready" $pid "$log" || continue
  echo "[prof] $sys ready after $(( $(date +%s) - t0 )) s"
  # The process to sample: the BentoML worker (engine client + ASGI app) or vllm serve's API server.
  if [ "$sys" = raw ]; then target=$pid; else target=$(serving_pid service); fi
  python3 -m bench --url $URL --label $sys --machine prof-$sys --out-dir /tmp/prof-res --work-dir /tmp/prof-work \
      --concurrency 64,256 --prompts '4*C' --input-len 512 --output-len 128 --structured-concurrency '' \
      --task-requests 0 >/tmp/prof-bench-$sys.log 2>&1 &
  bpid=$!
  # c=64 (256 prompts) takes ~10 s after vLLM's import; sample inside the c=256 run (1024 prompts, ~25 s).
  until grep -q "max_concurrency.: 256\|max_concurrency=256" /tmp/prof-work/$sys-bench-serve.log 2>/dev/null; do
    sleep 1; kill -0 $bpid 2>/dev/null || break
  done
  sleep 4
  py-spy record -p "$target" -d 15 -r 200 --nonblocking -f raw -o "$OUT/$sys-c256.txt" >/dev/null 2>&1 || echo "py-spy failed"
  wait $bpid
  grep "\[bench\]" /tmp/prof-bench-$sys.log
  cp /tmp/prof-res/prof-$sys.json "$OUT/" 2>/dev/null
  kill -TERM -- -$pid 2>/dev/null; sleep 8; kill -KILL -- -$pid 2>/dev/null; sleep 3
done
