"""Load against one OpenAI-compatible URL (raw `vllm serve` or the service), already running.

- `serving_load`: vLLM's own `vllm bench serve` (random prompts, streaming /v1/completions, ignore_eos) at
  each concurrency; figures: request throughput, output tokens/s, TTFT / TPOT / ITL / end-to-end p50, p99.
- `structured_load`: the same chat prompts through /v1/chat/completions, free and JSON-schema-constrained
  (`response_format` json_schema), same max_tokens; output tokens/s of each and their ratio.
- `task_load`: the service's /extract_entities and /viggo at a fixed concurrency (requests/s).

Everything here only needs a URL (and an API key when the target has one): tests/test_bench.py drives
the shared test server with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import log_tail
from serving.paths import REPO_ROOT

# The figures kept from vllm bench serve's result (p50/p99 come from --metric-percentiles 50,99).
SERVING_KEYS = [
    "completed", "failed", "duration", "request_throughput", "output_throughput", "total_token_throughput",
    "total_input_tokens", "total_output_tokens",
    "p50_ttft_ms", "p99_ttft_ms", "mean_ttft_ms", "p50_tpot_ms", "p99_tpot_ms", "mean_tpot_ms",
    "p50_itl_ms", "p99_itl_ms", "p50_e2el_ms", "p99_e2el_ms", "mean_e2el_ms",
]  # fmt: skip


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@dataclass
class Target:
    url: str  # base URL, no trailing slash, no /v1
    model: str  # served model name
    tokenizer: str  # local tokenizer path (for random prompts of exact token length)
    api_key: str | None = None

    def headers(self) -> dict[str, str]:
        return auth_headers(self.api_key)


def prompt_count(expr: str, concurrency: int) -> int:
    """Prompts of a level: `expr`, an expression of C such as 'max(8,2*C)', at C = `concurrency`."""
    return int(eval(expr, {"max": max, "min": min}, {"C": concurrency}))


def bench_serve_flags(
    target: Target, input_len: int, output_len: int, result_dir: Path, seed: int = 0, num_warmups: int = 1
) -> list[str]:
    """`vllm bench serve` flags (without --max-concurrency / --num-prompts, added per level)."""
    return [
        "--backend", "openai", "--endpoint", "/v1/completions", "--base-url", target.url,
        "--model", target.model, "--tokenizer", target.tokenizer,
        "--dataset-name", "random", "--random-input-len", str(input_len), "--random-output-len", str(output_len),
        "--ignore-eos", "--seed", str(seed), "--num-warmups", str(num_warmups),
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
        "--disable-tqdm", "--save-result", "--result-dir", str(result_dir),
    ]  # fmt: skip


def serving_load(
    target: Target,
    concurrencies: list[int],
    prompts_expr: str,
    input_len: int,
    output_len: int,
    work_dir: Path,
    label: str,
    timeout_s: float = 3600,
    num_warmups: int = 1,
) -> list[dict[str, Any]]:
    """vllm bench serve at each concurrency (one subprocess); one dict of figures per concurrency."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out = work_dir / f"{label}-serving.json"
    flags = bench_serve_flags(target, input_len, output_len, work_dir / f"{label}-vllm-bench", num_warmups=num_warmups)
    env = dict(os.environ)
    if target.api_key:
        env["OPENAI_API_KEY"] = target.api_key  # vllm bench serve sends it as a Bearer token
    cmd = [
        sys.executable,
        "-m",
        "bench.vllm_runner",
        str(out),
        ",".join(map(str, concurrencies)),
        prompts_expr,
        "--",
        *flags,
    ]
    log = work_dir / f"{label}-bench-serve.log"
    with log.open("w") as f:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s)
    if proc.returncode != 0 and not out.exists():
        raise RuntimeError(f"vllm bench serve failed ({proc.returncode}):\n{log_tail(log)}")
    rows = []
    for raw in json.loads(out.read_text()) if out.exists() else []:
        row = {"concurrency": raw["max_concurrency"], "num_prompts": raw["num_prompts"]}
        for key in SERVING_KEYS:
            value = raw.get(key, raw.get(key.replace("p50_", "median_")))
            if value is not None:
                row[key] = value
        rows.append(row)
    return rows


def bench_serve_command(target: Target, c: int, n: int, input_len: int, output_len: int) -> str:
    """The equivalent stand-alone command line, for the record."""
    flags = bench_serve_flags(target, input_len, output_len, Path("RESULT_DIR"))
    return " ".join(
        [
            "python",
            "-m",
            "vllm.entrypoints.cli.main",
            "bench",
            "serve",
            *flags,
            "--max-concurrency",
            str(c),
            "--num-prompts",
            str(n),
        ]
    )


