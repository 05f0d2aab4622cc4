"""Logs the garbage collector's pauses of every Python process started with this folder first on PYTHONPATH.

`bash bench/gpu_run.sh restart service` puts it there when GCWATCH=1: a line per full (generation 2) collection,
and per younger one over 2 ms, on the process' stderr, with the wall clock to place it in a run.
"""

import gc
import os
import sys
import time

_started: list[float] = [0.0]


def _watch(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _started[0]) * 1000
    if info["generation"] == 2 or ms > 2.0:
        sys.stderr.write(
            f"[gcwatch] t={time.time():.3f} pid={os.getpid()} gen={info['generation']} ms={ms:.2f} "
            f"collected={info['collected']} frozen={gc.get_freeze_count()}\n"
        )


gc.callbacks.append(_watch)
