"""The BentoML service: one vLLM engine, its OpenAI-compatible /v1 API, and the extraction endpoints.

This file only wires things together; the logic lives in `serving/`, `ner/` and `viggo/`.
Settings: `bentoml serve . --arg max_num_seqs=32` or environment variables (see serving/settings.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Annotated, cast

import bentoml
from annotated_types import Ge, Le
from pydantic import Field

from ner.protocol import EXAMPLE_TEXT, BatchItemResult, EntityResult, MinScore, TextSample
from serving.access_log import install as install_access_log
from serving.admission import Admission, AdmissionMiddleware
from serving.auth import ApiKeyMiddleware
from serving.content_type import JsonEndpointsMiddleware, endpoint_routes
from serving.disconnect import DisconnectMiddleware
from serving.errors import answers_errors
from serving.job_protocol import JobId, JobManifest, JobSource, Overwrite
from serving.lifecycle import EngineGuardMiddleware, Lifecycle, install_serve_hooks
from serving.openai_app import DirectToOpenAIApp, LateOpenAIApp
from serving.openapi import OpenAPIMiddleware
from serving.protocol import (
    AdapterName,
    AdapterRegistration,
    AdapterView,
    ChatMessage,
    Persist,
    Prompt,
    Seed,
    Temperature,
    TopP,
)
from serving.request_limits import RequestLimits, RequestLimitsMiddleware
from serving.request_timeout import install as install_request_timeout
from serving.settings import ServiceSettings
from serving.tracing import bentoml_sample_rate, excluded_urls, leave_out_when_untraced, warn_if_sampled_but_excluded
from serving.traffic_metrics import install as install_traffic_metrics
from viggo.protocol import ViggoPrediction

# BentoML shows INFO records of its own loggers only; the service's state changes (drain, spool, adapters) too.
logging.getLogger("serving").setLevel(logging.INFO)

# vLLM is imported only inside the class's methods: the `bentoml serve` and `bentoml build` processes
# import this module too, and need none of it.
settings = bentoml.use_arguments(ServiceSettings)
openai_app = LateOpenAIApp()
admission = Admission(settings.admitted_concurrency)
lifecycle = Lifecycle(admission, settings.shutdown_grace_s)
# Runs in the `bentoml serve` process: how circus stops and restarts the worker (serving/lifecycle.py).
install_serve_hooks(settings.shutdown_grace_s)
# BentoML's request timeout, without a timer left for 600 s after every request (serving/request_timeout.py).
install_request_timeout()
# Its request metrics, each series looked up once rather than four times a request (serving/traffic_metrics.py).
install_traffic_metrics()
# Its access log, the same line for less work per request and per streamed chunk (serving/access_log.py).
install_access_log()
# Nor its tracing middleware where nothing is traced (serving/tracing.py).
leave_out_when_untraced(trace_requests=settings.trace_requests, trace_streams=settings.trace_streams)

MaxTokens = Annotated[int, Ge(1), Le(settings.max_model_len)]
# vLLM refuses an empty stop string (a 500 if it got that far).
StopStrings = Annotated[list[Annotated[str, Field(min_length=1)]] | None, Field(max_length=settings.max_stop_strings)]


@bentoml.asgi_app(openai_app, path="/v1")
@bentoml.service(
    name="llm-extraction",
    # One HTTP request per engine sequence slot: more would only queue inside vLLM.
    traffic={"concurrency": settings.max_num_seqs, "timeout": settings.request_timeout_s},
    resources={"gpu": settings.tensor_parallel_size},
    endpoints={"livez": "/livez", "readyz": "/readyz"},
    # Traced only when asked: the middleware's per-request work costs throughput even where nothing is sampled.
    tracing={
        "excluded_urls": excluded_urls(trace_requests=settings.trace_requests, trace_streams=settings.trace_streams)
    },
)
class LLMService:
    """LLM serving on vLLM: streaming generation, OpenAI-compatible /v1, entity and ViGGO extraction."""

    def __init__(self) -> None:
        from ner.extractor import EntityExtractor
        from ner.records import EntityRecords
        from serving.engine import build_engine
        from serving.generation import Generator
        from serving.jobs import Jobs
        from serving.metrics import keep_engine_series_in_memory
        from serving.results_store import ResultStore
        from viggo.predictor import ViggoPredictor

        keep_engine_series_in_memory()  # before the engine's stat logger creates its series
        self.handle = build_engine(settings)
        self.generator = Generator(self.handle.engine, settings.max_model_len)
        self.store = ResultStore.from_settings(settings)
        self.entity_records = EntityRecords(
            EntityExtractor(
                self.generator, max_text_chars=settings.max_text_chars, labelling_adapter=settings.ner_adapter
            ),
            self.store,
            model_name=self.handle.model.name,
            persist_default=settings.persist_results,
        )
        self.viggo_predictor = ViggoPredictor(self.generator, span_values=settings.viggo_span_values)
        self.jobs = Jobs(
            generator=self.generator,
            engine_alive=lambda: not self.handle.engine.errored,
            store=self.store,
            entity_records=self.entity_records,
            viggo_predictor=self.viggo_predictor,
            model_name=self.handle.model.name,
            results_uri=settings.results_uri,
            input_roots=settings.job_input_roots,
            s3_endpoint_url=settings.s3_endpoint_url,
            concurrency=settings.resolved_job_concurrency,
        )
        lifecycle.attach(self.handle.engine, self.store)

    @bentoml.on_startup
    async def _start(self) -> None:
        from serving.adapters import AdapterRegistry
        from serving.openai_app import build_openai_app

        app = await build_openai_app(self.handle.engine, self.handle.args)
        self.adapters = AdapterRegistry(settings, self.handle.model, app.state.openai_serving_models)
        self.generator.adapters = self.adapters
        for name, source in settings.adapters.items():
            await self.adapters.register(name, source)
        await self.store.start()
        await openai_app.start(app)
        warn_if_sampled_but_excluded(
            bentoml_sample_rate(), trace_requests=settings.trace_requests, trace_streams=settings.trace_streams
        )
        lifecycle.start()

    @bentoml.on_shutdown
    async def _stop(self) -> None:
        # After a SIGTERM, the drain has already let requests finish and flushed the spool (serving/lifecycle.py).
        await openai_app.stop()
        await self.store.close()
        await lifecycle.stop_engine()

    async def __is_ready__(self) -> bool:
        return lifecycle.ready()

    async def __is_alive__(self) -> bool:
        return lifecycle.alive()

    def __metrics__(self, content: str) -> str:
        from serving.metrics import with_engine_series

        return with_engine_series(content)

    @bentoml.api
    @answers_errors
    async def generate(
        self,
        prompt: Prompt = "",
        messages: Annotated[
            list[ChatMessage] | None, Field(description="Chat messages, rendered with the model's chat template.")
        ] = None,
        max_tokens: MaxTokens = 256,
        temperature: Temperature = 0.7,
        top_p: TopP = 1.0,
        stop: StopStrings = None,
        seed: Seed = None,
        adapter: AdapterName = None,
    ) -> AsyncGenerator[str, None]:
        """Stream generated text. Disconnecting aborts the request in the engine."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=seed)
        return await self.generator.text_stream(self.generator.prompt_ids(prompt, messages), params, adapter)

    @bentoml.api
    @answers_errors
    async def extract_entities(
        self,
        text: Annotated[
            str | None, Field(description="The text to extract entities from.", examples=[EXAMPLE_TEXT])
        ] = None,
        body: Annotated[
            str | None, Field(description="Alternative to `text` (the `{id, body}` text-sample shape).")
        ] = None,
        id: Annotated[str | None, Field(description="Record id of the stored result; generated when absent.")] = None,
        adapter: AdapterName = None,
        persist: Persist = None,
        min_score: MinScore = None,
    ) -> EntityResult:
        """Persons, organizations, locations and dates in `text`, each grounded by its character spans."""
        sample = TextSample(text=text, body=body, id=id)
        return await self.entity_records.run(sample, adapter=adapter, persist=persist, min_score=min_score)

    @bentoml.api
    @answers_errors
    async def extract_entities_batch(
        self,
        items: Annotated[
            list[TextSample],
            Field(
                min_length=1,
                max_length=settings.max_batch_items,
                examples=[[{"text": EXAMPLE_TEXT}, {"id": "doc-2", "body": "Tim Cook runs Apple."}]],
            ),
        ],
        adapter: AdapterName = None,
        persist: Persist = None,
        min_score: MinScore = None,
    ) -> list[BatchItemResult]:
        """Several texts at once on the one engine; results in input order, errors reported per item."""
        await self.adapters.resolve(adapter)
        return await self.entity_records.run_batch(items, adapter=adapter, persist=persist, min_score=min_score)

    @bentoml.api
    @answers_errors
    async def viggo(
        self,
        sentence: Annotated[
            str,
            Field(
                description="A sentence about a video game.",
                examples=["Blizzard North released Diablo II for the Mac and I think it's good."],
            ),
        ],
        adapter: AdapterName = None,
    ) -> ViggoPrediction:
        """The sentence's ViGGO meaning representation, always well-formed (grammar-constrained decoding)."""
        return await self.viggo_predictor.predict(sentence, adapter or settings.viggo_adapter)

    @bentoml.api(route="/admin/adapters")
    @answers_errors
    async def register_adapter(self, adapter: AdapterRegistration) -> AdapterView:
        """Register (or replace) a LoRA adapter at run time; it then appears in /v1/models."""
        return AdapterView.of(await self.adapters.register(adapter.name, adapter.source))

    @bentoml.api(route="/admin/adapters/list")
    async def list_adapters(self) -> list[AdapterView]:
        """The registered LoRA adapters."""
        return [AdapterView.of(info) for info in self.adapters.list()]

    @bentoml.task
    @answers_errors
    async def extract_entities_job(
        self,
        source: JobSource,
        adapter: AdapterName = None,
        overwrite: Overwrite = False,
        job_id: JobId = None,
    ) -> JobManifest:
        """NER over every JSONL record (`{id, body}` or `{id, text}`) of a corpus, stored as /extract_entities
        stores it; `submit` answers the job id at once. Re-submitted, it skips what is stored (resumes)."""
        task_id = current_task_id()
        return await self.jobs.run(
            self.jobs.ner,
            source,
            adapter=adapter or settings.ner_adapter,  # stored results name it: a resubmitted job compares it
            overwrite=overwrite,
            job_id=job_id,
            task_id=task_id,
        )

    @bentoml.task
    @answers_errors
    async def viggo_job(
        self,
        source: JobSource,
        adapter: AdapterName = None,
        overwrite: Overwrite = False,
        job_id: JobId = None,
    ) -> JobManifest:
        """ViGGO over every sentence of a CSV (`sentence` or `ref` column) or JSONL corpus, each stored at
        `{results_uri}/{id}/viggo.json`; `submit` answers the job id at once."""
        task_id = current_task_id()
        return await self.jobs.run(
            self.jobs.viggo,
            source,
            adapter=adapter or settings.viggo_adapter,
            overwrite=overwrite,
            job_id=job_id,
            task_id=task_id,
        )