# --- own load loop (structured decoding, task endpoints) --------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def _drive(
    url: str, headers: dict[str, str], bodies: list[dict[str, Any]], concurrency: int, timeout_s: float
) -> dict[str, Any]:
    """POST every body (at most `concurrency` in flight); wall time, latencies, statuses, usage tokens."""
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0
    statuses: dict[str, int] = {}
    errors: list[str] = []

    async def one(session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        nonlocal tokens
        async with sem:
            start = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as response:
                    payload = await response.read()
                    status = str(response.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                status, payload = type(exc).__name__, b""
            elapsed = time.perf_counter() - start
        statuses[status] = statuses.get(status, 0) + 1
        if status == "200":
            latencies.append(elapsed)
            with contextlib.suppress(ValueError, AttributeError):
                tokens += int(json.loads(payload).get("usage", {}).get("completion_tokens", 0))
        elif len(errors) < 3:
            errors.append(f"{status}: {payload[:300].decode(errors='replace')}")

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(one(session, b) for b in bodies))
        wall = time.perf_counter() - started
    ok = statuses.get("200", 0)
    result: dict[str, Any] = {
        "concurrency": concurrency, "requests": len(bodies), "ok": ok, "statuses": statuses,
        "duration": round(wall, 3), "request_throughput": ok / wall if wall else 0.0,
        "p50_latency_ms": (percentile(latencies, 50) or 0) * 1000,
        "p99_latency_ms": (percentile(latencies, 99) or 0) * 1000,
    }  # fmt: skip
    if tokens:
        result.update(output_tokens=tokens, output_throughput=tokens / wall, mean_output_tokens=tokens / max(ok, 1))
    if errors:
        result["errors"] = errors
    return result


def drive(
    url: str, headers: dict[str, str], bodies: list[dict[str, Any]], concurrency: int, timeout_s: float = 1800
) -> dict[str, Any]:
    return asyncio.run(_drive(url, headers, bodies, concurrency, timeout_s))


SENTENCES = [
    "Angela Merkel visited the Siemens plant in Erlangen on 4 March 2019.",
    "Tim Cook announced that Apple will open a new campus in Austin, Texas next year.",
    "The United Nations met in Geneva on Monday to discuss the crisis in Sudan.",
    "Marie Curie moved from Warsaw to Paris in 1891 to study at the Sorbonne.",
    "Satya Nadella said Microsoft and OpenAI signed a deal in Redmond in January 2023.",
    "Lionel Messi joined Inter Miami after leaving Paris Saint-Germain in June 2023.",
    "The European Central Bank in Frankfurt raised rates on 27 July 2023.",
    "Elon Musk's SpaceX launched a rocket from Cape Canaveral, Florida, on Tuesday.",
]
ENTITY_SCHEMA = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "type": {"type": "string", "enum": ["PERSON", "ORGANIZATION", "LOCATION", "DATE"]},
                },
                "required": ["text", "type"],
            },
        },
        "summary": {"type": "string"},
    },
    "required": ["entities", "summary"],
}


def chat_bodies(model: str, n: int, max_tokens: int, constrained: bool) -> list[dict[str, Any]]:
    bodies = []
    for i in range(n):
        sentence = SENTENCES[i % len(SENTENCES)]
        body: dict[str, Any] = {
            "model": model, "max_tokens": max_tokens, "temperature": 0.0,
            "messages": [{"role": "user", "content": f"Request {i}. List the people, organizations, locations and "
                          f"dates in this sentence as JSON, then summarize it: {sentence}"}],
        }  # fmt: skip
        if constrained:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "entities", "schema": ENTITY_SCHEMA},
            }
        bodies.append(body)
    return bodies


def structured_load(
    target: Target, concurrencies: list[int], prompts_expr: str, max_tokens: int
) -> list[dict[str, Any]]:
    """Free vs JSON-schema-constrained chat completions, same prompts and max_tokens, per concurrency."""
    url = f"{target.url}/v1/chat/completions"
    headers = target.headers()
    # Warm-up: the grammar's first compilation and the first chat request stay out of the figures.
    for warm_constrained in (False, True):
        drive(url, headers, chat_bodies(target.model, 2, 8, warm_constrained), 2)
    rows = []
    for c in concurrencies:
        n = prompt_count(prompts_expr, c)
        free = drive(url, headers, chat_bodies(target.model, n, max_tokens, False), c)
        constrained = drive(url, headers, chat_bodies(target.model, n, max_tokens, True), c)
        ratio = (
            (constrained.get("output_throughput", 0) / free["output_throughput"])
            if free.get("output_throughput")
            else None
        )
        rows.append(
            {
                "concurrency": c,
                "num_prompts": n,
                "max_tokens": max_tokens,
                "free": free,
                "constrained": constrained,
                "ratio": ratio,
            }
        )
    return rows


NER_TEXTS = SENTENCES
VIGGO_SENTENCES = [
    "Blizzard North released Diablo II for the Mac and I think it's good.",
    "Have you played The Elder Scrolls V: Skyrim? It is a single-player role-playing game from 2011.",
    "I found Half-Life 2 to be a really fun first-person shooter.",
    "What is it about Nintendo games like Super Mario Odyssey that you like so much?",
]


def task_load(target: Target, concurrency: int, n: int) -> dict[str, Any]:
    """/extract_entities and /viggo at one concurrency; 'not measured' where an endpoint does not answer."""
    headers = target.headers()
    tasks = {
        "extract_entities": lambda i: {"text": NER_TEXTS[i % len(NER_TEXTS)], "persist": False},
        "viggo": lambda i: {"sentence": VIGGO_SENTENCES[i % len(VIGGO_SENTENCES)]},
    }
    results: dict[str, Any] = {}
    for name, body in tasks.items():
        url = f"{target.url}/{name}"
        probe = drive(url, headers, [body(0)], 1, timeout_s=600)  # also warms the endpoint
        if probe["ok"] != 1:
            results[name] = {
                "measured": False,
                "reason": f"probe answered {probe['statuses']}",
                "errors": probe.get("errors", []),
            }
            continue
        figures = drive(url, headers, [body(i) for i in range(n)], concurrency)
        figures.pop("output_tokens", None)
        results[name] = {"measured": True, **figures}
    return results
