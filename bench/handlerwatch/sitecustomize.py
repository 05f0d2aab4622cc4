"""Times vLLM's output handler in every Python process started with this folder first on PYTHONPATH.

The handler (`AsyncLLM`'s `output_handler` task, on the serving process' event loop) does three things a step: it
decodes the engine core's outputs (`MsgpackDecoder.decode`, in the output socket's task), turns them into request
outputs and hands each to its request (`OutputProcessor.process_outputs`: detokenizing, stop strings, the queues),
and records the step's stats (`StatLoggerManager.record`). py-spy put more of the service's event loop there than of
raw vLLM's with the same requests (machine S, README); sampling cannot say whether each call costs more or there are
more calls. This counts, per process, each method's calls, the outputs `process_outputs` got, and the wall and the
thread's CPU time inside them; `python -m bench.handler_cost` reads the totals back per output and per call.

A line `[handlerwatch] t=... pid=... NAME=calls/items/wall_ms/cpu_ms ...` goes to stderr at most once a second, from
inside a call. Timing costs two clock reads of each kind a call (a call per engine step, not per token). Python
imports only the first `sitecustomize` on its path: this folder and bench/gcwatch/ are one or the other.
"""

import importlib.abc
import importlib.machinery
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

Target = tuple[str, str, str, bool]

# module -> (class, method, name in the lines, whether the first argument's length is the items' count)
TARGETS: dict[str, Target] = {
    "vllm.v1.serial_utils": ("MsgpackDecoder", "decode", "decode", False),
    "vllm.v1.engine.output_processor": ("OutputProcessor", "process_outputs", "process_outputs", True),
    "vllm.v1.metrics.loggers": ("StatLoggerManager", "record", "record", False),
}
NAMES = [name for _, _, name, _ in TARGETS.values()]
_totals: dict[str, list[float]] = {name: [0, 0, 0.0, 0.0] for name in NAMES}  # calls, items, wall s, thread cpu s
_written = [0.0]


def _write(now: float) -> None:
    _written[0] = now
    parts = " ".join(
        f"{name}={calls:.0f}/{items:.0f}/{wall * 1000:.3f}/{cpu * 1000:.3f}"
        for name, (calls, items, wall, cpu) in _totals.items()
    )
    sys.stderr.write(f"[handlerwatch] t={time.time():.3f} pid={os.getpid()} {parts}\n")


def _timed(method: Callable[..., Any], name: str, counts_items: bool) -> Callable[..., Any]:
    totals = _totals[name]
    perf, thread = time.perf_counter, time.thread_time

    def timed(self: object, *args: Any, **kwargs: Any) -> Any:
        wall0, cpu0 = perf(), thread()
        try:
            return method(self, *args, **kwargs)
        finally:
            wall1 = perf()
            totals[3] += thread() - cpu0
            totals[2] += wall1 - wall0
            totals[0] += 1
            if counts_items and args:
                totals[1] += len(args[0])
            if wall1 - _written[0] > 1.0:
                _write(wall1)

    timed.__wrapped__ = method  # type: ignore[attr-defined]
    timed.__name__ = method.__name__
    timed.__qualname__ = method.__qualname__
    return timed


class _Loader(importlib.abc.Loader):
    """The module's own loader, then the method wrapped."""

    def __init__(self, loader: importlib.abc.Loader, target: Target) -> None:
        self.loader = loader
        self.target = target

    def __getattr__(self, name: str) -> Any:  # get_source for tracebacks, resource readers, ...
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        cls_name, method_name, name, counts_items = self.target
        cls = getattr(module, cls_name, None)
        if cls is None or not hasattr(cls, method_name):  # another vLLM: say so rather than count nothing
            sys.stderr.write(f"[handlerwatch] pid={os.getpid()} {module.__name__} has no {cls_name}.{method_name}\n")
            return
        setattr(cls, method_name, _timed(getattr(cls, method_name), name, counts_items))


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, TARGETS[fullname])
        return spec


sys.meta_path.insert(0, _Finder())
