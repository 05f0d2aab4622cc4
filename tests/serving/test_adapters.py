"""Adapter fetching, validation, the adapter store and its LRU cache, without an engine.

The registry runs against vLLM's own `OpenAIServingModels` (its per-name lock, its resolver loop, its
`/v1/models` listing); only the engine behind it is a stand-in that records what it was asked to load.
Downloads come from the real S3-protocol server (moto).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serving.adapter_store import AdapterCache, AdapterStore, folder_bytes
from serving.adapters import AdapterFetcher, AdapterRegistry
from serving.errors import NotFoundError, RequestError, UpstreamError
from serving.model_source import ResolvedModel
from serving.paths import REPO_ROOT
from serving.settings import ServiceSettings
from serving.sources import SourceKind
from tests.s3_fixtures import MotoServer

BUNDLED = REPO_ROOT / "finetune" / "adapters" / "viggo-smollm2"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
ADAPTER_BYTES = sum((BUNDLED / name).stat().st_size for name in ADAPTER_FILES)
MODEL = ResolvedModel(path="/models/SmolLM2-135M-Instruct", name="SmolLM2-135M-Instruct")


# --- the LRU cache ----------------------------------------------------------------------------------
def test_cache_evicts_the_least_recently_used_and_never_the_newest() -> None:
    cache = AdapterCache(capacity=250)
    assert cache.add("/c/a", 100, "a") == []
    assert cache.add("/c/b", 100, "b") == []
    cache.touch("a")  # b is now the least recently used
    evicted = cache.add("/c/c", 100, "c")
    assert [entry.name for entry in evicted] == ["b"]
    assert cache.names() == ["a", "c"] and cache.used == 200
    # Re-adding a folder replaces its entry instead of counting it twice.
    assert cache.add("/c/a", 120, "a") == [] and cache.used == 220 and cache.names() == ["c", "a"]
    with pytest.raises(ValueError, match="exceed"):
        cache.add("/c/huge", 251, "huge")
    assert cache.pop("c") is not None and cache.pop("c") is None and cache.names() == ["a"]


def test_cache_counts_leftover_downloads_first_and_drops_partial_ones(tmp_path: Path) -> None:
    for index, name in enumerate(["old", "newer"]):
        folder = tmp_path / "s3" / name
        folder.mkdir(parents=True)
        (folder / "w").write_bytes(b"x" * 100)
        stamp = 1_000_000 + index
        os.utime(folder, (stamp, stamp))
    partial = tmp_path / "s3" / ".partial-abc"
    partial.mkdir()
    cache = AdapterCache(capacity=150)
    evicted = cache.adopt_leftovers(tmp_path)
    assert [Path(entry.folder).name for entry in evicted] == ["old"]
    assert cache.used == 100 and cache.names() == []  # counted, but not loaded under any name
    assert not partial.exists()
    # A request for the adapter in the left-over folder adopts it under its name, counted once.
    assert cache.add(str(tmp_path / "s3" / "newer"), 100, "newer") == [] and cache.used == 100


# --- where the store keeps adapters -----------------------------------------------------------------
def test_store_spellings(tmp_path: Path) -> None:
    assert AdapterStore.parse("s3://bucket/adapters/") == AdapterStore("s3://bucket/adapters", SourceKind.S3)
    assert AdapterStore.parse(str(tmp_path)).kind is SourceKind.LOCAL
    assert AdapterStore.parse("my-org") == AdapterStore("my-org", SourceKind.HUB)
    assert AdapterStore.parse("my-org").source_for("viggo") == "my-org/viggo"
    with pytest.raises(ValueError, match="does not exist"):
        AdapterStore.parse(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="bucket"):
        AdapterStore.parse("s3://")


# --- fetching ---------------------------------------------------------------------------------------
def upload_adapter(moto: MotoServer, bucket: str, prefix: str, folder: Path = BUNDLED, **config: Any) -> None:
    client = moto.client()
    for name in ADAPTER_FILES:
        body = (folder / name).read_bytes()
        if name == "adapter_config.json" and config:
            body = json.dumps({**json.loads(body), **config}).encode()
        client.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body)


def make_settings(tmp_path: Path, moto: MotoServer, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "cache_dir": tmp_path / "cache",
        "s3_endpoint_url": moto.endpoint_url,
        "bundled_adapters": False,
        **overrides,
    }
    return ServiceSettings(**values)


def downloads_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_oversized_adapter_is_refused_before_any_download(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    upload_adapter(moto_server, s3_bucket, "big")
    settings = make_settings(tmp_path, moto_server, max_adapter_bytes=ADAPTER_BYTES - 1)
    fetcher = AdapterFetcher(settings, roots=[], model=MODEL)
    caplog.set_level(logging.INFO, logger="serving.s3")
    with pytest.raises(RequestError) as refused:
        asyncio.run(fetcher.fetch(f"s3://{s3_bucket}/big", tmp_path / "downloads"))
    assert refused.value.status == 413 and "max_adapter_bytes" in refused.value.message
    assert downloads_in(tmp_path / "downloads") == []
    assert "downloading adapter" not in caplog.text


def test_oversized_local_adapter_is_refused(tmp_path: Path, moto_server: MotoServer) -> None:
    settings = make_settings(tmp_path, moto_server, max_adapter_bytes=ADAPTER_BYTES - 1)
    fetcher = AdapterFetcher(settings, roots=[BUNDLED.parent], model=MODEL)
    with pytest.raises(RequestError) as refused:
        asyncio.run(fetcher.fetch(str(BUNDLED), tmp_path / "downloads"))
    assert refused.value.status == 413


def test_racing_fetches_of_one_source_download_it_once(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    upload_adapter(moto_server, s3_bucket, "shared")
    fetcher = AdapterFetcher(make_settings(tmp_path, moto_server), roots=[], model=MODEL)
    caplog.set_level(logging.INFO, logger="serving.s3")

    async def race() -> list[Path]:
        fetched = await asyncio.gather(
            *(fetcher.fetch(f"s3://{s3_bucket}/shared", tmp_path / "downloads") for _ in range(5))
        )
        return [adapter.path for adapter in fetched]

    paths = asyncio.run(race())
    assert len(set(paths)) == 1 and sorted(p.name for p in paths[0].iterdir() if p.name in ADAPTER_FILES) == sorted(
        ADAPTER_FILES
    )
    assert caplog.text.count("downloading adapter") == 1


def test_refused_download_is_deleted_even_when_its_caller_left(
    tmp_path: Path, moto_server: MotoServer, s3_bucket: str
) -> None:
    upload_adapter(moto_server, s3_bucket, "other-base", base_model_name_or_path="meta-llama/Llama-3.1-8B-Instruct")
    fetcher = AdapterFetcher(make_settings(tmp_path, moto_server), roots=[], model=MODEL)

    async def leave_early() -> None:
        caller = asyncio.ensure_future(fetcher.fetch(f"s3://{s3_bucket}/other-base", tmp_path / "downloads"))
        await asyncio.sleep(0)  # the shared download has started
        (download,) = fetcher._in_flight.values()
        caller.cancel()  # a client disconnect
        with pytest.raises(RequestError, match="trained for base model"):
            await download  # still runs to its end, validation included

    asyncio.run(leave_early())
    assert downloads_in(tmp_path / "downloads") == []


def test_missing_s3_prefix_is_not_found(tmp_path: Path, moto_server: MotoServer, s3_bucket: str) -> None:
    fetcher = AdapterFetcher(make_settings(tmp_path, moto_server), roots=[], model=MODEL)
    with pytest.raises(NotFoundError, match="no objects"):
        asyncio.run(fetcher.fetch(f"s3://{s3_bucket}/nothing", tmp_path / "downloads"))


# --- the registry with vLLM's OpenAIServingModels -----------------------------------------------------
class EngineStandIn:
    """What OpenAIServingModels asks of the engine client, recording each adapter it is asked to load."""

    def __init__(self) -> None:
        self.model_config = SimpleNamespace(model=MODEL.path, max_model_len=2048)
        self.renderer = None
        self.input_processor = None
        self.loaded: list[str] = []
        self.in_place: list[bool] = []

    async def add_lora(self, request: Any) -> bool:
        self.loaded.append(request.lora_name)
        self.in_place.append(request.load_inplace)
        return True


def make_registry(settings: ServiceSettings) -> tuple[AdapterRegistry, Any, EngineStandIn]:
    from vllm.entrypoints.openai.models.protocol import BaseModelPath
    from vllm.entrypoints.openai.models.serving import OpenAIServingModels

    engine = EngineStandIn()
    models = OpenAIServingModels(engine, [BaseModelPath(name=MODEL.name, model_path=MODEL.path)])  # type: ignore[arg-type]
    return AdapterRegistry(settings, MODEL, models), models, engine


@pytest.fixture
def store(moto_server: MotoServer, s3_bucket: str, tmp_path: Path) -> str:
    """An S3 adapter store holding `a`, `b`, `c` (copies of the bundled adapter) and `rank-64` (refused)."""
    for name in "abc":
        upload_adapter(moto_server, s3_bucket, f"adapters/{name}")
    upload_adapter(moto_server, s3_bucket, "adapters/rank-64", r=64)
    return f"s3://{s3_bucket}/adapters"


@pytest.fixture(autouse=True)
def _process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry turns on vLLM's runtime LoRA resolution in the environment; undone after each test."""
    monkeypatch.delenv("VLLM_ALLOW_RUNTIME_LORA_UPDATING", raising=False)


