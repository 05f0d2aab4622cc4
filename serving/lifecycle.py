"""A replica's life: graceful drain on SIGTERM, honest engine failure, a start that fails ends `bentoml serve`.

The processes of `bentoml serve` (BentoML 1.4): the CLI process loads this service, then becomes circus'
arbiter (its process title turns to `circusd`). The arbiter starts the service worker in a session of its
own, and the worker's vLLM engine core (with its own workers) are the worker's children. In a container the
CLI is PID 1, the process Kubernetes and BentoCloud send SIGTERM to at every scale-down and rollout.

Without the hooks here, SIGTERM to the CLI made circus send SIGTERM to the worker *and to its children*: the
engine core aborted every request at once (`/v1` streams ended with `finish_reason: abort`, `/generate`
streams looked finished), the CLI exited before the engine's own workers, and a worker that failed to start
was restarted forever (outside a container; inside one, circus gave up with an unrelated traceback). Two
halves fix this:

- In the CLI (`install_serve_hooks`, called when service.py is imported, which the CLI does): BentoML creates
  the worker's circus watcher through `bentoml.serving.create_watcher`, looked up when `serve` runs, so
  wrapping that function is the one place to change how circus treats the worker (BentoML 1.4 offers no
  option for it). Circus then signals the worker alone (the worker stops its engine itself, after the
  drain), allows it `shutdown_grace_s` plus a margin before SIGKILL-ing its whole tree, and stops for good
  when the worker exits with uvicorn's "startup failed" status. The CLI becomes the child subreaper of its
  descendants, so whatever they leave behind is re-parented to it, and kills them before it exits: the CLI
  is the last process of the replica to end.
- In the worker (`Lifecycle`): SIGTERM (or SIGINT) starts the drain instead of uvicorn's immediate
  shutdown, which would stop accepting connections (readiness probes would time out rather than say 503).
  The admission gate refuses new requests with 503 + Retry-After, readiness turns 503, requests in flight
  run to completion for up to `shutdown_grace_s`; then what is still running is aborted in the engine
  (`/generate` raises, so its stream is cut without the final chunk; `/v1` streams end with
  `finish_reason: abort`, as vLLM's own drain does), the result spool gets the rest of the deadline to
  flush, and only then does uvicorn shut down and the service's shutdown hook stop the engine.

An engine that dies (its process killed, a fatal error) makes `__is_alive__` false, so `/livez` answers 503
and the orchestrator restarts the replica; `EngineGuardMiddleware` answers every request meanwhile with a
503 that names the cause, on `/v1` too (vLLM's handler would answer 500).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from serving.admission import Admission, exempt
from serving.errors import UnavailableError, error_response

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from vllm.v1.engine.async_llm import AsyncLLM

    from serving.results_store import ResultStore

log = logging.getLogger(__name__)

# uvicorn's exit status when the application's startup failed (uvicorn.config.STARTUP_FAILURE): what the
# worker exits with when the service's __init__ or a startup hook raised.
STARTUP_FAILED_EXIT = 3
# Python's exit status after an uncaught exception.
UNCAUGHT_EXCEPTION_EXIT = 1
# Beyond the grace period: stopping the engine and the worker's exit (a few seconds on CPU and GPU).
WORKER_EXIT_MARGIN_S = 30.0
# After the cut, how long the aborted requests get to send their last bytes before uvicorn shuts down.
CUT_SETTLE_S = 2.0
# The spool flush gets what is left of the grace period, but at least this.
MIN_FLUSH_S = 1.0
ENGINE_WATCH_INTERVAL_S = 1.0
PR_SET_CHILD_SUBREAPER = 36
KILLED_EXIT_WAIT_S = 60


# --- the `bentoml serve` process (CLI, then circus arbiter) -----------------------------------------------


class _ServeProcess:
    """State of the CLI process: whether the hooks are in place, and the exit status it owes."""

    exit_status = 0
    hooked = False


def install_serve_hooks(grace_s: float) -> None:
    """Make `bentoml serve`'s circus drain, stop and give up on the worker as the module docstring says.

    Harmless in the worker and in `bentoml build`, which import service.py too but never create a watcher.
    """
    import bentoml.serving

    create_watcher = bentoml.serving.create_watcher
    if getattr(create_watcher, "__wrapped_by_lifecycle__", False):
        return

    def create_service_watcher(*args: Any, **kwargs: Any) -> Any:
        watcher = create_watcher(*args, **kwargs)
        watcher.stop_children = False
        watcher.graceful_timeout = grace_s + WORKER_EXIT_MARGIN_S
        watcher.hooks["after_reap"] = _after_worker_exit
        if not _ServeProcess.hooked:
            _ServeProcess.hooked = True
            _become_subreaper()
            atexit.register(_outlive_descendants)
            sys.excepthook = _quiet_startup_failure(sys.excepthook)
        return watcher

    create_service_watcher.__wrapped_by_lifecycle__ = True  # type: ignore[attr-defined]
    bentoml.serving.create_watcher = create_service_watcher


def _become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning(
            "could not become child subreaper (errno %d); orphans of the worker may outlive it", ctypes.get_errno()
        )


def _after_worker_exit(watcher: Any, arbiter: Any, hook_name: str, **info: Any) -> bool:
    """circus hook: a worker whose startup failed would fail again; stop, and make `bentoml serve` fail."""
    exit_code = info.get("exit_code")
    if exit_code == STARTUP_FAILED_EXIT:
        # Not respawned, the worker leaves the watcher empty, and BentoML's circus then stops the arbiter by
        # raising "No active process found for watcher." out of `bentoml serve` (see _quiet_startup_failure).
        watcher.respawn = False
        _ServeProcess.exit_status = STARTUP_FAILED_EXIT
        log.error(
            "the service could not start (its error is logged above); stopping `bentoml serve` with exit "
            "status %d instead of restarting it",
            STARTUP_FAILED_EXIT,
        )
    else:
        log.info("service worker %s exited with status %s", info.get("process_pid"), exit_code)
    return True


def _quiet_startup_failure(excepthook: Callable[..., Any]) -> Callable[..., Any]:
    """The arbiter's exception after a failed start is no news: the worker's error and ours are logged. Any other
    exception that ends `bentoml serve` (its port taken, say) is printed, and the exit it causes is logged as 1."""

    def hook(kind: type[BaseException], value: BaseException, traceback: Any) -> None:
        if not _ServeProcess.exit_status:
            if not issubclass(kind, KeyboardInterrupt):  # Python ends that one by SIGINT, not with a status
                _ServeProcess.exit_status = UNCAUGHT_EXCEPTION_EXIT
            excepthook(kind, value, traceback)

    return hook


def _is_running(process: Any) -> bool:
    import psutil

    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _outlive_descendants() -> None:
    """At the CLI's exit: end what its descendants left behind, then exit with the status owed."""
    import psutil

    descendants = psutil.Process().children(recursive=True)
    running = [p for p in descendants if _is_running(p)]
    if running:
        log.warning("stopping %d process(es) left behind: %s", len(running), [p.pid for p in running])
        for process in running:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(running, timeout=5)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        # A killed process is gone only once the kernel has torn down its memory: seconds for a vLLM worker's
        # gigabytes on a busy host (CI once saw one still running 5 s after SIGKILL). Waited for, so that
        # nothing outlives this process; also reaps the orphans re-parented to it (the subreaper).
        _, alive = psutil.wait_procs(alive, timeout=KILLED_EXIT_WAIT_S)
        if alive:
            log.error("%d process(es) survived SIGKILL for %d s: %s", len(alive), KILLED_EXIT_WAIT_S, alive)
    # Also reaps the zombies of orphans re-parented to this process (the subreaper) after circus stopped reaping.
    psutil.wait_procs(descendants, timeout=5)
    log.info("bentoml serve exits (status %d)", _ServeProcess.exit_status)
    logging.shutdown()
    if _ServeProcess.exit_status:
        # BentoML's CLI has no say in its exit status after a failed start (circus' exception gives 1): the
        # owed status can only be set here. os._exit skips the exit handlers registered before this one,
        # which is why logging was flushed above.
        os._exit(_ServeProcess.exit_status)


