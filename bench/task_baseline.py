"""The task endpoints against raw vLLM: the same engine requests, with and without the service around them.

The engine requests /extract_entities and /viggo make are recorded by the service's own code (`ner.extractor`,
`viggo.predictor`) on a renderer that records instead of generating: same chat template, same token ids, same
structured-output constraint, same sampling parameters. Then one of three targets is driven with the same texts:

- `service`: the service's /extract_entities and /viggo (`{"text", "persist": false}`, `{"sentence"}`);
- `raw`: raw `vllm serve`'s /v1/completions with the recorded requests (token-id prompt, `structured_outputs`,
  the adapter as the model name: start it with `--lora-modules viggo=PATH ner=PATH`, the NER labelling adapter
  being the service's default where it ships one);
- `offline`: ViGGO's recorded requests through vLLM's offline `LLM.generate`, all at once (what a batch
  evaluation without a server does);
- `jobs`: the service's extraction job API (`/extract_entities_job`, `/viggo_job`) over corpora of the same texts,
  records/s from the job manifests;
- `prep`: no engine and no HTTP: the microseconds per request of the service's own work before its engine request
  (candidate proposal, prompt messages, chat template, token ids, constraint), in this process.

No NER or ViGGO logic runs in the timed loop of `raw`, so service/raw is what the service's own work per
request (candidate proposal, grounding, validation, HTTP) costs. Texts: NER the frozen held-out sentences
(`ner/data/heldout*.jsonl`), ViGGO the sentences of a ViGGO CSV (`ref` column); request k of a level is text
k mod n on every target.

    python -m bench.task_baseline service --url http://127.0.0.1:3000 --concurrency 16,64,256 --out svc.json
    python -m bench.task_baseline raw --url http://127.0.0.1:8000 --adapter viggo --concurrency 16,64,256 --out raw.json
    python -m bench.task_baseline offline --adapter viggo=finetune/adapters/viggo-smollm2 --out offline.json
    python -m bench.task_baseline jobs --url http://127.0.0.1:3000 --corpus-dir /srv/in --records 4096 --out jobs.json
    python -m bench.task_baseline prep --out prep.json                        # the service's own work, µs per request
    python -m bench.task_baseline report svc.json raw.json offline.json jobs.json   # the table, ratios service/raw
    python -m bench.task_baseline rounds svc1.json raw1.json svc2.json raw2.json ... --plot r.png  # rounds, pooled
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import sched
from bench.cli import first_model
from bench.load import VIGGO_SENTENCES, auth_headers, drive
from serving.generation import AdapterResolver, PromptRenderer
from serving.paths import REPO_ROOT, VIGGO_DATA

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

NER_TEXT_FILES = (REPO_ROOT / "ner" / "data" / "heldout.jsonl", REPO_ROOT / "ner" / "data" / "heldout2.jsonl")
VIGGO_CSV = VIGGO_DATA / "valid.csv"
# The structured-output fields the service sets; the rest of StructuredOutputsParams stays at its default.
CONSTRAINT_FIELDS = ("json", "regex", "choice", "grammar", "disable_any_whitespace")


@dataclass(frozen=True)
class EngineRequest:
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None


class _Recorded(Exception):
    """Raised by the recorder in place of an answer: the caller's work before the engine is what is kept."""


class _NamedAdapters:
    """Every adapter name stands for an adapter (raw vLLM loads the real one): the recorded prompt is the one the
    service builds for an adapter, not for the base model."""

    async def resolve(self, name: str | None) -> LoRARequest | None:
        from vllm.lora.request import LoRARequest

        return LoRARequest(name, 1, "/recorded") if name else None


class RecordingRenderer(PromptRenderer):
    """A `TextGenerator` that keeps each engine request it is given and answers none."""

    def __init__(self, tokenizer: Any, max_model_len: int) -> None:
        super().__init__(tokenizer, max_model_len)
        self.adapters: AdapterResolver = _NamedAdapters()
        self.requests: list[EngineRequest] = []

    async def complete(self, prompt_ids: Sequence[int], params: SamplingParams, *, adapter: str | None = None) -> Any:
        self.requests.append(EngineRequest(list(prompt_ids), params, adapter))
        raise _Recorded


