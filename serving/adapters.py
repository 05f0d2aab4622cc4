"""LoRA adapters: fetched from a local folder, s3:// or the Hub, validated, loaded into the engine.

vLLM's `OpenAIServingModels` (the state behind /v1/models and the OpenAI `model` field) is the one
registry: adapters registered here are listed there and can be named by OpenAI clients, and the
service's own endpoints resolve the `adapter` field through it too.

Downloads run on worker threads (boto3 and the Hub client block, and the event loop streams every token),
at most once per source however many requests want it at the same time, and never beyond
`max_adapter_bytes`. With `adapter_store` set, a name that is not loaded is fetched from the store on first
use through vLLM's own LoRA resolver hook (`OpenAIServingModels.resolve_lora`, which serialises racing
requests per name), so /v1's `model` field and the service's `adapter` field load adapters the same way;
`adapter_cache_bytes` bounds what stays loaded, least recently used first out.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import json
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving import s3
from serving.adapter_store import AdapterCache, AdapterStore, CacheEntry, folder_bytes
from serving.errors import NotFoundError, RequestError, ServiceError, UpstreamError
from serving.model_source import ResolvedModel
from serving.settings import ADAPTER_NAME, ServiceSettings
from serving.sources import SourceKind, is_s3_uri, source_kind

if TYPE_CHECKING:
    from vllm.lora.request import LoRARequest
    from vllm.lora.resolver import LoRAResolver


log = logging.getLogger(__name__)

# The request field that named the adapter: the service's `adapter`, or /v1's `model` when vLLM's OpenAI
# handlers call the store resolver (they pass only the name).
_naming_field: contextvars.ContextVar[str] = contextvars.ContextVar("adapter_naming_field", default="model")


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    source: str
    path: str
    rank: int
    base_model: str | None


def _lora_request_classes() -> tuple[Any, Any]:
    """vLLM's (LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest)."""
    try:  # vLLM 0.25 and later
        protocol = importlib.import_module("vllm.entrypoints.serve.lora.protocol")
    except ImportError:  # earlier releases
        protocol = importlib.import_module("vllm.entrypoints.openai.protocol")
    return protocol.LoadLoRAAdapterRequest, protocol.UnloadLoRAAdapterRequest


def _same_model(declared: str, model: ResolvedModel) -> bool:
    """Adapters name their base by Hub id or by local path; compare the final path component."""
    tail = declared.rstrip("/").rsplit("/", 1)[-1].lower()
    return tail in {model.name.rsplit("/", 1)[-1].lower(), Path(model.path).name.lower()}


def _too_large(what: str, size: int, limit: int) -> RequestError:
    return RequestError(
        f"{what} is {size} bytes, more than max_adapter_bytes ({limit}); raise the setting to accept it", status=413
    )


@dataclass(frozen=True)
class FetchedAdapter:
    """An adapter folder on local disk that passed validation: one this engine can load."""

    path: Path
    rank: int
    base_model: str | None


