"""Two commits of the service side by side on this CPU, paired by bench.paired (the first as `raw`).

The checkouts are `git worktree`s: here /tmp/wt-old at 5145c04 (every Prometheus value in a file) and /tmp/wt-new at
cc47439 (vLLM's in memory). Each is started as bench.frontend_cpu starts a service, with a 1 GiB KV cache.

    git worktree add /tmp/wt-old 5145c04 && git worktree add /tmp/wt-new cc47439
    .venv/bin/python bench/results/cpu-engine-metrics/ab_metrics.py
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench import paired, servers
from bench.frontend_cpu import frontend_pid

OUT = Path("/tmp/ab-metrics")
CHECKOUTS = {"old": Path("/tmp/wt-old"), "new": Path("/tmp/wt-new")}

if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    with ExitStack() as stack:
        urls, pids = [], []
        for name, checkout in CHECKOUTS.items():
            env = {**os.environ, "PYTHONPATH": str(checkout), "PERSIST_RESULTS": "false",
                   "RESULTS_URI": str(OUT / name / "results"), "SPOOL_DIR": str(OUT / name / "spool"),
                   "KV_CACHE_MEMORY_BYTES": "1073741824"}  # fmt: skip
            cmd = servers.service_command(servers.free_port())
            server = stack.enter_context(servers.started(name, cmd, env, OUT / f"{name}.log", "/readyz", cwd=checkout))
            urls.append(server.url)
            pids.append(frontend_pid("service", server.pid))
        time.sleep(5)
        paired.main(["--raw", urls[0], "--service", urls[1], "--pids", f"{pids[0]},{pids[1]}",
                     "--shapes", "short:32:64", "--concurrency", "16", "--prompts", "2*C", "--pairs", "8",
                     "--endpoints", "completions", "--client-procs", "1",
                     "--out", str(OUT / "paired.json"), "--plot", str(OUT / "paired.png"), *sys.argv[1:]])  # fmt: skip
