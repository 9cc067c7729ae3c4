"""The analysis threads' CPU priority, relative to the UI thread, and the engine's warm-up.

On Linux ``nice`` is per thread (and threads inherit it from the thread that starts them):
the analysis worker and the warm-up run ``WORKER_NICE`` steps below the UI thread, so when
both want the same core the UI gets it (scrolling stays smooth; the model takes a little
longer). Relative, not absolute: a RadLens started under ``nice`` keeps the same gap.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

#: Steps of niceness between the UI thread and the analysis threads.
#: ``RADLENS_ANALYSIS_NICE`` overrides it (0 = same priority as the UI).
WORKER_NICE = int(os.environ.get("RADLENS_ANALYSIS_NICE", "10"))
#: The lowest priority a thread can have.
MAX_NICE = 19


def thread_nice() -> int:
    """The calling thread's niceness (0 where threads have none)."""
    if not hasattr(os, "getpriority"):
        return 0
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return 0


def lower_thread_priority(ui_nice: int) -> None:
    """Run the calling thread ``WORKER_NICE`` steps below ``ui_nice`` (the UI thread's, read
    on the UI thread). Idempotent: a pool thread reused for the next run stays where it is.
    torch's intra-op threads started from here inherit it; elsewhere this does nothing."""
    if not hasattr(os, "setpriority") or WORKER_NICE <= 0:
        return
    wanted = min(MAX_NICE, ui_nice + WORKER_NICE)
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < wanted:
            os.setpriority(os.PRIO_PROCESS, tid, wanted)
    except OSError:
        pass  # not permitted here: run at normal priority


def limit_torch_threads() -> None:
    """Leave one core to the UI thread: torch's intra-op pool otherwise takes them all."""
    import torch

    cores = os.cpu_count() or 2
    wanted = max(1, cores - 1)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


def import_engine() -> None:
    """Import what a first Analyze needs (on a background thread: it takes seconds)."""
    from inference.engine import warm_up

    try:
        warm_up()
    except ImportError as exc:  # an install without torch: Analyze will say so when asked
        log.info("warm-up: the engine cannot start (%s)", exc)
        return
    limit_torch_threads()
