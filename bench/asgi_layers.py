"""Event-loop time per /v1 request of each ASGI layer the service puts in front of vLLM's app, in process.

The service's ASGI app is built as BentoML's worker builds it (`to_asgi`), with a stand-in where vLLM's app goes:
a FastAPI route that parses the JSON body and streams CHUNKS small SSE chunks (no engine, no tokenizer: what is
measured is the layers, not vLLM). Requests (a 512-word prompt, as a long-prompt burst) are driven straight into
the ASGI callables, CONCURRENCY at a time, first into the outermost layer, then into each layer further in, down to
the stand-in alone; a layer's cost is the time from it inward less the time from the next one inward (the best of
--reps). The heap is frozen and the collector left on, as in the service after vLLM's lifespan has started.

    python -m bench.asgi_layers [--chunks 16] [--requests 1024] [--reps 5] [--via-mount] [--out FILE.json]

--via-mount leaves `DirectToOpenAIApp` out, so /v1 takes BentoML's router and mount (the path before it existed).
At a burst of C new requests, the last one waits for C-1 others' way in: C/2 times the extra per request, on
average, is what the layers add to TTFT before the engine sees the request (bench/paired.py measures that on a GPU).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.routing import Mount, Router
from starlette.types import ASGIApp, Message

PATH = "/v1/completions"


def stand_in(chunks: int) -> ASGIApp:
    """Where vLLM's app goes: parses the body, streams `chunks` chunks and [DONE]."""
    app = FastAPI()

    @app.post(PATH)
    async def completions(request: Request) -> StreamingResponse:
        body = await request.json()

        async def events() -> AsyncIterator[str]:
            for i in range(chunks):
                yield f"data: {json.dumps({'index': i, 'model': body['model']})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def service_app(chunks: int, via_mount: bool) -> tuple[ASGIApp, ASGIApp]:
    """The service's ASGI app with the stand-in attached, and the stand-in."""
    from bentoml._internal.context import server_context

    import service
    from serving.openai_app import DirectToOpenAIApp

    server_context.service_name = server_context.bento_name = service.llm_service.name
    server_context.bento_version = "not available"
    if via_mount:
        middlewares = service.llm_service.middlewares
        middlewares[:] = [m for m in middlewares if m[0] is not DirectToOpenAIApp]
    inner = stand_in(chunks)
    service.openai_app.app = inner
    return service.llm_service.to_asgi(is_main=True), inner


def layers(app: Any, inner: ASGIApp) -> list[Any]:
    """The callables a /v1 request passes, outermost first, down to the stand-in."""
    from serving.openai_app import DirectToOpenAIApp

    app.middleware_stack = app.build_middleware_stack()
    chain: list[Any] = []
    layer: Any = app.middleware_stack
    while layer is not inner:  # every layer, the late app included, holds the next one in `.app`, but these two
        chain.append(layer)
        if isinstance(layer, DirectToOpenAIApp):
            layer = layer.openai_app
        elif isinstance(layer, Router):
            layer = next(r.app for r in layer.routes if isinstance(r, Mount) and r.path == "/v1")
        else:
            layer = layer.app
    return [*chain, inner]


BODY = json.dumps({"model": "m", "prompt": "word " * 512, "max_tokens": 128, "stream": True}).encode()
HEADERS = [(b"host", b"service"), (b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def one_request(app: ASGIApp) -> int:
    """One streamed /v1 request into `app`; its response status."""
    done = asyncio.Event()
    body_sent = False
    status = 0

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": PATH, "raw_path": PATH.encode(), "root_path": "", "query_string": b"", "headers": list(HEADERS),
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 3000), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    return status


async def us_per_request(
    app: ASGIApp, requests: int, concurrency: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Microseconds of `clock` per request, `requests` of them `concurrency` at a time; every one must answer 200."""
    rounds = max(1, requests // concurrency)
    started = clock()
    for _ in range(rounds):
        statuses = await asyncio.gather(*(one_request(app) for _ in range(concurrency)))
        if set(statuses) != {200}:
            raise RuntimeError(f"{type(app).__name__} answered {sorted(set(statuses))}, not 200")
    return (clock() - started) / (rounds * concurrency) * 1e6


async def interleaved_differences(
    base: ASGIApp, variant: ASGIApp, requests: int, concurrency: int, reps: int
) -> list[float]:
    """`variant`'s event-loop CPU time per request less `base`'s, one difference per round, `reps` rounds.

    Interleaved, so that the machine's drift falls on both alike, and in thread CPU time, so that its other work
    counts less: an A/B of one layer resolves a few microseconds where whole-stack timings here spread by hundreds.
    """
    for app in (base, variant):  # warm-up: lazily built stacks, first-call caches
        await us_per_request(app, concurrency, concurrency)
    gc.collect()
    gc.freeze()
    out = []
    for _ in range(reps):
        alone = await us_per_request(base, requests, concurrency, clock=time.thread_time)
        out.append(await us_per_request(variant, requests, concurrency, clock=time.thread_time) - alone)
    return out


async def measure(chain: list[Any], requests: int, concurrency: int, reps: int) -> list[float]:
    for layer in chain:  # warm-up: lazily built stacks, first-call caches
        await us_per_request(layer, concurrency, concurrency)
    gc.collect()
    gc.freeze()
    best = [float("inf")] * len(chain)
    for _ in range(reps):  # interleaved, so that drift spreads over every layer alike
        for i, layer in enumerate(chain):
            best[i] = min(best[i], await us_per_request(layer, requests, concurrency))
    return best


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    app, inner = service_app(args.chunks, args.via_mount)
    chain = layers(app, inner)
    best = uvloop.run(measure(chain, args.requests, args.concurrency, args.reps))
    rows = [
        {
            "layer": type(layer).__name__,
            "module": type(layer).__module__,
            "us_from_here_in": round(t, 1),
            "us_this_layer": round(t - nxt, 1),
        }
        for layer, t, nxt in zip(chain, best, [*best[1:], 0.0], strict=True)
    ]
    return {
        "chunks": args.chunks, "concurrency": args.concurrency, "requests": args.requests, "reps": args.reps,
        "via_mount": args.via_mount, "layers": rows,
        "stand_in_us": round(best[-1], 1), "service_us": round(best[0], 1), "extra_us": round(best[0] - best[-1], 1),
    }  # fmt: skip


def table(out: dict[str, Any]) -> str:
    lines = ["| layer | us per request from here in | this layer |", "|---|---:|---:|"]
    lines += [f"| {r['layer']} | {r['us_from_here_in']:.0f} | {r['us_this_layer']:.0f} |" for r in out["layers"]]
    route = "BentoML's router and /v1 mount" if out["via_mount"] else "DirectToOpenAIApp"
    lines.append(
        f"\n/v1 via {route}, {out['chunks']} chunks, {out['concurrency']} at a time: stand-in alone "
        f"{out['stand_in_us']:.0f} us per request, through the service's layers {out['service_us']:.0f} us "
        f"(+{out['extra_us']:.0f})"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.asgi_layers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--chunks", type=int, default=16, help="SSE chunks per response")
    p.add_argument("--requests", type=int, default=1024, help="requests per measurement")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--reps", type=int, default=5, help="measurements per layer; the best is kept")
    p.add_argument("--via-mount", action="store_true", help="without DirectToOpenAIApp (the path before it)")
    p.add_argument("--out", type=Path, help="results JSON")
    args = p.parse_args(argv)
    if min(args.chunks, args.requests, args.concurrency, args.reps) < 1:
        p.error("--chunks, --requests, --concurrency and --reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = run(args)
    print(table(out))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