def ner_texts(paths: Sequence[Path] = NER_TEXT_FILES) -> list[str]:
    return [json.loads(line)["text"] for path in paths for line in path.read_text().splitlines() if line.strip()]


def viggo_sentences(path: Path = VIGGO_CSV) -> list[str]:
    """The CSV's sentences, or the few of `bench.load` where the ViGGO data is not beside the checkout."""
    if not path.is_file():
        return list(VIGGO_SENTENCES)
    with path.open(newline="") as f:
        return [row["ref"] for row in csv.DictReader(f)]


def _record_each(
    texts: Sequence[str], make: Callable[[str], Any], recorder: RecordingRenderer
) -> list[tuple[str, EngineRequest]]:
    """Each text with its engine request. A text the service answers without the engine (no candidate names)
    is left out on every target; a text of several parts would not be one request's work: refused."""
    out = []
    for text in texts:
        before = len(recorder.requests)
        with contextlib.suppress(_Recorded):
            asyncio.run(make(text))
        made = len(recorder.requests) - before
        if made > 1:
            raise ValueError(f"{made} engine requests for {text!r}; expected one (a sentence)")
        if made == 1:
            out.append((text, recorder.requests[-1]))
    return out


def record(
    tokenizer: Any, texts: Sequence[str], sentences: Sequence[str], adapter: str | None
) -> dict[str, list[tuple[str, EngineRequest]]]:
    """The service's engine request for each NER text and ViGGO sentence, made with its default settings."""
    from ner.extractor import EntityExtractor
    from serving.settings import ServiceSettings
    from viggo.predictor import ViggoPredictor

    settings = ServiceSettings()
    recorder = RecordingRenderer(tokenizer, settings.max_model_len)
    extractor = EntityExtractor(
        recorder, max_text_chars=settings.max_text_chars, labelling_adapter=settings.ner_adapter
    )
    predictor = ViggoPredictor(recorder, span_values=settings.viggo_span_values)
    return {
        "extract_entities": _record_each(texts, extractor.extract, recorder),
        "viggo": _record_each(sentences, lambda s: predictor.predict(s, adapter), recorder),
    }