# mypy does not apply class decorators (python/mypy#3135): what `bentoml.service` made of the class.
llm_service = cast("bentoml.Service[LLMService]", LLMService)


def current_task_id() -> str | None:
    """The id BentoML gave the task this call runs as (what `submit` answered); None outside a task.

    Read from the service's context, not through a `ctx` parameter: with one, BentoML sends every response with
    the context's status (200), so a failed job would read as completed.
    """
    return getattr(llm_service.context.request.state, "task_id", None)


if settings.api_key is not None:
    llm_service.add_asgi_middleware(ApiKeyMiddleware, api_key=settings.api_key.get_secret_value())
# After the API key check, so unauthenticated calls never take an admission slot.
llm_service.add_asgi_middleware(AdmissionMiddleware, admission=admission)
llm_service.add_asgi_middleware(EngineGuardMiddleware, failure=lifecycle.engine_failure)
llm_service.add_asgi_middleware(RequestLimitsMiddleware, limits=RequestLimits.from_settings(settings))
# /v1 past everything below, which only the service's own endpoints use (serving/openai_app.py).
llm_service.add_asgi_middleware(DirectToOpenAIApp, openai_app=openai_app)
llm_service.add_asgi_middleware(JsonEndpointsMiddleware, routes=endpoint_routes(llm_service.apis.values()))
llm_service.add_asgi_middleware(OpenAPIMiddleware, service=LLMService)
# Innermost, so that it watches the connection only once the body has reached the endpoint. vLLM's app (/v1), whose
# handlers abort on a disconnect themselves, never gets here.
llm_service.add_asgi_middleware(DisconnectMiddleware)
