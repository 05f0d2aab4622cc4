"""Logs the garbage collector's pauses of every Python process started with this folder first on PYTHONPATH.

`GCWATCH=1 bash bench/gpu_run.sh up` and `python -m bench.gc_pauses` put it there: a line per full (generation 2)
collection, and per younger one over 2 ms, on the process' stderr, with the wall clock to place it in a run.
GCWATCH_TYPES=N adds, after each full collection, the N commonest types of what it left in the oldest generation
(objects that outlived two younger collections and are not frozen: what the next full collection scans again), and
GCWATCH_NAMES=kind,... the N commonest `__qualname__`s among those of each kind (coroutine, function, method).
Every collection also adds to totals per generation (count, ms), written as a `totals` line after each full
collection and at most once a second: the young collections, each short, can add up to more than the full ones.

Not free: on the CPU, a service watched against the same service unwatched, side by side (bench.paired, bursts of 64
512-token /v1 requests), took +22 ms median more of front-end TTFT (bench/results/cpu-frontend-ab/). Watch both
systems of a comparison or neither, and take front-end figures from unwatched runs.
"""

import collections
import gc
import os
import sys
import time

_started: list[float] = [0.0]
_totals = [[0, 0.0], [0, 0.0], [0, 0.0]]  # per generation: collections, ms
_written: list[float] = [0.0]  # when the last totals line was written (perf_counter)
_TYPES = int(os.environ.get("GCWATCH_TYPES", "0"))
_NAMED = set(filter(None, os.environ.get("GCWATCH_NAMES", "").split(",")))  # e.g. coroutine,method: by __qualname__


def _write(head: str, counts: list[tuple[str, int]]) -> None:
    sys.stderr.write(f"[gcwatch] pid={os.getpid()} {head} " + " ".join(f"{name}:{n}" for name, n in counts) + "\n")


def _watch(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    now = time.perf_counter()
    ms = (now - _started[0]) * 1000
    totals = _totals[info["generation"]]
    totals[0] += 1
    totals[1] += ms
    if info["generation"] == 2 or now - _written[0] > 1.0:
        _written[0] = now
        sys.stderr.write(
            f"[gcwatch] t={time.time():.3f} pid={os.getpid()} totals frozen={gc.get_freeze_count()} "
            + " ".join(f"gen{g}={n}/{ms_g:.2f}" for g, (n, ms_g) in enumerate(_totals))
            + "\n"
        )
    if info["generation"] == 2 or ms > 2.0:
        sys.stderr.write(
            f"[gcwatch] t={time.time():.3f} pid={os.getpid()} gen={info['generation']} ms={ms:.2f} "
            f"collected={info['collected']} frozen={gc.get_freeze_count()}\n"
        )
        if _TYPES and info["generation"] == 2:
            old = gc.get_objects(generation=2)
            common = collections.Counter(type(o).__qualname__ for o in old).most_common(_TYPES)
            _write(f"old={len(old)}", common)
            for kind in _NAMED:
                names = collections.Counter(
                    getattr(o, "__qualname__", "?") for o in old if type(o).__qualname__ == kind
                ).most_common(_TYPES)
                _write(f"{kind}:", names)


gc.callbacks.append(_watch)