def listed(models: Any) -> set[str]:
    return {card.id for card in asyncio.run(models.show_available_models()).data}


def test_unknown_names_load_from_the_store_on_first_use_and_the_lru_one_goes(
    tmp_path: Path, moto_server: MotoServer, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Room for two adapters, not three.
    settings = make_settings(tmp_path, moto_server, adapter_store=store, adapter_cache_bytes=int(ADAPTER_BYTES * 2.5))
    registry, models, engine = make_registry(settings)
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        a = await registry.resolve("a")
        assert a is not None and a.lora_name == "a" and Path(a.lora_path).is_relative_to(settings.cache_dir)
        # Racing first requests for `b` share one download and one engine load.
        racing = await asyncio.gather(*(registry.resolve("b") for _ in range(4)))
        assert {r.lora_name for r in racing if r} == {"b"}
        assert await registry.resolve("a") is a  # `a` used again: `b` is now the least recently used
        await registry.resolve("c")

    asyncio.run(scenario())
    assert engine.loaded == ["a", "b", "c"]
    assert caplog.text.count("downloading adapter") == 3
    assert listed(models) == {MODEL.name, "a", "c"}  # /v1/models lists what is loaded
    assert "adapter 'b' evicted" in caplog.text
    assert {info.name for info in registry.list()} == {"a", "c"}
    kept = {Path(entry).name.split("-")[0] for entry in map(str, (settings.cache_dir / "adapters/store/s3").iterdir())}
    assert kept == {"a", "c"}  # b's download was deleted
    assert registry.lru.used <= settings.adapter_cache_bytes


def test_absent_adapter_is_a_404_naming_the_store_on_both_paths(
    tmp_path: Path, moto_server: MotoServer, store: str
) -> None:
    registry, models, engine = make_registry(make_settings(tmp_path, moto_server, adapter_store=store))
    with pytest.raises(NotFoundError) as absent:
        asyncio.run(registry.resolve("nope"))
    assert absent.value.field == "adapter" and store in absent.value.message and absent.value.status == 404
    # /v1: vLLM's handlers call resolve_lora with the `model` field's value.
    with pytest.raises(NotFoundError) as via_openai:
        asyncio.run(models.resolve_lora("nope"))
    assert via_openai.value.field == "model" and store in via_openai.value.message
    with pytest.raises(NotFoundError, match="adapter name"):
        asyncio.run(registry.resolve("org/model"))
    assert engine.loaded == []


def test_store_adapters_get_the_registration_checks(tmp_path: Path, moto_server: MotoServer, store: str) -> None:
    settings = make_settings(tmp_path, moto_server, adapter_store=store)
    registry, _, engine = make_registry(settings)
    with pytest.raises(RequestError) as refused:
        asyncio.run(registry.resolve("rank-64"))
    assert refused.value.field == "adapter" and "max_lora_rank" in refused.value.message
    assert downloads_in(settings.cache_dir / "adapters" / "store") == []  # the refused download is gone
    too_small = make_settings(tmp_path, moto_server, adapter_store=store, adapter_cache_bytes=ADAPTER_BYTES - 1)
    with pytest.raises(RequestError) as too_big:
        asyncio.run(make_registry(too_small)[0].resolve("a"))
    assert too_big.value.status == 413 and "adapter_cache_bytes" in too_big.value.message
    assert engine.loaded == []


def test_local_folder_store_loads_in_place(tmp_path: Path, moto_server: MotoServer) -> None:
    store = tmp_path / "store"
    shutil.copytree(BUNDLED, store / "viggo-copy")
    registry, _, engine = make_registry(make_settings(tmp_path, moto_server, adapter_store=str(store)))
    request = asyncio.run(registry.resolve("viggo-copy"))
    assert request is not None and Path(request.lora_path) == (store / "viggo-copy").resolve()
    assert engine.loaded == ["viggo-copy"] and folder_bytes(store / "viggo-copy") > 0


def test_generations_never_ask_the_engine_to_reload_an_adapter(tmp_path: Path, moto_server: MotoServer) -> None:
    """An engine step whose batch holds a request flagged `load_inplace` reloads that adapter from disk (vLLM's
    worker LoRA manager): a registration loads in place once, and the request generations use never is."""
    registry, models, engine = make_registry(make_settings(tmp_path, moto_server, adapter_roots=[BUNDLED.parent]))
    asyncio.run(registry.register("v", str(BUNDLED)))
    asyncio.run(registry.register("v", str(BUNDLED)))  # replaced: the engine loads the new weights over the old
    assert engine.loaded == ["v", "v"] and engine.in_place == [True, True]
    request = asyncio.run(registry.resolve("v"))
    assert request is not None and request.load_inplace is False
    assert models.lora_requests["v"] is request  # what vLLM's /v1 handlers send with a request for "v"


def test_without_a_store_unknown_names_are_404(tmp_path: Path, moto_server: MotoServer) -> None:
    registry, _, _ = make_registry(make_settings(tmp_path, moto_server))
    with pytest.raises(NotFoundError, match="registered: none"):
        asyncio.run(registry.resolve("nope"))
    assert asyncio.run(registry.resolve(None)) is None and asyncio.run(registry.resolve(MODEL.name)) is None


def test_s3_transfer_cut_midway_is_an_upstream_error(tmp_path: Path, truncating_s3: str) -> None:
    settings = ServiceSettings(cache_dir=tmp_path / "cache", s3_endpoint_url=truncating_s3)
    fetcher = AdapterFetcher(settings, roots=[], model=MODEL)
    with pytest.raises(UpstreamError) as failed:
        asyncio.run(fetcher.fetch("s3://bucket/adapter", tmp_path / "downloads"))
    assert failed.value.status == 502 and "could not download adapter s3://bucket/adapter" in failed.value.message
    assert downloads_in(tmp_path / "downloads") == []


# --- the event loop during a download ---------------------------------------------------------------
TICK_S = 0.02


def test_a_registration_downloads_off_the_event_loop(tmp_path: Path, moto_server: MotoServer, s3_bucket: str) -> None:
    """The service streams every token from the event loop that also awaits registrations: a download run on
    it once froze a concurrent /generate stream for 15.8 s (410 MB from the local S3 server). The adapter is the
    bundled one's two files and 100 small ones (a GET each, so the download lasts), made for another base
    model: refused after the whole download, as registry.register does it for the admin endpoint."""
    upload_adapter(moto_server, s3_bucket, "big", base_model_name_or_path="meta-llama/Llama-3.1-8B-Instruct")
    client = moto_server.client()
    for index in range(100):
        client.put_object(Bucket=s3_bucket, Key=f"big/extra/part-{index:03d}.bin", Body=os.urandom(8 << 10))
    registry, _, engine = make_registry(make_settings(tmp_path, moto_server))

    async def register_while_ticking() -> tuple[float, list[float]]:
        """How long the registration took, and how late each tick of a 20 ms timer came meanwhile."""
        loop = asyncio.get_running_loop()
        lags: list[float] = []

        async def tick() -> None:
            while True:
                before = loop.time()
                await asyncio.sleep(TICK_S)
                lags.append(loop.time() - before - TICK_S)

        ticker = asyncio.create_task(tick())
        started = loop.time()
        with pytest.raises(RequestError, match="trained for base model"):
            await registry.register("big", f"s3://{s3_bucket}/big")
        took = loop.time() - started
        ticker.cancel()
        return took, lags

    # A full garbage collection of this process's heap (vLLM, torch and the earlier tests' objects) pauses every
    # thread for ~0.45 s here, whichever thread triggers it: frozen, the ticks measure where the download runs.
    gc.collect()
    gc.freeze()
    try:
        took, lags = asyncio.run(register_while_ticking())
    finally:
        gc.unfreeze()
    report = f"registration {took:.2f} s, {len(lags)} ticks, the latest {max(lags):.3f} s late"
    print(report)
    # On the event loop, one tick would wait for the whole download. The bound is relative so that a slow or
    # busy machine, where both grow, does not fail the test (nor make it blind: the download lasts many ticks).
    assert len(lags) >= 10, report
    assert max(lags) < took / 4, report
    assert engine.loaded == [] and downloads_in(tmp_path / "cache" / "adapters") == []
