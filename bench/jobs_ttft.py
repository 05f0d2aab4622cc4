"""/generate time to first token with and without an extraction job running on the same engine.

Starts the service (its own process group, results and corpus in a temporary folder), measures TTFT of
sequential /generate streams on the idle service, submits an NER job over a corpus of the NER dev set
repeated, measures TTFT again while the job runs, and prints both with the job's records/s.

    .venv/bin/python -m bench.jobs_ttft --records 400 --requests 10                  # priority scheduling (default)
    .venv/bin/python -m bench.jobs_ttft --records 400 --requests 10 --policy fcfs     # the same without it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.servers import free_port, running, service_command
from serving.paths import NER_DEV_SET

PROMPT = {"prompt": "The history of the printing press", "max_tokens": 8, "temperature": 0}


def ttft_s(client: httpx.Client) -> float:
    started = time.perf_counter()
    with client.stream("POST", "/generate", json=PROMPT) as response:
        response.raise_for_status()
        for chunk in response.iter_text():
            if chunk:
                return time.perf_counter() - started
    raise RuntimeError("/generate streamed nothing")


def measure(client: httpx.Client, requests: int) -> list[float]:
    return [ttft_s(client) for _ in range(requests)]


def write_corpus(folder: Path, records: int) -> Path:
    dev = [json.loads(line) for line in NER_DEV_SET.read_text().splitlines() if line]
    path = folder / "corpus" / "records.jsonl"
    path.parent.mkdir(parents=True)
    with path.open("w") as out:
        for i in range(records):
            out.write(json.dumps({"id": f"rec-{i}", "text": dev[i % len(dev)]["text"]}) + "\n")
    return path.parent


def engine_running(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:num_requests_running{")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=400, help="records in the job's corpus")
    parser.add_argument("--requests", type=int, default=10, help="/generate streams measured per phase")
    parser.add_argument("--policy", choices=["priority", "fcfs"], default="priority")
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--job-concurrency", type=int, default=None, help="default: max_num_seqs")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="jobs-ttft-"))
    corpus = write_corpus(work, args.records)
    env = {
        **os.environ,
        "RESULTS_URI": str(work / "results"),
        "SPOOL_DIR": str(work / "spool"),
        "JOB_INPUT_ROOTS": str(work),
        "KV_CACHE_MEMORY_BYTES": str(512 << 20),
        "MAX_NUM_SEQS": str(args.max_num_seqs),
        "BENTOML_HOME": str(work / "bentoml"),  # its own Prometheus folder: /metrics of this service only
        **({"JOB_CONCURRENCY": str(args.job_concurrency)} if args.job_concurrency else {}),
        **({"VLLM_ARGS": "--scheduling-policy fcfs"} if args.policy == "fcfs" else {}),
    }
    with (
        running("service", service_command(free_port()), env, work / "service.log", "/readyz") as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        measure(client, 2)  # warm-up
        idle = measure(client, args.requests)
        submitted = client.post("/extract_entities_job/submit", json={"source": str(corpus), "job_id": "ttft"})
        submitted.raise_for_status()
        while engine_running(client) < 1:
            time.sleep(0.2)
        time.sleep(2)  # the job's records fill the engine's batch
        busy = measure(client, args.requests)
        manifest = json.loads((work / "results" / "_jobs" / "ttft.json").read_text())
    print(
        f"policy {args.policy}, max_num_seqs {args.max_num_seqs}, job_concurrency "
        f"{args.job_concurrency or args.max_num_seqs}, {args.requests} /generate streams per phase"
    )
    for name, values in (("idle", idle), ("job running", busy)):
        print(f"  TTFT {name:12s} p50 {statistics.median(values) * 1000:8.0f} ms   max {max(values) * 1000:8.0f} ms")
    print(f"  job: {manifest['counts']} at {manifest['records_per_s']} records/s (manifest at the last measurement)")


if __name__ == "__main__":
    main()
