"""Streaming load with one client for every path: raw vLLM's /v1/completions, the service's /v1/completions
and the service's BentoML-native /generate, same prompts, same greedy settings, same measurements.

`vllm bench serve` speaks only OpenAI-style endpoints, and /generate streams plain text chunks, so this
drives all three paths itself (aiohttp, streaming):

- prompts: random token ids decoded to text and cut to `input_len` tokens (as vLLM's random dataset does), a
  fresh set per (shape, concurrency, repetition) and the same set for every path;
- body: `{"prompt", "max_tokens", "temperature": 0}`; /v1 also gets `"stream": true` and usage in the last chunk.
  No `ignore_eos` (/generate has none): greedy outputs are the same on every path, so each request makes the
  same number of tokens whichever path serves it; tokens are counted by tokenizing each answer (same count
  for every path) and, on /v1, also read from `usage` as a check;
- TTFT: request sent -> first non-empty text; ITL: gaps between arrivals of new text (one socket read that
  brings text is one arrival, whether it holds one /generate chunk, several, or several SSE events);
  TPOT: (latency - TTFT) / (tokens - 1) per request; output tok/s: all tokens / (last end - first start);
- the client is split over several processes (each an asyncio loop with its share of the concurrency and
  prompts, all starting at one agreed instant), so at concurrency 256 the client is not what limits.

Every level runs `repeats` times; the report gives the median and min-max of each figure over them.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import json
import multiprocessing as mp
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Target, percentile, prompt_count

ENDPOINTS = {"completions": "/v1/completions", "generate": "/generate"}
FIGURES = [
    "output_throughput", "request_throughput", "p50_ttft_ms", "p99_ttft_ms", "p50_itl_ms", "p99_itl_ms",
    "p50_tpot_ms", "p50_e2el_ms", "p99_e2el_ms", "mean_output_tokens", "chunks_per_request",
]  # fmt: skip


@dataclass(frozen=True)
class Shape:
    name: str
    input_len: int
    output_len: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        """'long:512:128' -> Shape('long', 512, 128)."""
        name, input_len, output_len = text.split(":")
        return cls(name, int(input_len), int(output_len))


def parse_shapes(text: str) -> list[Shape]:
    return [Shape.parse(s) for s in text.split(",") if s.strip()]


def make_prompts(tokenizer: Any, n: int, input_len: int, seed: int) -> list[str]:
    """n random prompts of about `input_len` tokens (ids drawn from the vocabulary, decoded, re-cut)."""
    rng = random.Random(seed)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    prompts = []
    for _ in range(n):
        text = tokenizer.decode([rng.choice(vocab) for _ in range(input_len)])
        ids = tokenizer.encode(text, add_special_tokens=False)[:input_len]
        prompts.append(tokenizer.decode(ids))
    return prompts


def level_prompts(tokenizer: Any, key: str, n: int, input_len: int) -> list[str]:
    """A level's prompt set, seeded by `key`: a fresh set for each key (no prefix-cache hits from another level),
    the same set for every endpoint and system given the same key."""
    seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return make_prompts(tokenizer, n, input_len, seed)


def warm_up(target: Target, endpoint: str, tokenizer: Any, pool: Any, client_procs: int) -> None:
    """A few short requests: first-request costs (compilation, imports, connections) stay out of the levels."""
    prompts = make_prompts(tokenizer, 2 * client_procs, 16, seed=-1)
    drive_level(target, endpoint, prompts, 8, len(prompts), pool, client_procs)


def _body(endpoint: str, model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    if endpoint == "completions":
        body.update(model=model, stream=True, stream_options={"include_usage": True})
    return body


async def _one(session: Any, url: str, endpoint: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """One streaming request: start time, time of each non-empty chunk, the text, usage tokens, error."""
    sse = endpoint == "completions"
    rec: dict[str, Any] = {"start": time.monotonic(), "times": [], "text": "", "usage": None, "error": None}
    pieces: list[str] = []
    buffer = b""
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode  # a read may end inside a character
    try:
        async with session.post(url, json=body, headers=headers) as response:
            if sse:  # BentoML's /generate sends its headers with the first chunk: no split there
                rec["headers"] = time.monotonic()
            if response.status != 200:
                rec["error"] = f"{response.status}: {(await response.read())[:300].decode(errors='replace')}"
                return rec
            async for data in response.content.iter_any():
                now = time.monotonic()
                if not sse:
                    text = decode(data)  # /generate: plain UTF-8 text chunks
                    if text:
                        pieces.append(text)
                        rec["times"].append(now)
                    continue
                buffer += data
                *events, buffer = buffer.split(b"\n\n")
                got_text = False
                for event in events:
                    payload = event.strip().removeprefix(b"data:").strip()
                    if not payload or payload == b"[DONE]":
                        continue
                    chunk = json.loads(payload)
                    if chunk.get("usage"):
                        rec["usage"] = chunk["usage"].get("completion_tokens")
                    for choice in chunk.get("choices") or []:
                        if choice.get("text"):
                            pieces.append(choice["text"])
                            got_text = True
                if got_text:  # one arrival, however many events it held (as a /generate read of several chunks)
                    rec["times"].append(now)
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["end"] = time.monotonic()
    rec["text"] = "".join(pieces)  # may be empty: a model may end its answer at once
    return rec


async def _client(
    url: str,
    endpoint: str,
    headers: dict[str, str],
    bodies: list[tuple[int, dict[str, Any]]],
    concurrency: int,
    start_at: float,
    timeout_s: float,
) -> list[dict[str, Any]]:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))

        async def run(i: int, body: dict[str, Any]) -> dict[str, Any]:
            async with sem:
                rec = await _one(session, url, endpoint, body, headers)
            rec["index"] = i
            return rec

        return list(await asyncio.gather(*(run(i, b) for i, b in bodies)))


def _client_process(args: tuple[Any, ...]) -> list[dict[str, Any]]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_client(*args))


def drive_level(
    target: Target,
    endpoint: str,
    prompts: list[str],
    max_tokens: int,
    concurrency: int,
    pool: Any,
    client_procs: int,
    timeout_s: float = 900,
) -> list[dict[str, Any]]:
    """All prompts through one endpoint at `concurrency` (spread over `pool`'s client processes); one record per
    request, in prompt order."""
    url = target.url + ENDPOINTS[endpoint]
    procs = max(1, min(client_procs, concurrency))
    shares = [
        [(i, _body(endpoint, target.model, p, max_tokens)) for i, p in enumerate(prompts) if i % procs == k]
        for k in range(procs)
    ]
    start_at = time.monotonic() + 0.3  # every process has its share before the first request leaves
    jobs = [(url, endpoint, target.headers(), share, concurrency // procs + (k < concurrency % procs), start_at,
             timeout_s) for k, share in enumerate(shares)]  # fmt: skip
    records = [r for part in pool.map(_client_process, jobs, chunksize=1) for r in part]
    return sorted(records, key=lambda r: r["index"])


def figures(records: list[dict[str, Any]], tokenizer: Any) -> dict[str, Any]:
    """The level's figures from its request records."""
    ok = [r for r in records if not r["error"]]
    out: dict[str, Any] = {"requests": len(records), "ok": len(ok), "failed": len(records) - len(ok)}
    errors = [r["error"] for r in records if r["error"]][:3]
    if errors:
        out["errors"] = errors
    if not ok:
        return out
    counts = [len(ids) for ids in tokenizer([r["text"] for r in ok], add_special_tokens=False)["input_ids"]]
    duration = max(r["end"] for r in ok) - min(r["start"] for r in ok)
    ttft = ttfts_ms(ok)
    itl = [(b - a) * 1000 for r in ok for a, b in zip(r["times"], r["times"][1:], strict=False)]
    e2el = [(r["end"] - r["start"]) * 1000 for r in ok]
    tpot = [
        ((r["end"] - r["times"][0]) * 1000) / (n - 1) for r, n in zip(ok, counts, strict=True) if n > 1 and r["times"]
    ]
    usage = [r["usage"] for r in ok if r["usage"] is not None]
    # vLLM's OpenAI routes send their headers before the engine sees the request (the stream's first step adds it):
    # the time to them is the way in (HTTP, the ASGI layers, the request's parsing and tokenization) without the
    # engine or the way out. vLLM (0.25 and 0.32) starts its TTFT clock before tokenizing, so this overlaps its clock
    # by the tokenization and the loop's turns before the response starts: not a part of the front end's share.
    to_headers = [(r["headers"] - r["start"]) * 1000 for r in ok if "headers" in r]
    if to_headers:
        out["mean_headers_ms"] = statistics.fmean(to_headers)
    out.update(
        duration=round(duration, 4), output_tokens=sum(counts), output_throughput=sum(counts) / duration,
        request_throughput=len(ok) / duration, mean_output_tokens=sum(counts) / len(ok),
        chunks_per_request=sum(len(r["times"]) for r in ok) / len(ok),
        p50_ttft_ms=percentile(ttft, 50), p99_ttft_ms=percentile(ttft, 99), p50_itl_ms=percentile(itl, 50),
        p99_itl_ms=percentile(itl, 99), p50_tpot_ms=percentile(tpot, 50), p50_e2el_ms=percentile(e2el, 50),
        p99_e2el_ms=percentile(e2el, 99),
        # Same digest on two paths = the same answers to the same prompts.
        outputs_sha256=hashlib.sha256("\x00".join(r["text"] for r in records).encode()).hexdigest()[:16],
    )  # fmt: skip
    if usage:
        out["usage_output_tokens"] = sum(usage)
    return out


def ttfts_ms(records: list[dict[str, Any]]) -> list[float]:
    """Request sent -> first text, ms, of each answered request that streamed any text."""
    return [(r["times"][0] - r["start"]) * 1000 for r in records if not r["error"] and r["times"]]


def summarize(reps: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median, min and max of each figure over the repetitions."""
    out: dict[str, dict[str, float]] = {"median": {}, "min": {}, "max": {}}
    for key in FIGURES:
        values = [r[key] for r in reps if r.get(key) is not None]
        if values:
            out["median"][key] = statistics.median(values)
            out["min"][key] = min(values)
            out["max"][key] = max(values)
    return out


def stream_load(
    target: Target,
    endpoints: list[str],
    shapes: list[Shape],
    concurrencies: list[int],
    prompts_expr: str,
    repeats: int,
    client_procs: int = 4,
    log: Any = print,
    partial: Path | None = None,
) -> list[dict[str, Any]]:
    """Every (shape, concurrency) `repeats` times on each endpoint; the endpoints interleave level by level so
    drift during the run hits them alike. One row per (endpoint, shape, concurrency) with all repetitions.
    `partial`: written after every level, so a run cut short (a device call's time limit) leaves what it measured."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target.tokenizer)
    with mp.get_context("spawn").Pool(client_procs) as pool:
        rows = _levels(
            target, endpoints, shapes, concurrencies, prompts_expr, repeats, pool, client_procs, tokenizer, log, partial
        )
    for row in rows:
        row.update(summarize(row["reps"]))
    return rows


def _levels(
    target: Target,
    endpoints: list[str],
    shapes: list[Shape],
    concurrencies: list[int],
    prompts_expr: str,
    repeats: int,
    pool: Any,
    client_procs: int,
    tokenizer: Any,
    log: Any,
    partial: Path | None,
) -> list[dict[str, Any]]:
    for endpoint in endpoints:
        warm_up(target, endpoint, tokenizer, pool, client_procs)
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for rep in range(repeats):
        for shape in shapes:
            for c in concurrencies:
                n = prompt_count(prompts_expr, c)
                prompts = level_prompts(tokenizer, f"{shape.name}/{c}/{rep}", n, shape.input_len)
                for endpoint in endpoints:
                    # A profiler (bench/gpu_run.sh) waits for this line to sample the level itself.
                    log(f"[stream] start rep {rep + 1}/{repeats} {shape.name} c={c} {ENDPOINTS[endpoint]}")
                    records = drive_level(target, endpoint, prompts, shape.output_len, c, pool, client_procs)
                    fig = figures(records, tokenizer)
                    row = rows.setdefault((endpoint, shape.name, c), {
                        "endpoint": endpoint, "path": ENDPOINTS[endpoint], "shape": shape.name,
                        "input_len": shape.input_len, "output_len": shape.output_len, "concurrency": c,
                        "num_prompts": n, "reps": []})  # fmt: skip
                    row["reps"].append(fig)
                    if partial:
                        partial.write_text(json.dumps(list(rows.values()), default=str))
                    log(
                        f"[stream] rep {rep + 1}/{repeats} {shape.name} c={c} {ENDPOINTS[endpoint]}: "
                        f"{fig.get('output_throughput', 0):.1f} tok/s, TTFT p50 {fig.get('p50_ttft_ms') or 0:.1f} ms, "
                        f"ITL p50/p99 {fig.get('p50_itl_ms') or 0:.2f}/{fig.get('p99_itl_ms') or 0:.2f} ms, "
                        f"ok {fig['ok']}/{fig['requests']}" + (f" {fig['errors'][0]}" if fig.get("errors") else "")
                    )
    return list(rows.values())
