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