class AdapterFetcher:
    """Puts an adapter's folder on local disk and checks it: off the event loop, once per source at a time,
    size-capped.

    Errors carry no field: the caller knows which request field named the source.
    """

    def __init__(self, settings: ServiceSettings, roots: list[Path], model: ResolvedModel) -> None:
        self.settings = settings
        self.roots = roots
        self.model = model
        self._in_flight: dict[tuple[str, Path], asyncio.Future[FetchedAdapter]] = {}

    async def fetch(self, source: str, downloads: Path, kind: SourceKind | None = None) -> FetchedAdapter:
        """The validated local folder of `source`, downloading into `downloads` if needed.

        Racing callers share one download. It is shielded: a caller that goes away (client disconnect)
        does not cancel the download the others wait for. Validation runs inside it too, so a refused
        download is deleted even when every caller has gone.
        """
        key = (source, downloads)
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(
                asyncio.to_thread(self._fetch_checked, source, downloads, kind or source_kind(source))
            )
            self._in_flight[key] = future
            future.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(future)

    def _finished(self, key: tuple[str, Path], future: asyncio.Future[FetchedAdapter]) -> None:
        self._in_flight.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved: every waiter may have gone, which is no reason for asyncio to warn

    def _fetch_checked(self, source: str, downloads: Path, kind: SourceKind) -> FetchedAdapter:
        path = self._fetch(source, downloads, kind)
        try:
            return self._check(source, path)
        except ServiceError as exc:
            if path.is_relative_to(downloads):  # a refused download is no use to keep; a local folder stays
                shutil.rmtree(path, ignore_errors=True)
                log.warning("adapter %s refused after its download, which is deleted: %s", source, exc.message)
            raise

    def _fetch(self, source: str, downloads: Path, kind: SourceKind) -> Path:
        limit = self.settings.max_adapter_bytes
        if kind is SourceKind.S3:
            try:
                path = s3.fetch(
                    source,
                    downloads / "s3",
                    endpoint_url=self.settings.s3_endpoint_url,
                    what="adapter",
                    max_bytes=limit,
                )
            except s3.S3NotFoundError as exc:
                raise NotFoundError(str(exc)) from exc
            except s3.S3TooLargeError as exc:
                raise RequestError(f"{exc}; raise max_adapter_bytes to accept it", status=413) from exc
            except s3.S3DownloadError as exc:
                raise UpstreamError(str(exc)) from exc
            except ValueError as exc:  # not an s3:// URI the parser accepts
                raise RequestError(str(exc)) from exc
        elif kind is SourceKind.HUB:
            path = self._from_hub(source, downloads / "hub")
        else:
            path = self._local(source)
        # A cached download (fetched under an earlier, larger cap) or a local folder: checked here.
        size = folder_bytes(path)
        if size > limit:
            raise _too_large(f"adapter {source}", size, limit)
        return path

    def _check(self, source: str, path: Path) -> FetchedAdapter:
        config_file = path / "adapter_config.json"
        if not config_file.is_file():
            raise RequestError(f"{source} has no adapter_config.json: not a PEFT LoRA adapter")
        if not (path / "adapter_model.safetensors").is_file():
            found = sorted(p.name for p in path.iterdir() if p.name.startswith("adapter_model"))
            raise RequestError(
                f"{source}: expected adapter_model.safetensors, found {found or 'no weights'}; "
                "only safetensors weights are loaded (convert .bin with peft's save_pretrained)"
            )
        try:
            config = json.loads(config_file.read_text())
            rank = int(config.get("r", 0))
        except (ValueError, AttributeError) as exc:
            raise RequestError(f"{source}: adapter_config.json is not a PEFT config: {exc}") from exc
        if rank > self.settings.max_lora_rank:
            raise RequestError(
                f"adapter rank {rank} exceeds max_lora_rank {self.settings.max_lora_rank}; "
                "restart the service with a larger max_lora_rank"
            )
        base = config.get("base_model_name_or_path")
        if base and not _same_model(base, self.model):
            raise RequestError(
                f"adapter was trained for base model {base!r}, but this service serves {self.model.name!r}"
            )
        return FetchedAdapter(path=path, rank=rank, base_model=base)

    def _local(self, source: str) -> Path:
        resolved = Path(source).expanduser().resolve()
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise RequestError(
                f"{source} is outside the allowed adapter folders {[str(r) for r in self.roots]}; "
                "add its parent to the `adapter_roots` setting",
                status=403,
            )
        if not resolved.is_dir():
            raise NotFoundError(f"adapter folder {source} does not exist")
        return resolved

    def _from_hub(self, repo_id: str, downloads: Path) -> Path:
        from huggingface_hub import HfApi, snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            info = HfApi().model_info(repo_id, files_metadata=True)
            size = sum(sibling.size or 0 for sibling in info.siblings or [])
            if size > self.settings.max_adapter_bytes:
                raise _too_large(f"adapter {repo_id} (Hub metadata)", size, self.settings.max_adapter_bytes)
            return Path(snapshot_download(repo_id, revision=info.sha, local_dir=downloads / repo_id.replace("/", "--")))
        except RepositoryNotFoundError as exc:
            raise NotFoundError(f"no Hugging Face repo {repo_id!r}") from exc
        except ServiceError:
            raise
        except Exception as exc:  # the Hub client raises many types (offline, auth, HTTP)
            raise RequestError(f"could not fetch adapter {repo_id!r} from the Hugging Face Hub: {exc}") from exc


def vllm_resolver(load: Callable[[str], Awaitable[LoRARequest]]) -> LoRAResolver:
    """`load` as a vLLM `LoRAResolver`: what `OpenAIServingModels.resolve_lora` consults for unknown names."""
    from vllm.lora.resolver import LoRAResolver

    class AdapterStoreResolver(LoRAResolver):
        async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
            return await load(lora_name)

    return AdapterStoreResolver()


