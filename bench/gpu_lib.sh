# Shell pieces the GPU-host scripts share; sourced by bench/gpu_run.sh, bench/gpu_tasks.sh and bench/gpu_profile.sh
# (tests/test_bench.py runs both here).

raw_args() {  # the `vllm serve` flags of the service's settings in this environment (serving.engine.vllm_cli_args)
  python3 -c "from serving.engine import vllm_cli_args; from serving.model_source import resolve_model
from serving.settings import ServiceSettings; s = ServiceSettings(); print(' '.join(vllm_cli_args(s, resolve_model(s))))"
}

wait_ready() {  # $1 name, $2 URL that answers 200 once ready, $3 pid, $4 its log; 1 (and the log's tail) if it died first
  until python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$2" 2>/dev/null; do
    sleep 0.5; kill -0 "$3" 2>/dev/null || { echo "$1 died"; tail -30 "$4"; return 1; }
  done
}

serving_pid() {  # $1 raw|service: the pid of the process whose event loop serves that system's requests, the first
  # found: raw `vllm serve`'s API server or the service's BentoML worker (one of each runs on the GPU host)
  if [ "$1" = raw ]; then pgrep -f 'bench.vllm_cli serve' | head -1; else pgrep -f '_bentoml_impl.worker.service' | head -1; fi
}

descendants() {  # $1 pid: its children, theirs, ... (by parent, so also those that started sessions of their own)
  local child
  for child in $(pgrep -P "$1"); do echo "$child"; descendants "$child"; done
}

stop_tree() {  # $1 pid: SIGTERM to its process group, then SIGKILL to whatever of it and its descendants is left
  # after ${2:-30} s. A signal to the group alone misses the service's worker and engine (a session of their own); the
  # service's CLI, circus' arbiter, has its worker drain and stop on SIGTERM (serving/lifecycle.py); the KILL makes sure.
  local tree p left
  [[ "$1" =~ ^[0-9]+$ ]] || { echo "stop_tree: not a pid: '$1'"; return 2; }
  tree="$1 $(descendants "$1")"
  kill -TERM -- -"$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null
  for _ in $(seq $((${2:-30} * 2))); do
    left=""; for p in $tree; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
    [ -z "$left" ] && return 0
    sleep 0.5
  done
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null; echo "killed what SIGTERM left:$left"
}