def completion_body(request: EngineRequest, model: str) -> dict[str, Any]:
    """The recorded request as raw vLLM's /v1/completions takes it."""
    params = request.params
    body: dict[str, Any] = {
        "model": request.adapter or model,
        "prompt": request.prompt_ids,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.logprobs is not None:
        body["logprobs"] = params.logprobs
    if params.structured_outputs is not None:
        constraint = {name: getattr(params.structured_outputs, name, None) for name in CONSTRAINT_FIELDS}
        body["structured_outputs"] = {name: value for name, value in constraint.items() if value}
    return body


def service_body(task: str, text: str) -> dict[str, Any]:
    return {"text": text, "persist": False} if task == "extract_entities" else {"sentence": text}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads, its child processes (vLLM's engine core) not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def loop_cpu_seconds(pid: int) -> float:
    """CPU time of process `pid`'s main thread, where uvicorn runs the event loop (the tokenizer and other threads
    left out), to the nanosecond (/proc's schedstat: the scheduler's own accounting, not 10 ms clock ticks)."""
    times = sched.thread_times(pid, pid)
    if times is None:
        raise ProcessLookupError(f"no process {pid}")
    return times.cpu_ns / 1e9


def timed_level(
    url: str,
    headers: dict[str, str],
    bodies: list[dict[str, Any]],
    c: int,
    cpu_pid: int | None,
    warm_up: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One load at concurrency `c` after one warm-up request (default: the load's first body), with `cpu_pid`'s CPU
    time per request when given."""
    drive(url, headers, [warm_up or bodies[0]], 1, timeout_s=600)  # warm-up (the grammar's first compilation)
    before = (cpu_seconds(cpu_pid), loop_cpu_seconds(cpu_pid)) if cpu_pid else (0.0, 0.0)
    figures = drive(url, headers, bodies, c)
    figures.pop("output_tokens", None)
    if cpu_pid:
        # The front end's own work per request (HTTP, the service's code, vLLM's input and output processing),
        # which at high request rates bounds throughput while the GPU waits; the event loop's share of it is what
        # a burst of new requests queues behind.
        figures["frontend_cpu_ms_per_request"] = round((cpu_seconds(cpu_pid) - before[0]) * 1000 / len(bodies), 3)
        figures["loop_cpu_ms_per_request"] = round((loop_cpu_seconds(cpu_pid) - before[1]) * 1000 / len(bodies), 4)
    return figures


def median_row(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """The repetition with the median request rate, and every repetition's rate and p50 beside it."""
    ranked = sorted(reps, key=lambda row: row["request_throughput"])
    kept = ("request_throughput", "p50_latency_ms", "frontend_cpu_ms_per_request")
    return ranked[(len(ranked) - 1) // 2] | {"repetitions": [{key: r[key] for key in kept if key in r} for r in reps]}


def run_http(args: argparse.Namespace, tokenizer: Any) -> dict[str, Any]:
    headers = auth_headers(args.api_key)
    recorded = record(tokenizer, ner_texts(), viggo_sentences(args.viggo_csv), args.adapter)
    if args.target == "raw":
        model = args.model_name or first_model(args.url, args.api_key)["id"]
    results: dict[str, Any] = {}
    for task, items in recorded.items():
        if task not in args.tasks:
            continue
        rows = []
        for c in args.concurrency:
            n = args.requests_per_level * c
            picked = [items[k % len(items)] for k in range(n)]
            if args.target == "raw":
                url, bodies = f"{args.url}/v1/completions", [completion_body(request, model) for _, request in picked]
            else:
                url, bodies = f"{args.url}/{task}", [service_body(task, text) for text, _ in picked]
            reps = []
            for rep in range(args.repeats):
                reps.append(timed_level(url, headers, bodies, c, args.cpu_pid))
                cpu = reps[-1].get("frontend_cpu_ms_per_request")
                print(f"[task-baseline] {args.target} {task} c={c} rep {rep + 1}/{args.repeats}: {reps[-1]['ok']}/{n} "
                      f"ok, {reps[-1]['request_throughput']:.1f} req/s, p50 {reps[-1]['p50_latency_ms']:.0f} ms"
                      + (f", front end {cpu:.2f} CPU ms/request" if cpu is not None else ""), flush=True)  # fmt: skip
            rows.append(median_row(reps) | {"texts": len(items)})
        results[task] = rows
    return results


def run_offline(args: argparse.Namespace, tokenizer: Any) -> dict[str, Any]:
    """ViGGO's recorded requests through `LLM.generate`, the engine built from the service's own flags."""
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.request import LoRARequest

    from serving.engine import serve_namespace
    from serving.settings import ServiceSettings

    name, _, path = (args.adapter or "").partition("=")
    engine_args = EngineArgs.from_cli_args(serve_namespace(ServiceSettings())[0])
    llm = LLM(**{key: getattr(engine_args, key) for key in vars(engine_args)})
    sentences = viggo_sentences(args.viggo_csv)[: args.sentences]
    requests = [request for _, request in record(tokenizer, [], sentences, name or None)["viggo"]]
    lora = LoRARequest(name, 1, str(Path(path).resolve())) if path else None
    prompts: list[Any] = [{"prompt_token_ids": r.prompt_ids} for r in requests]
    llm.generate(prompts[:1], [requests[0].params], lora_request=lora, use_tqdm=False)  # warm-up
    started = time.perf_counter()
    outputs = llm.generate(prompts, [r.params for r in requests], lora_request=lora, use_tqdm=False)
    wall = time.perf_counter() - started
    print(f"[task-baseline] offline viggo: {len(outputs)} sentences in {wall:.2f} s = {len(outputs) / wall:.1f}/s")
    return {
        "viggo_offline": {"sentences": len(outputs), "duration": round(wall, 3), "sentences_per_s": len(outputs) / wall}
    }


def run_prep(args: argparse.Namespace, tokenizer: Any) -> dict[str, Any]:
    """The service's own work before each engine request, per prompt the service builds: best of `--repeats` passes
    over all texts in one event loop (an `asyncio.run` per text would cost more than some of what is timed)."""
    from ner.extractor import EntityExtractor
    from serving.settings import ServiceSettings
    from viggo.predictor import ViggoPredictor

    settings = ServiceSettings()
    recorder = RecordingRenderer(tokenizer, settings.max_model_len)

    def extractor(adapter: str | None) -> EntityExtractor:
        return EntityExtractor(recorder, max_text_chars=settings.max_text_chars, labelling_adapter=adapter)

    predictor = ViggoPredictor(recorder, span_values=settings.viggo_span_values)
    texts, sentences = ner_texts(), viggo_sentences(args.viggo_csv)
    cases: dict[str, tuple[Callable[[str], Any], list[str]]] = {
        "extract_entities, tuned labelling adapter (the default)": (extractor(settings.ner_adapter).extract, texts),
        "extract_entities, few-shot prompt (no labelling adapter)": (extractor(None).extract, texts),
        "viggo, adapter": (lambda s: predictor.predict(s, settings.viggo_adapter), sentences),
    }

    async def each(make: Callable[[str], Any], items: list[str]) -> None:
        for item in items:
            with contextlib.suppress(_Recorded):
                await make(item)

    results: dict[str, Any] = {}
    for case, (make, items) in cases.items():
        asyncio.run(each(make, items))  # warm: the tokenizer's cache, the grammar's compilation
        passes = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            asyncio.run(each(make, items))
            passes.append((time.perf_counter() - started) / len(items) * 1e6)
        results[case] = {"requests": len(items), "us_per_request": round(min(passes), 1)}
        print(f"[task-baseline] prep {case}: {min(passes):.0f} µs per request (best of {args.repeats}, "
              f"{len(items)} texts)", flush=True)  # fmt: skip
    return results


def write_corpora(folder: Path, records: int, viggo_csv: Path = VIGGO_CSV) -> dict[str, str]:
    """`records` NER texts (JSONL) and ViGGO sentences (CSV), the benchmark's texts in turn; the job sources."""
    texts, sentences = ner_texts(), viggo_sentences(viggo_csv)
    (folder / "ner").mkdir(parents=True, exist_ok=True)
    (folder / "viggo").mkdir(parents=True, exist_ok=True)
    with (folder / "ner" / "records.jsonl").open("w") as out:
        for k in range(records):
            out.write(json.dumps({"id": f"ner-{k}", "text": texts[k % len(texts)]}) + "\n")
    with (folder / "viggo" / "sentences.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["ref"])
        writer.writerows([sentences[k % len(sentences)]] for k in range(records))
    return {"extract_entities_job": str(folder / "ner"), "viggo_job": str(folder / "viggo" / "sentences.csv")}


def run_job(url: str, headers: dict[str, str], endpoint: str, source: str, timeout_s: float = 1800) -> dict[str, Any]:
    """Submit one job through BentoML's task API, wait for it, and return its manifest."""
    import httpx

    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        submitted = client.post(f"/{endpoint}/submit", json={"source": source, "overwrite": True})
        submitted.raise_for_status()
        task_id = submitted.json()["task_id"]
        deadline = time.monotonic() + timeout_s
        while (status := client.get(f"/{endpoint}/status", params={"task_id": task_id}).json()["status"]) in (
            "pending",
            "in_progress",
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{endpoint} job {task_id} still {status} after {timeout_s} s")
            time.sleep(0.5)
        manifest = client.get(f"/{endpoint}/get", params={"task_id": task_id}).json()
    print(f"[task-baseline] {endpoint}: {status}, {manifest.get('counts')}, {manifest.get('records_per_s')} records/s")
    return {"status": status, **manifest}


def run_jobs(args: argparse.Namespace) -> dict[str, Any]:
    headers = auth_headers(args.api_key)
    sources = {"extract_entities_job": args.ner_source, "viggo_job": args.viggo_source}
    if args.corpus_dir:
        sources = write_corpora(args.corpus_dir, args.records, args.viggo_csv) | {k: v for k, v in sources.items() if v}
    return {endpoint: run_job(args.url, headers, endpoint, source) for endpoint, source in sources.items() if source}


def _rates(row: dict[str, Any]) -> list[float]:
    return [rep["request_throughput"] for rep in row.get("repetitions", [])]


def _spread(row: dict[str, Any]) -> str:
    """` [min-max]` over the repetitions, empty for a single run."""
    rates = _rates(row)
    return f" [{min(rates):.1f}-{max(rates):.1f}]" if len(rates) > 1 else ""


def _ratio_spread(s_row: dict[str, Any], r_row: dict[str, Any]) -> str:
    """` [min-max]` of the ratios of the k-th repetitions (each pair ran the same requests)."""
    ratios = [s / r for s, r in zip(_rates(s_row), _rates(r_row), strict=False) if r]
    return f" [{min(ratios):.2f}-{max(ratios):.2f}]" if len(ratios) > 1 else ""


def report(paths: Sequence[Path]) -> str:
    """Markdown: per task and concurrency, requests/s of each target and service/raw."""
    runs = {data["target"]: data for data in (json.loads(p.read_text()) for p in paths)}
    lines = [
        "| task | concurrency | service req/s | raw vLLM req/s | service / raw "
        "| service p50 / p99 ms | raw p50 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    service, raw = runs.get("service", {}).get("results", {}), runs.get("raw", {}).get("results", {})
    for task in ("extract_entities", "viggo"):
        for s_row, r_row in zip(service.get(task, []), raw.get(task, []), strict=False):
            ratio = s_row["request_throughput"] / r_row["request_throughput"] if r_row["request_throughput"] else 0
            lines.append(
                f"| /{task} | {s_row['concurrency']} | {s_row['request_throughput']:.1f}{_spread(s_row)} | "
                f"{r_row['request_throughput']:.1f}{_spread(r_row)} | **{ratio:.2f}**{_ratio_spread(s_row, r_row)} | "
                f"{s_row['p50_latency_ms']:.0f} / {s_row['p99_latency_ms']:.0f} | "
                f"{r_row['p50_latency_ms']:.0f} / {r_row['p99_latency_ms']:.0f} |"
            )
    cpu_rows = [
        f"| /{task} | {s_row['concurrency']} | {s_row['frontend_cpu_ms_per_request']:.2f} | "
        f"{r_row['frontend_cpu_ms_per_request']:.2f} |"
        for task in ("extract_entities", "viggo")
        for s_row, r_row in zip(service.get(task, []), raw.get(task, []), strict=False)
        if "frontend_cpu_ms_per_request" in s_row and "frontend_cpu_ms_per_request" in r_row
    ]
    if cpu_rows:
        lines += ["", "| task | concurrency | service front-end CPU ms/request | raw vLLM front-end CPU ms/request |",
                  "|---|---:|---:|---:|", *cpu_rows]  # fmt: skip
    for endpoint, manifest in runs.get("jobs", {}).get("results", {}).items():
        lines.append(f"\n`/{endpoint}` over {manifest['counts']['read']} records: {manifest['status']}, "
                     f"{manifest['records_per_s']} records/s ({manifest['counts']}).")  # fmt: skip
    if offline := runs.get("offline", {}).get("results", {}).get("viggo_offline"):
        lines.append(f"\nViGGO through offline `LLM.generate` (all {offline['sentences']} sentences at once): "
                     f"{offline['sentences_per_s']:.1f} sentences/s ({offline['duration']} s).")  # fmt: skip
    return "\n".join(lines)


def round_rows(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Several rounds (pairs of service and raw files, each pair one after the other on one machine), per task and
    concurrency: every repetition's request rate of each system pooled, the ratio of the pooled medians, and each
    round's ratio of medians."""
    runs = [json.loads(p.read_text()) for p in paths]
    targets = [run["target"] for run in runs]
    if not runs or targets != ["service", "raw"] * (len(runs) // 2):
        raise ValueError(f"rounds: pass service and raw files in pairs, service first (got {targets})")
    pairs = [(s["results"], r["results"]) for s, r in zip(runs[::2], runs[1::2], strict=True)]
    rows = []
    for task in ("extract_entities", "viggo"):
        for level, first in enumerate(pairs[0][0].get(task, [])):
            s_rows = [service[task][level] for service, _ in pairs]
            r_rows = [raw[task][level] for _, raw in pairs]
            s_all = [rate for row in s_rows for rate in _rates(row)]
            r_all = [rate for row in r_rows for rate in _rates(row)]
            rows.append({
                "task": task, "concurrency": first["concurrency"], "service": s_all, "raw": r_all,
                "pooled": statistics.median(s_all) / statistics.median(r_all),
                "each": [s["request_throughput"] / r["request_throughput"]
                         for s, r in zip(s_rows, r_rows, strict=True)],
            })  # fmt: skip
    return rows


def rounds(paths: Sequence[Path]) -> str:
    """Markdown: the pooled medians [min-max], their ratio, and each round's own ratio. One round's ratio swings with
    the machine's state (which system ran first, a level's first batch shapes); the pooled figure and the per-round
    spread together say what holds."""
    lines = [
        f"| task | concurrency | service req/s, {len(paths) // 2} rounds | raw vLLM req/s | service / raw "
        "| each round's service / raw |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in round_rows(paths):
        s_all, r_all = row["service"], row["raw"]
        lines.append(
            f"| /{row['task']} | {row['concurrency']} | {statistics.median(s_all):.1f} [{min(s_all):.1f}-"
            f"{max(s_all):.1f}] | {statistics.median(r_all):.1f} [{min(r_all):.1f}-{max(r_all):.1f}] | "
            f"**{row['pooled']:.2f}** | " + ", ".join(f"{ratio:.2f}" for ratio in row["each"]) + " |"
        )
    return "\n".join(lines)


def rounds_plot(paths: Sequence[Path], out: Path, target: float = 0.95) -> Path:
    """Service / raw per task and concurrency: each round's ratio (dots) and the pooled medians' ratio (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = round_rows(paths)
    fig, ax = plt.subplots(figsize=(7, 4))
    for x, row in enumerate(rows):
        ax.bar(x, row["pooled"], color="tab:blue", alpha=0.6, label="pooled medians" if x == 0 else None)
        ax.plot([x] * len(row["each"]), row["each"], "ko", ms=4, label="one round" if x == 0 else None)
    ax.axhline(target, color="tab:red", ls="--", label=f"target {target}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(rows)), [f"/{r['task']}\nc={r['concurrency']}" for r in rows])
    ax.set_ylabel("service / raw vLLM, requests/s")
    ax.set_ylim(0, max(1.3, *(ratio for row in rows for ratio in row["each"])) + 0.05)
    ax.set_title(f"Task endpoints against raw vLLM, {len(paths) // 2} rounds")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=["service", "raw", "offline", "jobs", "prep", "report", "rounds"])
    parser.add_argument("files", nargs="*", type=Path,
                        help="report: the results JSON files; rounds: service and raw files in pairs")  # fmt: skip
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--model-name", default=None, help="raw: the served model (default: /v1/models' first)")
    parser.add_argument("--adapter", default=None, help="raw: the ViGGO adapter's served name; offline: NAME=PATH")
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[16, 64, 256])
    parser.add_argument("--tasks", type=lambda s: s.split(","), default=["extract_entities", "viggo"])
    parser.add_argument("--repeats", type=int, default=1, help="run each level this many times (median reported)")
    parser.add_argument("--requests-per-level", type=int, default=4, help="requests per level = this x concurrency")
    parser.add_argument("--sentences", type=int, default=1024, help="offline: ViGGO sentences generated at once")
    parser.add_argument("--viggo-csv", type=Path, default=VIGGO_CSV)
    parser.add_argument("--corpus-dir", type=Path, default=None, help="jobs: write the corpora here (a job input root)")
    parser.add_argument("--records", type=int, default=2048, help="jobs: records per corpus")
    parser.add_argument("--ner-source", default=None, help="jobs: an existing NER corpus the service can read")
    parser.add_argument("--viggo-source", default=None, help="jobs: an existing ViGGO corpus the service can read")
    parser.add_argument("--cpu-pid", type=int, default=None,
                        help="service/raw: the front-end process (BentoML's worker; raw vLLM's API server) whose CPU "
                        "time per request is recorded")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="rounds: also this PNG of the ratios")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.target == "report":
        print(report(args.files))
        return 0
    if args.target == "rounds":
        print(rounds(args.files))
        if args.plot:
            print(rounds_plot(args.files, args.plot))
        return 0
    if args.target == "jobs":
        _write(args, run_jobs(args))
        return 0
    from transformers import AutoTokenizer

    from serving.engine import resolve_model
    from serving.settings import ServiceSettings

    # The tokenizer the service's engine loads: the same model folder.
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(ServiceSettings()).path)
    run = {"offline": run_offline, "prep": run_prep}.get(args.target, run_http)
    _write(args, run(args, tokenizer))
    return 0


def _write(args: argparse.Namespace, results: dict[str, Any]) -> None:
    data = {
        "target": args.target,
        "machine": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "concurrency": args.concurrency,
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