class _UseRecordingRequests(dict[str, "LoRARequest"]):
    """vLLM's name -> LoRARequest map. vLLM's handlers look an adapter up here for every request that
    names one (`_maybe_get_adapters`), so each lookup marks it recently used for the cache's LRU order."""

    def __init__(self, requests: dict[str, LoRARequest], on_use: Callable[[str], None]) -> None:
        super().__init__(requests)
        self._on_use = on_use

    def __getitem__(self, name: str) -> LoRARequest:
        request = super().__getitem__(name)
        self._on_use(name)
        return request


class AdapterRegistry:
    def __init__(self, settings: ServiceSettings, model: ResolvedModel, serving_models: Any) -> None:
        self.settings = settings
        self.model = model
        self.serving_models = serving_models
        self.cache = settings.cache_dir / "adapters"
        self.infos: dict[str, AdapterInfo] = {}
        # Without LoRA in the engine, a store has nothing to load into: unknown names stay 404s.
        self.store = (
            AdapterStore.parse(settings.adapter_store) if settings.adapter_store and settings.enable_lora else None
        )
        self.store_cache = self.cache / "store"
        self.lru = AdapterCache(settings.adapter_cache_bytes)
        # Folders named at start are trusted like adapter_roots: the operator chose them.
        configured = [Path(src).expanduser() for src in settings.adapters.values() if not is_s3_uri(src)]
        if self.store is not None and self.store.kind is SourceKind.LOCAL:
            configured.append(Path(self.store.uri))
        self.roots = [p.resolve() for p in (*settings.adapter_roots, *configured, self.cache)]
        self.fetcher = AdapterFetcher(settings, self.roots, model)
        if self.store is not None:
            self._attach_store()

    def _attach_store(self) -> None:
        for leftover in self.lru.adopt_leftovers(self.store_cache):
            shutil.rmtree(leftover.folder, ignore_errors=True)
        self.serving_models.lora_resolvers.append(vllm_resolver(self._load_from_store))
        self.serving_models.lora_requests = _UseRecordingRequests(self.serving_models.lora_requests, self.lru.touch)
        # vLLM's /v1 handlers consult resolvers only with this set. Set now, after vLLM's app was built: set
        # before, vLLM would also mount /v1/load_lora_adapter, which loads any local path unvalidated.
        os.environ["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "1"
        from vllm import envs

        if not envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING:  # vLLM froze its environment earlier in this process
            log.warning("/v1 cannot load adapters from %s on first use; the service's own endpoints can", self.store)
        log.info(
            "adapters load on first use from %s (cache %d bytes, %d in use)",
            self.store,
            self.lru.capacity,
            self.lru.used,
        )

    # --- registration --------------------------------------------------------------------------
    async def register(self, name: str, source: str) -> AdapterInfo:
        if not self.settings.enable_lora:
            raise RequestError("LoRA is disabled on this service (enable_lora=false)", field="name", status=409)
        if not ADAPTER_NAME.match(name):
            raise RequestError("use 1-64 letters, digits, '.', '_' or '-'", field="name")
        if name == self.model.name:
            raise RequestError(f"{name!r} is the base model's name", field="name", status=409)
        try:
            info = await self._fetch_valid(name, source, self.cache)
        except ServiceError as exc:
            raise exc.with_field_prefix("source") from None
        load_request_cls, _ = _lora_request_classes()
        # In place: re-registering a name replaces it (vLLM refuses a taken name otherwise), and two registrations
        # of one name racing each other both succeed.
        inplace = {"load_inplace": True} if "load_inplace" in load_request_cls.model_fields else {}
        request = load_request_cls(lora_name=name, lora_path=info.path, **inplace)
        result = await self.serving_models.load_lora_adapter(request)
        if not isinstance(result, str):  # an ErrorResponse
            error = getattr(result, "error", result)
            raise RequestError(
                f"vLLM could not load adapter {name!r}: {getattr(error, 'message', error)}", field="source"
            )
        # vLLM keeps the flag on the request it stores for the name and sends with every generation, and an engine
        # step whose batch holds a request with `load_inplace` reloads the adapter from disk: /viggo ran at a fifth
        # of raw vLLM's rate on an H100 (bench/results/h100-tasks.md). The engine has loaded these weights now.
        stored = self.serving_models.lora_requests.get(name)
        if getattr(stored, "load_inplace", False):
            stored.load_inplace = False
        replaced = name in self.infos
        self.infos[name] = info
        # A registration pins the name: it is no longer the store's to evict.
        on_demand = self.lru.pop(name)
        if on_demand is not None and on_demand.folder != info.path:
            await self._delete_download(on_demand.folder)
        log.info("adapter %r %s from %s (rank %d)", name, "replaced" if replaced else "loaded", source, info.rank)
        return info

    async def _fetch_valid(
        self, name: str, source: str, downloads: Path, kind: SourceKind | None = None
    ) -> AdapterInfo:
        fetched = await self.fetcher.fetch(source, downloads, kind)
        return AdapterInfo(
            name=name, source=source, path=str(fetched.path), rank=fetched.rank, base_model=fetched.base_model
        )

    async def _delete_download(self, folder: str) -> None:
        if Path(folder).is_relative_to(self.cache):
            await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)

    # --- on demand -----------------------------------------------------------------------------
    async def _load_from_store(self, name: str) -> LoRARequest:
        """Fetch, validate and make room for adapter `name` from the store (vLLM then loads it)."""
        from vllm.lora.request import LoRARequest

        assert self.store is not None
        field = _naming_field.get()
        if not ADAPTER_NAME.match(name):
            raise NotFoundError(
                f"{name!r} is not loaded, nor an adapter name the adapter store {self.store} can hold "
                "(1-64 letters, digits, '.', '_' or '-')",
                field=field,
            )
        source = self.store.source_for(name)
        try:
            info = await self._fetch_valid(name, source, self.store_cache, self.store.kind)
        except NotFoundError:
            raise NotFoundError(
                f"unknown adapter {name!r}: not loaded, and the adapter store {self.store} has no {source}/",
                field=field,
            ) from None
        except ServiceError as exc:
            raise exc.with_field_prefix(field) from None
        size = folder_bytes(Path(info.path))
        try:
            evicted = self.lru.add(info.path, size, name)
        except ValueError:
            raise RequestError(
                f"adapter {name!r} is {size} bytes, more than adapter_cache_bytes ({self.lru.capacity})",
                field=field,
                status=413,
            ) from None
        for entry in evicted:
            await self._evict(entry)
        self.infos[name] = info
        log.info(
            "adapter %r fetched from the adapter store %s (%d bytes; cache %d of %d bytes)",
            name,
            self.store,
            size,
            self.lru.used,
            self.lru.capacity,
        )
        return LoRARequest(lora_name=name, lora_int_id=1, lora_path=info.path)  # vLLM assigns the id

    async def _evict(self, entry: CacheEntry) -> None:
        info = self.infos.get(entry.name) if entry.name is not None else None
        if info is not None and info.path == entry.folder:
            _, unload_request_cls = _lora_request_classes()
            await self.serving_models.unload_lora_adapter(unload_request_cls(lora_name=info.name))
            del self.infos[info.name]
        await self._delete_download(entry.folder)
        log.info(
            "adapter %r evicted from the adapter cache (least recently used; %d bytes freed)",
            entry.name or entry.folder,
            entry.size,
        )

    # --- lookup --------------------------------------------------------------------------------
    async def resolve(self, name: str | None) -> LoRARequest | None:
        """The engine's request for adapter `name` (None: the base model), loading it from the store on first use."""
        from vllm.lora.request import LoRARequest

        if not name or name == self.model.name:
            return None
        if name in self.serving_models.lora_requests:
            return self.serving_models.lora_requests[name]
        if self.store is None:
            raise NotFoundError(
                f"unknown adapter {name!r}; registered: {sorted(self.infos) or 'none'}", field="adapter"
            )
        token = _naming_field.set("adapter")
        try:
            result = await self.serving_models.resolve_lora(name)
        finally:
            _naming_field.reset(token)
        if isinstance(result, LoRARequest):
            return result
        # vLLM found it through the store resolver but the engine refused it (vLLM logged why).
        refused = self.lru.pop(name)
        self.infos.pop(name, None)
        if refused is not None:
            await self._delete_download(refused.folder)
        error = getattr(result, "error", result)
        raise RequestError(
            f"adapter {name!r} from the adapter store {self.store} could not be loaded by the engine: "
            f"{getattr(error, 'message', error)} (the service log says why)",
            field="adapter",
        )

    def list(self) -> list[AdapterInfo]:
        return list(self.infos.values())
