"""Smoke test of the benchmark machinery (bench/) on a tiny load against the shared test server.

Starts no engine of its own: `python -m bench --url ...` drives the session's `server` fixture.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import uuid
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from bench import (
    frontend_cpu,
    gc_pauses,
    gpu_bundle,
    handler_cost,
    load,
    paired,
    report,
    sched,
    servers,
    spy_diff,
    task_baseline,
)
from bench import label_scores as label_scores_bench
from bench.cli import first_model, main


def test_percentile_and_report_without_engine(tmp_path: Path) -> None:
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert load.percentile([], 99) is None
    row = {"concurrency": 1, "output_throughput": 100.0, "request_throughput": 1.0, "p50_ttft_ms": 10.0}
    results = {
        "machine": "unit",
        "model": "m",
        "versions": {},
        "note": "",
        "load": {"input_len": 8, "output_len": 4, "prompts": "2"},
        "systems": {
            "raw": {"serving": [row]},
            "service": {"serving": [dict(row, output_throughput=99.0, p50_ttft_ms=12.0)]},
        },
    }
    paths = report.write_all(results, tmp_path)
    data = json.loads((tmp_path / "unit.json").read_text())
    (cmp,) = data["comparison"]
    assert cmp["output_throughput"]["ratio"] == pytest.approx(0.99)
    assert cmp["ttft_p50_delta_ms"] == pytest.approx(2.0)
    assert cmp["meets_targets"] is True
    assert "| 1 |" in (tmp_path / "unit.md").read_text()
    assert {p.name for p in paths} >= {"unit.json", "unit.md", "unit-throughput.png", "unit-ttft.png"}


@pytest.mark.engine
def test_bench_tiny_load_against_shared_server(server, tmp_path: Path) -> None:
    code = main([
        "--url", server.url, "--api-key", server.api_key, "--label", "service", "--machine", "smoke",
        "--out-dir", str(tmp_path / "results"), "--work-dir", str(tmp_path / "runs"),
        "--concurrency", "1", "--prompts", "2", "--input-len", "16", "--output-len", "4", "--num-warmups", "0",
        "--structured-concurrency", "2", "--structured-prompts", "2", "--structured-max-tokens", "8",
        "--task-concurrency", "1", "--task-requests", "1",
        "--stream-shapes", "tiny:16:4", "--stream-concurrency", "1,2", "--stream-prompts", "2", "--repeats", "2",
        "--client-procs", "2",
    ])  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "results" / "smoke.json").read_text())
    service = data["systems"]["service"]

    (serving,) = service["serving"]
    assert serving["concurrency"] == 1 and serving["completed"] == 2 and not serving.get("failed")
    for key in (
        "request_throughput",
        "output_throughput",
        "p50_ttft_ms",
        "p99_ttft_ms",
        "p50_tpot_ms",
        "p99_tpot_ms",
        "p50_e2el_ms",
        "p99_e2el_ms",
    ):
        assert serving[key] > 0, key
    assert serving["output_throughput"] == pytest.approx(8 / serving["duration"], rel=0.05)  # 2 prompts x 4 tokens

    (structured,) = service["structured"]
    assert structured["free"]["ok"] == 2 and structured["constrained"]["ok"] == 2
    assert structured["free"]["output_throughput"] > 0 and structured["ratio"] > 0

    for name in ("extract_entities", "viggo"):  # measured when the endpoint answers, else says why not
        task = service["tasks"][name]
        assert task["measured"] is True or task["reason"]
        if task["measured"]:
            assert task["ok"] == 1 and task["request_throughput"] > 0

    # One client for /v1/completions and /generate: every level twice, figures per repetition and their median.
    streams = {(row["endpoint"], row["concurrency"]): row for row in service["streams"]}
    assert set(streams) == {("completions", 1), ("completions", 2), ("generate", 1), ("generate", 2)}
    for row in streams.values():
        assert row["shape"] == "tiny" and row["num_prompts"] == 2 and len(row["reps"]) == 2
        for rep in row["reps"]:
            assert rep["ok"] == 2 and rep["failed"] == 0
        assert row["min"]["output_throughput"] <= row["median"]["output_throughput"] <= row["max"]["output_throughput"]
        assert row["median"]["p50_ttft_ms"] > 0 and 0 < row["median"]["mean_output_tokens"] <= 4
    # Greedy, same prompts, one at a time (no batch numerics): /generate streams the same answers as /v1.
    completions, generate = streams[("completions", 1)]["reps"], streams[("generate", 1)]["reps"]
    assert [r["outputs_sha256"] for r in generate] == [r["outputs_sha256"] for r in completions]

    markdown = (tmp_path / "results" / "smoke.md").read_text()
    assert "| tiny | 2 | service /generate |" in markdown
    assert (tmp_path / "results" / "smoke-stream-tiny.png").stat().st_size > 0
    assert (tmp_path / "results" / "smoke-throughput.png").stat().st_size > 0


@pytest.mark.engine
def test_task_baseline_sends_the_services_own_engine_requests(server, tokenizer) -> None:
    """The raw-vLLM baseline of the task endpoints replays the engine requests the service makes: through the same
    engine's /v1/completions they come back with the service's own answers (greedy, same prompt and constraint)."""
    import httpx

    from ner.decoding import read_labels, token_ends
    from viggo.mr import MeaningRepresentation

    text = "Tim Cook announced that Apple will open a new campus in Austin next year."
    sentence = "Blizzard North released Diablo II for the Mac and I think it's good."
    recorded = task_baseline.record(tokenizer, [text, "nothing to name here."], [sentence], "viggo")
    # The name-less text is answered without the engine: no request, so no baseline either.
    ((_, ner_request),) = recorded["extract_entities"]
    ((_, viggo_request),) = recorded["viggo"]
    constraint = ner_request.params.structured_outputs
    assert constraint is not None and isinstance(constraint.json, dict)
    names = list(constraint.json["properties"])
    assert names[:2] == ["Tim Cook", "Apple"]

    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=300
    ) as client:
        model = client.get("/v1/models").json()["data"][0]["id"]

        def replayed(request: task_baseline.EngineRequest) -> str:
            response = client.post("/v1/completions", json=task_baseline.completion_body(request, model))
            assert response.status_code == 200, response.text
            return response.json()["choices"][0]["text"]

        labels = read_labels(replayed(ner_request), names)

        # NER's label scores take token boundaries from the texts vLLM decoded for each log-probability
        # (ner.decoding.token_ends); where those texts stop spelling the answer, scoring falls back to decoding
        # again (same scores, nine times slower). The engine's own texts are what /v1 returns as `tokens`.
        body = task_baseline.completion_body(ner_request, model)
        as_text = client.post("/v1/completions", json=body).json()["choices"][0]
        as_ids = client.post("/v1/completions", json=dict(body, return_tokens_as_token_ids=True)).json()["choices"][0]
        ids = [int(token.removeprefix("token_id:")) for token in as_ids["logprobs"]["tokens"]]
        pieces = as_text["logprobs"]["tokens"]
        chosen = [{i: SimpleNamespace(decoded_token=piece)} for i, piece in zip(ids, pieces, strict=True)]
        assert token_ends(as_text["text"], ids, chosen) is not None, pieces
        served = client.post("/extract_entities", json={"text": text, "persist": False}).json()
        by_type = {"person": "persons", "organization": "organizations", "location": "locations"}
        for label, field in by_type.items():
            assert sorted(served[field]) == sorted(name for name, given in labels.items() if given == label), field

        mr = MeaningRepresentation.parse(replayed(viggo_request).strip()).to_string()
        assert mr == client.post("/viggo", json={"sentence": sentence}).json()["mr"]


def test_task_baseline_reports_the_median_repetition_and_the_ranges(tmp_path: Path) -> None:
    def reps(*rates: float) -> list[dict[str, float]]:
        return [{"concurrency": 64, "request_throughput": r, "p50_latency_ms": 1000 / r, "p99_latency_ms": 1.0}
                for r in rates]  # fmt: skip

    service, raw = task_baseline.median_row(reps(60, 40, 50)), task_baseline.median_row(reps(50, 50, 100))
    assert service["request_throughput"] == 50 and service["p50_latency_ms"] == 20  # the median run, whole
    assert [r["request_throughput"] for r in service["repetitions"]] == [60, 40, 50]  # in the order they ran
    for target, row in (("service", service), ("raw", raw)):
        (tmp_path / f"{target}.json").write_text(json.dumps({"target": target, "results": {"viggo": [row]}}))
    table = task_baseline.report([tmp_path / "service.json", tmp_path / "raw.json"])
    # medians 50 / 50; the k-th runs' ratios 60/50, 40/50, 50/100
    assert "| /viggo | 64 | 50.0 [40.0-60.0] | 50.0 [50.0-100.0] | **1.00** [0.50-1.20] |" in table
    (single,) = reps(70)
    for target in ("service", "raw"):
        (tmp_path / f"{target}.json").write_text(json.dumps({"target": target, "results": {"viggo": [single]}}))
    # one run (no "repetitions"): no ranges
    assert "| 70.0 | 70.0 | **1.00** |" in task_baseline.report([tmp_path / "service.json", tmp_path / "raw.json"])


def test_task_baseline_pools_rounds_and_shows_each_rounds_ratio(tmp_path: Path) -> None:
    def write(name: str, target: str, *rates: float) -> Path:
        reps = [{"concurrency": 256, "request_throughput": r, "p50_latency_ms": 1.0, "p99_latency_ms": 1.0}
                for r in rates]  # fmt: skip
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"target": target, "results": {"viggo": [task_baseline.median_row(reps)]}}))
        return path

    files = [write("s1", "service", 90, 100, 110), write("r1", "raw", 100, 100, 100),
             write("s2", "service", 60, 70, 80), write("r2", "raw", 100, 120, 140)]  # fmt: skip
    table = task_baseline.rounds(files)
    # pooled: service median of 60..110 is 85, raw 100; round 1: 100/100, round 2: 70/120
    assert "| /viggo | 256 | 85.0 [60.0-110.0] | 100.0 [100.0-140.0] | **0.85** | 1.00, 0.58 |" in table
    with pytest.raises(ValueError, match="in pairs, service first"):
        task_baseline.rounds([files[1], files[0]])
    plot = task_baseline.rounds_plot(files, tmp_path / "rounds.png")
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_frontend_cpu_finds_the_serving_process_and_nets_out_the_idle_rate() -> None:
    # A process tree like `bentoml serve`'s: the started command, and a descendant that runs BentoML's worker.
    grandchild = f"import time; time.sleep(60)  # {frontend_cpu.SERVICE_WORKER}"
    leader = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"]
    )
    try:
        deadline = time.monotonic() + 30
        while not psutil.Process(leader.pid).children(recursive=True) and time.monotonic() < deadline:
            time.sleep(0.1)
        (worker,) = psutil.Process(leader.pid).children(recursive=True)
        assert frontend_cpu.frontend_pid("service", leader.pid) == worker.pid
        assert frontend_cpu.frontend_pid("raw", leader.pid) == leader.pid  # raw vLLM serves from the started process
    finally:
        for process in [*psutil.Process(leader.pid).children(recursive=True), leader]:
            process.kill()
        leader.wait()
    lone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError, match=r"no _bentoml_impl\.worker\.service process"):
            frontend_cpu.frontend_pid("service", lone.pid)
    finally:
        lone.kill()
        lone.wait()
    # 8 ms gross, 2 s per request while the process burns 1.5 ms/s idle: 5 ms of the request's own
    assert frontend_cpu.net_ms_per_request(8.0, 1.5, 2.0) == pytest.approx(5.0)


def test_frontend_cpu_times_v1_requests_on_the_shared_server(server) -> None:
    # The shared service is this process' `bentoml serve`: its worker is found the way a measured service's is.
    worker = frontend_cpu.frontend_pid("service", os.getpid())
    figures = frontend_cpu.v1_level(server.url, worker, 16, api_key=server.api_key)
    assert figures["ok"] == figures["requests"] == 16
    assert figures["frontend_cpu_ms_per_request"] > 0  # 16 requests of 512 tokens: several 10 ms clock ticks
    assert 0 < figures["loop_cpu_ms_per_request"] <= figures["frontend_cpu_ms_per_request"] + 10  # one tick's slack


def test_gc_pauses_streams_v1_completions_to_the_shared_server(server) -> None:
    model = first_model(server.url, server.api_key)["id"]
    # 4 at a time against the shared service's 12 admitted: a client's next request can arrive while the handler of
    # its last one still holds that one's slot (it ends just after the stream's last byte), so 8 could meet a 429.
    assert asyncio.run(gc_pauses.stream_load(server.url, model, 24, 4, 4, api_key=server.api_key)) == 24


def test_label_scores_bench_gets_the_same_scores_both_ways(default_model_dir: Path) -> None:
    assert label_scores_bench.main() == 0  # non-zero where aligning by vLLM's texts changed a score


def test_task_baseline_reads_a_processs_cpu_time_and_reports_it_per_request(tmp_path: Path) -> None:
    """`--cpu-pid`: /proc's CPU time of the front-end process, the same clock as the process' own."""
    own, started = os.getpid(), time.process_time()
    before = task_baseline.cpu_seconds(own)
    while time.process_time() - started < 0.3:  # busy
        pass
    assert task_baseline.cpu_seconds(own) - before == pytest.approx(time.process_time() - started, abs=0.05)
    # The main thread's, to the nanosecond: the clock this thread reads for itself.
    loop_before, thread_started = task_baseline.loop_cpu_seconds(own), time.thread_time()
    while time.thread_time() - thread_started < 0.1:
        pass
    assert task_baseline.loop_cpu_seconds(own) - loop_before == pytest.approx(
        time.thread_time() - thread_started, abs=0.005
    )
    row = {"concurrency": 8, "request_throughput": 5.0, "p50_latency_ms": 1.0, "p99_latency_ms": 2.0}
    for target, cpu in (("service", 2.5), ("raw", 1.25)):
        run = {"target": target, "results": {"extract_entities": [row | {"frontend_cpu_ms_per_request": cpu}]}}
        (tmp_path / f"{target}.json").write_text(json.dumps(run))
    table = task_baseline.report([tmp_path / "service.json", tmp_path / "raw.json"])
    assert "| /extract_entities | 8 | 2.50 | 1.25 |" in table


def test_task_baseline_prep_times_the_services_own_work_per_request(tmp_path: Path) -> None:
    """`prep` runs the service's NER and ViGGO code up to the engine on every text and writes µs per request."""
    out = tmp_path / "prep.json"
    assert task_baseline.main(["prep", "--repeats", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {
        "extract_entities, tuned labelling adapter (the default)",
        "extract_entities, few-shot prompt (no labelling adapter)",
        "viggo, adapter",
    }
    assert results["viggo, adapter"]["requests"] == len(task_baseline.viggo_sentences())
    for figures in results.values():
        assert figures["requests"] > 0 and figures["us_per_request"] > 0


@pytest.mark.engine
def test_task_baseline_times_the_job_api(server) -> None:
    """`jobs` submits an NER and a ViGGO job through BentoML's task API and reports their manifests' records/s."""
    run = uuid.uuid4().hex[:8]
    s3 = server.moto.client()
    ner_key, viggo_key = f"bench-{run}/ner/records.jsonl", f"bench-{run}/viggo.csv"
    records = "".join(json.dumps({"id": f"r{k}", "text": text}) + "\n" for k, text in enumerate(load.SENTENCES[:3]))
    s3.put_object(Bucket=server.results_bucket, Key=ner_key, Body=records.encode())
    s3.put_object(Bucket=server.results_bucket, Key=viggo_key, Body=f"ref\n{load.VIGGO_SENTENCES[0]}\n".encode())
    args = task_baseline.parse_args([
        "jobs", "--url", server.url, "--api-key", server.api_key,
        "--ner-source", f"s3://{server.results_bucket}/bench-{run}/ner/",
        "--viggo-source", f"s3://{server.results_bucket}/{viggo_key}",
    ])  # fmt: skip
    manifests = task_baseline.run_jobs(args)
    assert manifests["extract_entities_job"]["counts"]["succeeded"] == 3
    assert manifests["viggo_job"]["counts"]["succeeded"] == 1
    for manifest in manifests.values():
        assert manifest["status"] == "completed" and manifest["records_per_s"] > 0


def test_gpu_bundle_pieces_fit_and_give_back_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file larger than a piece travels in chunks; the installer's join gives back every file byte for byte."""
    source, bundle, stage = tmp_path / "src", tmp_path / "bundle", tmp_path / "stage"
    files = {"vllm-so/big.so.xz": os.urandom(2_500), "wheels/a.whl": os.urandom(700), "wheels/b.whl": b"b" * 300}
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    bundle.mkdir()
    with tarfile.open(bundle / "part1.tar", "w") as tar:
        tar.add(source, arcname=".")
    monkeypatch.setattr(sys, "argv", ["gpu_bundle", str(bundle), "--max-mb", "0.001"])  # pieces of 1,000 bytes
    gpu_bundle.main()
    pieces = sorted(bundle.glob("piece*.tar"))
    assert len(pieces) == 4  # 2,500 bytes in three chunks, 700 + 300 in one piece
    for piece in pieces:
        with tarfile.open(piece) as tar:
            assert sum(member.size for member in tar.getmembers()) <= 1_000
            tar.extractall(stage, filter="data")
    assert (stage / "vllm-so" / "big.so.xz.chunk02").is_file()
    namespace: dict[str, object] = {}
    exec(gpu_bundle.JOIN, namespace)  # the installer's own join, as ib.py runs it
    namespace["join_chunks"](stage)  # type: ignore[operator]
    got = {str(p.relative_to(stage)): p.read_bytes() for p in stage.rglob("*") if p.is_file()}
    assert got == files
    installer = (bundle / "ib.py").read_text()
    assert "WANT = 4" in installer and "def join_chunks" in installer
    compile(installer, "ib.py", "exec")


def test_paired_interval_is_the_binomial_order_statistics_of_the_median() -> None:
    assert paired.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # n = 5: no 95% interval from order statistics
    assert paired.median_interval([6.0, 1.0, 5.0, 2.0, 4.0, 3.0]) == (1.0, 6.0)  # n = 6: min and max (96.9%)
    # n = 10: P(B <= 1) = 1.1% but P(B <= 2) = 5.5%, so the 2nd smallest and 2nd largest (97.9%).
    assert paired.median_interval([float(v) for v in range(10, 0, -1)]) == (2.0, 9.0)


def test_paired_summary_takes_the_median_of_the_paired_differences() -> None:
    def fig(ttft: float, tps: float, digest: str = "d") -> dict[str, object]:
        return {"failed": 0, "p50_ttft_ms": ttft, "output_throughput": tps, "outputs_sha256": digest}

    # Raw drifts from pair to pair; the service follows it 2 ms behind: a difference of medians would see the drift.
    raw_ttfts = [500.0, 560.0, 470.0, 530.0, 610.0, 490.0]
    pairs = [
        {"pair": i, "shape": "long", "concurrency": 64, "raw": fig(t, 100.0),
         "service": {"completions": fig(t + 2.0, 101.0), "generate": fig(t + 9.0, 99.0, "other")}}
        for i, t in enumerate(raw_ttfts)
    ]  # fmt: skip
    pairs.append({"pair": 6, "shape": "long", "concurrency": 64, "raw": {"failed": 3, "requests": 3, "ok": 0},
                  "service": {"completions": fig(1.0, 1.0), "generate": fig(1.0, 1.0)}})  # fmt: skip
    rows = {r["endpoint"]: r for r in paired.summarize(pairs)}
    v1, generate = rows["completions"], rows["generate"]
    assert v1["pairs"] == 6 and v1["failed_pairs"] == 1
    assert v1["ttft_p50_diff_median_ms"] == pytest.approx(2.0) and v1["ttft_p50_diff_ci95_ms"] == [2.0, 2.0]
    assert v1["ttft_p50_diff_within_target"] is True and v1["throughput_ratio_median"] == pytest.approx(1.01)
    assert v1["raw_ttft_p50_median_ms"] == pytest.approx(515.0) and v1["same_outputs"] == 6
    assert generate["ttft_p50_diff_median_ms"] == pytest.approx(9.0)
    assert generate["ttft_p50_diff_within_target"] is False
    assert generate["same_outputs"] == 0
    markdown = paired.table(list(rows.values()))
    expected = "| long | 64 | /v1/completions | 6 | +2.0 [+2.0, +2.0] | 515.0 | n/a | n/a | 1.010 [1.010-1.010] "
    expected += "| yes / n/a |"
    assert expected in markdown


def test_paired_splits_the_front_ends_share_of_ttft_from_the_engines() -> None:
    records = [{"error": None, "start": 10.0, "times": [10.0 + t, 11.0]} for t in (0.300, 0.310, 0.320)]
    fig: dict[str, object] = {}
    # vLLM's histogram counted the level's 3 requests, 0.9 s in all: 300 ms each at the engine, 310 at the client.
    paired.frontend_ttft(fig, records, before=(5.0, 7.0), after=(5.9, 10.0))
    assert fig["mean_ttft_ms"] == pytest.approx(310.0) and fig["engine_mean_ttft_ms"] == pytest.approx(300.0)
    assert fig["frontend_ttft_ms"] == pytest.approx(10.0)
    stray: dict[str, object] = {}  # a request from elsewhere counted too: no split rather than a wrong one
    paired.frontend_ttft(stray, records, before=(5.0, 7.0), after=(6.2, 11.0))
    assert stray["engine_ttft_requests"] == 4 and "frontend_ttft_ms" not in stray

    def fig_of(ttft: float, frontend: float, headers: float) -> dict[str, object]:
        return {"failed": 0, "p50_ttft_ms": ttft, "output_throughput": 1.0, "outputs_sha256": "d",
                "frontend_ttft_ms": frontend, "mean_headers_ms": headers}  # fmt: skip

    pairs = [{"pair": i, "shape": "s", "concurrency": 4, "raw": fig_of(100.0 + 40 * (i % 3), 6.0, 2.0 + i),
              "service": {"generate": fig_of(90.0 + 40 * (i % 2), 6.0 + 0.5 * i, 3.0 + i)}}
             for i in range(6)]  # fmt: skip
    (row,) = paired.summarize(pairs)
    assert row["raw_frontend_ttft_median_ms"] == 6.0 and row["service_frontend_ttft_median_ms"] == pytest.approx(7.25)
    assert row["frontend_ttft_diff_median_ms"] == pytest.approx(1.25)
    assert row["frontend_ttft_diff_ci95_ms"] == [0.0, 2.5]
    assert row["frontend_ttft_diff_within_target"] is True
    # The way in (to the response's headers), paired the same way: the service 1 ms later in every pair.
    assert row["headers_diff_median_ms"] == pytest.approx(1.0) and row["headers_diff_ci95_ms"] == [1.0, 1.0]
    assert row["raw_headers_median_ms"] == 4.5 and "headers_diff_within_target" not in row
    assert "| 6.0 / 7.2 | +1.2 [+0.0, +2.5] |" in paired.table([row])
    assert "| 4.5 / 5.5, +1.0 [+1.0, +1.0] |" in paired.table([row])


def test_paired_levels_without_metrics_get_no_front_end_split() -> None:
    # A server whose /metrics answers 404 (the service with BentoML's metrics off): no split, never a crash.
    class NoMetrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404 if self.path == "/metrics" else 500)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoMetrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert paired.engine_ttft(load.Target(url, "m", "t")) is None
        fig: dict[str, object] = {}
        records = [{"error": None, "start": 1.0, "times": [1.25, 2.0]}]
        paired.frontend_ttft(fig, records, None, None)
        assert fig == {"mean_ttft_ms": pytest.approx(250.0)}

        class Broken(NoMetrics):
            def do_GET(self) -> None:
                self.send_error(500)

        server.RequestHandlerClass = Broken
        with pytest.raises(urllib.error.HTTPError):  # any other failure still stops the run
            paired.engine_ttft(load.Target(url, "m", "t"))
    finally:
        server.shutdown()


def test_paired_merge_summarizes_the_pairs_of_several_runs_together(tmp_path: Path) -> None:
    def fig(ttft: float, frontend: float) -> dict[str, object]:
        return {"failed": 0, "p50_ttft_ms": ttft, "output_throughput": 1.0, "outputs_sha256": "d",
                "frontend_ttft_ms": frontend}  # fmt: skip

    runs = []
    for k in range(2):  # two runs of 3 pairs: too few for an interval alone, 6 together
        pairs = [{"pair": i, "shape": "long", "concurrency": 64, "raw": fig(500.0, 30.0),
                  "service": {"completions": fig(500.0 + i + 3 * k, 31.0 + i + 3 * k)}} for i in range(3)]  # fmt: skip
        path = tmp_path / f"run{k}.json"
        path.write_text(json.dumps({"date": f"2026-12-0{k + 1}", "pairs": pairs, "summary": paired.summarize(pairs)}))
        runs.append(path)
    assert json.loads(runs[0].read_text())["summary"][0]["frontend_ttft_diff_ci95_ms"] is None
    out, plot, by_load = tmp_path / "both.json", tmp_path / "both.png", tmp_path / "by-load.png"
    args = ["--merge", *map(str, runs), "--out", str(out), "--plot", str(plot), "--by-load", str(by_load)]
    assert paired.main(args) == 0
    merged = json.loads(out.read_text())
    assert merged["merged"] == [str(p) for p in runs] and merged["dates"] == ["2026-12-01", "2026-12-02"]
    (row,) = merged["summary"]
    assert row["pairs"] == 6 and row["frontend_ttft_diff_median_ms"] == pytest.approx(3.5)
    assert row["frontend_ttft_diff_ci95_ms"] == [1.0, 6.0] and row["ttft_p50_diff_median_ms"] == pytest.approx(2.5)
    assert plot.stat().st_size > 0 and by_load.stat().st_size > 0
    assert paired.frontend_points(merged["pairs"]) == [(30.0, 1.0 + i + 3 * k) for k in range(2) for i in range(3)]
    again = tmp_path / "again.json"  # a merge of a merge and a run: every date kept, every pair counted once
    assert paired.main(["--merge", str(out), str(runs[0]), "--out", str(again)]) == 0
    assert json.loads(again.read_text())["dates"] == ["2026-12-01", "2026-12-02", "2026-12-01"]
    assert json.loads(again.read_text())["summary"][0]["pairs"] == 9
    with pytest.raises(SystemExit):
        paired.parse_args(["--out", str(out)])  # neither servers nor runs to merge


@pytest.mark.engine
def test_paired_drives_both_servers_with_the_same_prompts(server, tmp_path: Path) -> None:
    # The shared service stands in for both sides: same engine, so every pair's answers must match.
    out = tmp_path / "paired.json"
    worker = server.worker_pid()
    code = paired.main([
        "--raw", server.url, "--service", server.url, "--api-key", server.api_key, "--shapes", "tiny:16:4",
        "--concurrency", "2", "--prompts", "C", "--pairs", "2", "--endpoints", "completions,generate",
        "--client-procs", "2", "--out", str(out), "--plot", str(tmp_path / "paired.png"),
        "--pids", f"{worker},{worker}",
    ])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert [(p["pair"], p["raw_first"]) for p in data["pairs"]] == [(0, True), (1, False)]
    for pair in data["pairs"]:
        assert pair["raw"]["ok"] == 2 and set(pair["service"]) == {"completions", "generate"}
        assert all(fig["ok"] == 2 for fig in pair["service"].values())
    rows = {r["endpoint"]: r for r in data["summary"]}
    assert rows["completions"]["pairs"] == 2 and rows["completions"]["same_outputs"] == 2
    assert rows["generate"]["same_outputs"] == 2  # /generate streams what /v1 does for the same greedy prompts
    assert rows["completions"]["ttft_p50_diff_ci95_ms"] is None  # two pairs: too few for an interval
    for pair in data["pairs"]:  # vLLM's own TTFT histogram counted each level's requests, on both sides
        for fig in [pair["raw"], *pair["service"].values()]:
            assert fig["engine_ttft_requests"] == 2 and 0 < fig["engine_mean_ttft_ms"] < fig["mean_ttft_ms"]
        # /v1's headers come before its text; /generate's with its first chunk, so it has no such split
        for fig in (pair["raw"], pair["service"]["completions"]):
            assert 0 < fig["mean_headers_ms"] <= fig["mean_ttft_ms"]
        assert "mean_headers_ms" not in pair["service"]["generate"]
    assert rows["generate"]["frontend_pairs"] == 2 and rows["generate"]["service_frontend_ttft_median_ms"] > 0
    assert (tmp_path / "paired.png").stat().st_size > 0
    for pair in data["pairs"]:  # the worker's event loop served every level: its CPU and switches counted
        for fig in [pair["raw"], *pair["service"].values()]:
            assert fig["sched"]["loop_cpu_ms"] > 0 and fig["sched"]["loop_voluntary"] > 0
            assert 0 <= fig["sched"]["host_steal_share"] <= fig["sched"]["host_busy_share"] + 1


_SPIN = "import time\nt = time.time()\nwhile time.time() - t < 30: sum(range(2000))\n"


def test_sched_tells_a_thread_trading_the_gil_from_one_working_alone() -> None:
    # Two real processes spin for a second: one alone, one with a second thread spinning beside its main thread.
    # Both threads want the GIL, so the main thread keeps sleeping on it: voluntary switches, the other thread's CPU.
    alone = subprocess.Popen([sys.executable, "-c", _SPIN])
    second_thread = f"import threading\nthreading.Thread(target=exec, args=({_SPIN!r},), daemon=True).start()\n"
    beside = subprocess.Popen([sys.executable, "-c", second_thread + _SPIN])
    try:
        time.sleep(1.0)
        before = {p.pid: sched.snapshot(p.pid) for p in (alone, beside)}
        time.sleep(1.5)
        after = {p.pid: sched.snapshot(p.pid) for p in (alone, beside)}
    finally:
        for p in (alone, beside):
            p.kill()
            p.wait()
    one, two = (sched.figures(before[p.pid], after[p.pid], requests=1) or {} for p in (alone, beside))
    assert one["loop_cpu_ms"] > 100 and two["loop_cpu_ms"] > 100  # both spun (a busy 2-core host shares them)
    assert one["others_cpu_ms"] < 50 < two["others_cpu_ms"]  # only the second has a thread that works
    assert two["loop_voluntary"] > one["loop_voluntary"] + 20  # the GIL handed over every 5 ms or so
    assert 0 <= one["host_steal_share"] <= 1 and 0 < one["host_busy_share"] <= 1
    # Once a process is gone its figures are None, and a level goes on without them.
    assert sched.figures(before[alone.pid], sched.snapshot(alone.pid), requests=1) is None


def test_gpu_scripts_shell_pieces_give_the_services_flags_and_wait_for_readiness(
    default_model_dir: Path, tmp_path: Path
) -> None:
    """bench/gpu_lib.sh, sourced by the GPU-host scripts: `raw_args` is serving.engine.vllm_cli_args of this
    environment's settings (what raw vLLM gets); `wait_ready` returns once a real server answers, 1 if it died."""
    from serving.engine import vllm_cli_args
    from serving.model_source import resolve_model
    from serving.settings import ServiceSettings

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # python3: this interpreter

    def lib(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", f"source bench/gpu_lib.sh; {script}"], env=env, capture_output=True, text=True, timeout=120
        )

    settings = ServiceSettings()
    assert lib("raw_args").stdout.split() == vllm_cli_args(settings, resolve_model(settings))

    port = servers.free_port()
    url = f"http://127.0.0.1:{port}/"
    web = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = lib(f"wait_ready web {url} {web.pid} /dev/null && echo ready")
        assert ready.returncode == 0 and ready.stdout.strip() == "ready"
    finally:
        web.terminate()
        web.wait()
    log = tmp_path / "dead.log"
    died = lib(f"python3 -c 'print(\"bad flag\")' >{log} 2>&1 & wait_ready dead {url} $! {log}")
    assert died.returncode == 1 and "dead died" in died.stdout and "bad flag" in died.stdout

    # `stop_tree`: a process group and what it started in a session of its own (as the service's arbiter is), all
    # gone: SIGTERM to the group, SIGKILL to the rest after the wait.
    tree = subprocess.Popen(["bash", "-c", "setsid sleep 300 & sleep 300"], start_new_session=True)
    deadline = time.monotonic() + 10
    # Both children: bash starts them one after the other, so waiting for the first alone raced the second.
    while len(psutil.Process(tree.pid).children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = [tree.pid, *(child.pid for child in psutil.Process(tree.pid).children(recursive=True))]
    assert len(members) == 3
    stopped = lib(f"stop_tree {tree.pid} 1")
    tree.wait(timeout=10)
    assert stopped.returncode == 0 and "killed what SIGTERM left" in stopped.stdout
    assert not [pid for pid in members[1:] if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    not_a_pid = lib("stop_tree ''")  # an empty pid file must not signal whatever `pgrep -P ''` finds
    assert not_a_pid.returncode == 2 and "not a pid" in not_a_pid.stdout

    # `serving_pid`: the process to profile, found by its command line (stand-ins named as the real ones are).
    for kind, name in (("raw", "bench.vllm_cli serve"), ("service", "_bentoml_impl.worker.service")):
        stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *name.split()])
        try:
            pid = int(lib(f"serving_pid {kind}").stdout)
            assert name in " ".join(psutil.Process(pid).cmdline())
        finally:
            stand_in.kill()
            stand_in.wait()


@pytest.mark.parametrize("via_mount", [False, True])
def test_asgi_layers_drives_v1_through_each_layer_of_the_service(tmp_path: Path, via_mount: bool) -> None:
    # A process of its own: it builds the service's ASGI app (importing service.py, no engine).
    out = tmp_path / "layers.json"
    flags = ["--via-mount"] if via_mount else []
    subprocess.run(
        [sys.executable, "-m", "bench.asgi_layers", "--requests", "32", "--concurrency", "8", "--reps", "1",
         "--out", str(out), *flags],
        check=True, timeout=300,
    )  # fmt: skip
    figures = json.loads(out.read_text())
    names = [row["layer"] for row in figures["layers"]]
    # Outermost BentoML's, then the front door, down to the stand-in for vLLM's app; every request answered 200.
    assert names[0] == "ServerErrorMiddleware" and names[-2:] == ["LateOpenAIApp", "FastAPI"]
    assert {"AdmissionMiddleware", "RequestLimitsMiddleware"} <= set(names)
    # BentoML's request metrics, outermost but for its error page, are the service's (serving/traffic_metrics.py).
    assert names[1] == "TrafficMetricsMiddleware" and "RunnerTrafficMetricsMiddleware" not in names
    # And its access log, the same line for less work (serving/access_log.py).
    modules = {row["layer"]: row["module"] for row in figures["layers"]}
    assert modules["AccessLogMiddleware"] == "serving.access_log"
    # BentoML's request timeout, in its place in BentoML's stack, is the service's (serving/request_timeout.py).
    assert "RequestTimeoutMiddleware" in names and "TimeoutMiddleware" not in names
    assert names.index("AccessLogMiddleware") + 1 == names.index("RequestTimeoutMiddleware")
    # Nothing traced under the default settings: BentoML's tracing middleware is left out (serving/tracing.py).
    assert "OpenTelemetryMiddleware" not in names
    if via_mount:
        assert "DirectToOpenAIApp" not in names and {"ContextMiddleware", "Router"} <= set(names)
    else:
        assert names[names.index("DirectToOpenAIApp") + 1] == "LateOpenAIApp"
        assert not {"JsonEndpointsMiddleware", "DisconnectMiddleware", "ContextMiddleware", "Router"} & set(names)
    assert all(row["us_from_here_in"] > 0 for row in figures["layers"])
    assert figures["extra_us"] == pytest.approx(figures["service_us"] - figures["stand_in_us"], abs=0.2)


def test_gcwatch_logs_the_collectors_pauses_and_gc_pauses_counts_those_after_the_freeze() -> None:
    # A process of its own with bench/gcwatch first on its path, as `gpu_run.sh` and `bench.gc_pauses` start servers:
    # a full collection before the heap is frozen (start-up's, not counted), the freeze, then two full ones over
    # cyclic garbage that outlived the young collections (what requests leave behind), and any the allocations started.
    script = """
import gc
keep = [[i] for i in range(20_000)]
gc.collect()
gc.freeze()
def made_after_the_freeze(): pass
for _ in range(2):
    junk = [[] for _ in range(5_000)]
    for item in junk:
        item.append(item)
    del junk
    gc.collect()
"""
    env = {**os.environ, "PYTHONPATH": str(gc_pauses.GCWATCH), "GCWATCH_TYPES": "3", "GCWATCH_NAMES": "function"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    pid = int(re.search(r"pid=(\d+)", run.stderr)[1])  # type: ignore[index]
    figures = gc_pauses.pauses(run.stderr, pid, until=time.time())
    assert figures["full_collections"] >= 2 and figures["full_ms_total"] >= figures["full_ms_max"] > 0
    assert figures["old_generation_objects"] is not None
    # GCWATCH_NAMES: the old generation's functions by name (the types line says `function:N` with no names)
    assert re.search(r"pid=\d+ function: .*made_after_the_freeze:1", run.stderr), run.stderr
    assert gc_pauses.pauses(run.stderr, pid + 1, until=time.time())["full_collections"] == 0
    # Totals of every collection after the freeze, from the first totals line after it (the first counted full
    # collection's, so the base includes that one): the full collections' count agrees with the pause lines'
    assert figures["gen2_collections"] == figures["full_collections"] - 1 and figures["gen2_ms"] > 0
    assert {"gen0_collections", "gen1_collections", "gen0_ms", "gen1_ms"} <= set(figures)
    assert re.search(r"totals frozen=\d+ gen0=\d+/[\d.]+ gen1=\d+/[\d.]+ gen2=\d+/[\d.]+", run.stderr)


def test_handlerwatch_times_vllms_output_handler_and_handler_cost_reads_it_per_output() -> None:
    # A process of its own with bench/handlerwatch first on its path, as `gpu_run.sh` and `bench.handler_cost` start
    # servers: vLLM's real classes, wrapped when imported; three steps of 4 outputs (for requests already gone, which
    # the processor skips after counting) and a decode each, over more than two seconds (a line a second at most).
    script = """
import time
from vllm.v1.engine import EngineCoreOutput
from vllm.v1.engine.output_processor import OutputProcessor
from vllm.v1.serial_utils import MsgpackDecoder, MsgpackEncoder
assert OutputProcessor.process_outputs.__wrapped__ and MsgpackDecoder.decode.__wrapped__
processor, decoder, frames = OutputProcessor(None, log_stats=False), MsgpackDecoder(), MsgpackEncoder().encode([1, 2])
for step in range(3):
    processor.process_outputs([EngineCoreOutput(request_id=f"gone-{i}", new_token_ids=[1]) for i in range(4)])
    assert decoder.decode(frames) == [1, 2]
    time.sleep(1.1)
"""
    env = {**os.environ, "PYTHONPATH": f"{handler_cost.HANDLERWATCH}{os.pathsep}{Path.cwd()}"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    pid = handler_cost.serving_process(run.stderr)
    # Lines come from inside the first call and then the first call a second later: from the first step's line to
    # the third's, two steps.
    figures = handler_cost.cost(run.stderr, pid)
    assert figures["outputs"] == 8 and figures["outputs_per_step"] == 4
    assert figures["process_outputs"]["calls"] == 2 and figures["decode"]["calls"] == 2
    assert figures["record"]["calls"] == 0 and figures["record"]["wall_us_per_call"] is None
    step = figures["process_outputs"]
    assert step["wall_ms"] > 0 and step["wall_us_per_output"] == pytest.approx(step["wall_ms"] * 1000 / 8, rel=0.01)
    with pytest.raises(ValueError, match="fewer than two"):
        handler_cost.cost(run.stderr, pid, until=0)
    same = handler_cost.compare(run.stderr, run.stderr)
    assert same["service_over_raw_per_output"] == {"decode": 1.0, "process_outputs": 1.0}
    with pytest.raises(ValueError, match="first on the server"):
        handler_cost.serving_process("a log without the watcher's lines")


def test_handler_cost_run_times_the_output_handler_of_a_server_it_starts(tmp_path: Path) -> None:
    # The README's CPU figures come from `python -m bench.handler_cost run`: raw vLLM started from this checkout with
    # the watcher on its path (`frontend_cpu.checkout_server`, shared with gc_pauses), streamed to, its serving
    # process' totals read between the load's start and end.
    argv = ["run", ".", "raw", "tiny", "--requests", "32", "--concurrency", "8", "--max-tokens", "16"]
    assert handler_cost.main([*argv, "--out-dir", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "tiny.json").read_text())
    assert data["ok"] == 32 and data["system"] == "raw"
    # The warm-up's outputs come before the base line; the window holds most of the load's 32 x 16.
    assert 0 < data["outputs"] <= 32 * 16
    for step in ("decode", "process_outputs", "record"):
        assert data[step]["calls"] > 0 and data[step]["wall_us_per_call"] > 0, step
    assert data["process_outputs"]["wall_us_per_output"] > 0 and data["outputs_per_step"] >= 1
    assert "tiny (raw): 32/32 streams of 16 tokens at 8" in (tmp_path / "summary.txt").read_text()


def test_the_readmes_bentoml_config_turns_the_access_log_off(tmp_path: Path) -> None:
    # README, "Configuration": BentoML's own configuration, not a setting of the service; metrics stay.
    config = tmp_path / "bentoml.yaml"
    config.write_text("services: {llm-extraction: {logging: {access: {enabled: false}}}}\n")
    out = tmp_path / "layers.json"
    subprocess.run(
        [sys.executable, "-m", "bench.asgi_layers", "--requests", "16", "--concurrency", "8", "--reps", "1",
         "--out", str(out)],
        check=True, timeout=300, env={**os.environ, "BENTOML_CONFIG": str(config)},
    )  # fmt: skip
    names = [row["layer"] for row in json.loads(out.read_text())["layers"]]
    assert "AccessLogMiddleware" not in names and "TrafficMetricsMiddleware" in names


LAYER_AB_LINES = {
    "otel": ["OpenTelemetry middleware, every URL excluded"],
    "metrics": ["BentoML's metrics middleware against none", "TrafficMetricsMiddleware against BentoML's"],
    "access-log": ["BentoML's access log against none", "AccessLogMiddleware against BentoML's"],
}


@pytest.mark.parametrize("subject", sorted(LAYER_AB_LINES))
def test_layer_ab_times_each_layer_against_its_alternative(subject: str, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    out = subprocess.run(
        [sys.executable, "-m", "bench.layer_ab", subject, "--reps", "3", "--requests", "64", "--concurrency", "16",
         "--log-file", str(log)],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    # A line per A/B: its median difference per request and the quartiles over the rounds (every request 200).
    figure = r"[+-][\d.]+ us per request \[-?[\d.]+, -?[\d.]+\], 3 rounds\n"
    assert re.fullmatch("".join(re.escape(what) + ": " + figure for what in LAYER_AB_LINES[subject]), out), out
    if subject == "access-log":  # both access logs wrote their lines, in BentoML's server format, to the file:
        lines = log.read_text().splitlines()  # BentoML's in both A/Bs, ours in one; 16 warm-up and 3 x 64 each time
        assert len(lines) == 3 * (16 + 3 * 64)
        assert all(re.fullmatch(ACCESS_LINE, line) for line in lines), lines[:3]
    else:
        assert not log.exists() or not log.read_text()


# BentoML's server log format with its access line: time, level, component, client, request, response, latency.
ACCESS_LINE = (
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[INFO\] \[[^]]*\] 127\.0\.0\.1:40000 "
    r"\(scheme=http,method=POST,path=/v1/completions\) \(status=200\) \d+\.\d{3}ms"
)


def test_cpu_lora_times_the_base_model_and_the_adapter_on_the_same_prompts() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.cpu_lora", "--prompts", "2", "--repeat", "2", "--rounds", "1",
         "--step-tokens", "64", "--max-tokens", "3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    lines = [line for line in out.splitlines() if re.match(r"(base|LoRA ner-smollm2): ", line)]
    assert len(lines) == 2 and lines[0].startswith("base: ") and lines[1].startswith("LoRA ner-smollm2: "), out
    # The same prompts both times: the same count of prompt tokens, each batch timed, with its decoding.
    figures = [re.fullmatch(r".*: (\d+) prompt tokens and 2 x 3 output tokens in ([\d.]+) s", line) for line in lines]
    assert all(figures) and figures[0][1] == figures[1][1] and int(figures[0][1]) > 50  # type: ignore[index]
    assert all(float(match[2]) > 0 for match in figures if match)
    assert "step 64" in out  # the prompts (~100 tokens) took more than one step of the budget asked for


def test_engine_metrics_times_vllms_stat_logger_in_each_mode() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.engine_metrics", "--steps", "16", "--output-tokens", "8", "--batch", "4",
         "--rounds", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    figures = re.findall(r"^(memory|files|files, engine in memory): ([\d.]+) us/step", run.stdout, re.MULTILINE)
    assert [mode for mode, _ in figures] == ["memory", "files", "files, engine in memory"], run.stdout
    assert all(float(us) > 0 for _, us in figures), run.stdout


def test_spy_diff_compares_the_event_loops_by_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = "main (uvicorn/main.py:1);run (asyncio/runners.py:118)"
    raw = tmp_path / "raw.txt"
    raw.write_text(f"{loop};handle (app.py:10);observe (metrics.py:5) 10\n{loop};handle (app.py:12) 30\n"
                   "worker (threading.py:9) 500\n")  # fmt: skip
    service = tmp_path / "service.txt"
    service.write_text(f"{loop};handle (app.py:10);observe (metrics.py:5) 20\n{loop};handle (app.py:10) 20\n")
    assert spy_diff.main([str(raw), str(service)]) == 0
    out = capsys.readouterr().out
    assert "event-loop samples: raw 40, service 40" in out  # the other thread's stacks are not the loop's
    # One function, counted once per stack whatever its line: 25% of raw's loop, 50% of the service's.
    assert "| +25.0 pp | 25.0% | 50.0% | `observe @metrics.py` |" in out
    assert "handle @app.py" not in out and "runners" not in out  # in every stack of both: how the loop runs
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(SystemExit):  # a file with no loop stacks is an error, not a table of nothing
        spy_diff.main([str(raw), str(empty)])


def test_a_sigterm_to_a_bench_stops_the_server_it_started(tmp_path: Path) -> None:
    # A bench stopped by `timeout` or a cancelled job must not leave its server (in a session of its own) serving.
    port = servers.free_port()
    server = (
        "import http.server, sys; port = int(sys.argv[sys.argv.index('--port') + 1]); "
        "http.server.HTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    bench = f"""
import sys, time
from pathlib import Path
from bench import servers
cmd = [sys.executable, "-c", {server!r}, "--port", "{port}"]
with servers.started("web", cmd, {{}}, Path({str(tmp_path / "web.log")!r}), "/", cwd=Path({str(tmp_path)!r})) as s:
    print(s.pid, flush=True)
    time.sleep(120)
"""
    run = subprocess.Popen([sys.executable, "-c", bench], cwd=servers.REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        ready = run.stdout.readline()  # "web ready at ... after N s"
        pid = int(run.stdout.readline())
        assert "ready" in ready
        os.kill(run.pid, signal.SIGTERM)
        assert run.wait(timeout=90) == 128 + signal.SIGTERM
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the server's group was stopped and reaped
    finally:
        run.kill()
        run.wait()