# --- the service worker ---------------------------------------------------------------------------------


class Lifecycle:
    """The worker's side: readiness, liveness, the engine's failure, and the drain on SIGTERM."""

    def __init__(self, admission: Admission, grace_s: float) -> None:
        self.admission = admission
        self.grace_s = grace_s
        self.started = False
        self.engine: AsyncLLM | None = None
        self.store: ResultStore | None = None
        self._engine_stopped = False
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, engine: AsyncLLM, store: ResultStore) -> None:
        self.engine = engine
        self.store = store

    def start(self) -> None:
        """Call at the end of the service's startup: take over SIGTERM/SIGINT, watch the engine, turn ready."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, self._on_signal, sig, previous)
        self._spawn(self._watch_engine())
        self.started = True
        log.info("replica ready: drains for up to %.0f s on SIGTERM", self.grace_s)

    def engine_failure(self) -> str | None:
        """Why the engine cannot serve (None while it can)."""
        engine = self.engine
        if engine is None or not getattr(engine, "errored", False):
            return None
        if self._engine_stopped:
            return "the engine has been shut down: this replica is stopping"
        cause = getattr(engine, "dead_error", None)
        name = type(cause).__name__ if isinstance(cause, BaseException) else "EngineDeadError"
        return f"the engine process died ({name}): this replica cannot serve until it is restarted; retry"

    def alive(self) -> bool:
        return self.engine_failure() is None

    def ready(self) -> bool:
        return self.started and not self.admission.draining and self.alive()

    async def stop_engine(self) -> None:
        """The last step of the service's shutdown hook."""
        if self.engine is not None and not self._engine_stopped:
            self._engine_stopped = True
            log.info("stopping the engine")
            await asyncio.to_thread(self.engine.shutdown)
            log.info("engine stopped")

    # --- drain ---

    def _on_signal(self, sig: signal.Signals, previous: Any) -> None:
        if self.admission.draining:
            log.info("%s again: already draining", sig.name)
            return
        self._spawn(self._drain(sig, previous))

    async def _drain(self, sig: signal.Signals, previous: Any) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_s
        log.info("%s received: draining for up to %.0f s", sig.name, self.grace_s)
        self.admission.begin_drain()
        if await self.admission.wait_idle(self.grace_s):
            log.info("drained: every request in flight finished")
        else:
            in_flight = self.admission.in_flight
            aborted = await self._abort_engine_requests()
            log.warning(
                "grace period of %.0f s over: cutting %d request(s) still in flight (%d engine request(s) aborted)",
                self.grace_s,
                in_flight,
                aborted,
            )
            if not await self.admission.wait_idle(CUT_SETTLE_S):
                log.warning("%d request(s) still open after the cut; the server closes them", self.admission.in_flight)
        if self.store is not None:
            await self.store.close(timeout_s=max(deadline - loop.time(), MIN_FLUSH_S))
            log.info("result spool: %d result(s) left for the next start", self.store.pending())
        log.info("drain done in %.1f s: shutting down", self.grace_s - (deadline - loop.time()))
        # Hand the signal to whoever handled it before (uvicorn: stop serving, run the shutdown hooks, exit).
        loop.remove_signal_handler(sig)
        signal.signal(sig, previous)
        signal.raise_signal(sig)

    async def _abort_engine_requests(self) -> int:
        """Abort every request the engine runs; their streams end with finish_reason `abort`."""
        engine = self.engine
        if engine is None or not self.alive():
            return 0
        states = getattr(getattr(engine, "output_processor", None), "request_states", {})
        ids = sorted({getattr(state, "external_req_id", None) or rid for rid, state in states.items()})
        if ids:
            await engine.abort(ids)
        return len(ids)

    # --- engine watch ---

    async def _watch_engine(self) -> None:
        while not self._engine_stopped:
            failure = self.engine_failure()
            if failure is not None:
                log.error("%s. /livez answers 503 from now on, so that the replica gets restarted", failure)
                return
            await asyncio.sleep(ENGINE_WATCH_INTERVAL_S)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class EngineGuardMiddleware:
    """503 naming the cause, instead of a generic 500, for every request once the engine has died.

    Requests that arrive after the death are answered here; one that was running when the engine died and
    ends in a 500 before any byte was sent gets the same 503 instead (BentoML and vLLM would say 500).
    """

    def __init__(self, app: ASGIApp, failure: Callable[[], str | None]) -> None:
        self.app = app
        self.failure = failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if exempt(scope):
            await self.app(scope, receive, send)
            return
        if (failure := self.failure()) is not None:
            await error_response(UnavailableError(failure, retry_after_s=5))(scope, receive, send)
            return
        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] >= 500:
                failure = self.failure()
                if failure is not None:
                    replaced = True
                    await error_response(UnavailableError(failure, retry_after_s=5))(scope, receive, send)
                    return
            if not replaced:
                await send(message)

        await self.app(scope, receive, guarded_send)
