"""The analysis threads' CPU priority, relative to the UI thread, and the engine's warm-up
(Qt-free: the viewer's analysis worker and `radlens analyze` both use it).

Importing torch and MONAI on a worker still stalls the UI thread wherever the import holds
the interpreter lock in one long C call: loading a native extension (``dlopen`` of
``torch/_C`` pulls in libtorch_cpu, hundreds of milliseconds of relocations and static
initialisers) runs with the lock held. ``native_loading_off_the_lock`` loads each extension's
shared object first through ``ctypes`` (a foreign call: the lock is released), so the
import's own ``dlopen`` finds it loaded and only the module's init function runs under the
lock. The UI thread, which only waits on signals, then keeps its frames.

The rest of the import is Python that holds the lock, and the UI thread takes it back at
each of its Python calls. ``import_engine`` keeps those handovers short:

- the cyclic garbage collector makes no full collection during the import (each one walks
  every object of the process, the UI's and the ~10^6 the import creates, in one call under
  the lock: 0.1-0.7 s apiece, four per import), and the imported objects are frozen after it
  (``gc.freeze``) so no later full collection walks them either. Objects alive at that moment
  are still freed by reference counting; only a reference cycle among them would stay;
- the interpreter's switch interval is ``SWITCH_INTERVAL_S`` meanwhile, and during a whole
  analysis (``short_thread_switches``; Python's is 5 ms: a UI thread waiting for the lock
  otherwise waits that long after each numpy call of its frame that released it);
- the import runs ``WORKER_NICE`` steps below the UI thread, as the model does (below).

On Linux ``nice`` is per thread (and threads inherit it from the thread that starts them):
the analysis worker, its imports included, runs ``WORKER_NICE`` steps below the UI thread, so
when both want the same core the UI gets it (scrolling stays smooth; the model takes a
little longer). Relative, not absolute: a RadLens started under ``nice`` keeps the same gap.
With the kernel's autogroups (``/proc/sys/kernel/sched_autogroup_enabled``, the default on
desktop distributions) the process shares the CPU with other sessions as one group, and
nice only weighs its threads against each other: an import at the UI's priority took half of
the group's CPU from a scrolling UI thread (longest gaps 164-587 ms at load 5-6 on 2 cores,
nearly all waiting for a core); two steps below, 102 ms. Two steps, not five or ten: the
worker holds the interpreter lock between the model's steps (resampling, mapping back,
listing findings, saving) and during the import's long C calls, and the further down it is
the longer it waits for a core while holding it and the UI thread waits for it (blocked
80-85 ms at five steps against 48-58 ms at two; 0.5 s at ten steps and load 14 without
autogroups); two steps (0.64 of the weight) still give the UI the core first.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.machinery
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

#: Steps of niceness between the UI thread and the analysis threads.
#: ``RADLENS_ANALYSIS_NICE`` overrides it (0 = same priority as the UI).
WORKER_NICE = int(os.environ.get("RADLENS_ANALYSIS_NICE", "2"))
#: The lowest priority a thread can have.
MAX_NICE = 19
#: The interpreter's switch interval while the engine is imported or a model runs (seconds;
#: Python's is 5 ms).
SWITCH_INTERVAL_S = 0.0005
#: Whether the import runs without full garbage collections and freezes what it made.
IMPORT_WITHOUT_FULL_COLLECTIONS = True
#: A generation-2 threshold no import reaches: no full collection while it is raised.
_NO_FULL_COLLECTION = 1 << 30


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


def _dlopen() -> Any:
    """libc's ``dlopen`` as a ctypes foreign function (called without the interpreter lock),
    or None where there is none (Windows)."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.dlopen
    except (OSError, AttributeError, TypeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return fn


class _LockFreeNativeLoading:
    """A meta-path finder active for one thread: it finds a module as the finders after it
    would and, for a native extension, ``dlopen``s its file through ctypes first (the
    interpreter lock released; same flags as the import will use), then hands the same spec
    on. Other threads' imports pass through untouched."""

    def __init__(self, dlopen: Any) -> None:
        self.thread = threading.get_ident()
        self.dlopen = dlopen
        self.busy = False
        self.loaded: list[str] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if self.busy or threading.get_ident() != self.thread:
            return None
        self.busy = True
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    break
        finally:
            self.busy = False
        if spec is None:
            return None
        if isinstance(spec.loader, importlib.machinery.ExtensionFileLoader) and spec.origin:
            if self.dlopen(os.fsencode(spec.origin), sys.getdlopenflags()):
                self.loaded.append(name)
        return spec


def _torch_global_deps(dlopen: Any) -> None:
    """torch's ``__init__`` loads ``lib/libtorch_global_deps.so`` (and on CUDA builds the
    CUDA libraries it needs) through ``ctypes.CDLL``, under the lock: load it first, off the
    lock, with the same RTLD_GLOBAL, so that call finds it there. Finds torch without
    importing it."""
    if "torch" in sys.modules:
        return
    try:
        import importlib.util

        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return
    if spec is None or not spec.submodule_search_locations:
        return
    for folder in spec.submodule_search_locations:
        lib = os.path.join(folder, "lib", "libtorch_global_deps.so")
        if os.path.isfile(lib):
            dlopen(os.fsencode(lib), os.RTLD_NOW | os.RTLD_GLOBAL)
            return


@contextlib.contextmanager
def native_loading_off_the_lock() -> Iterator[_LockFreeNativeLoading | None]:
    """While active, native extensions imported on the calling thread load their shared
    objects without holding the interpreter lock (see the module's docstring)."""
    dlopen = _dlopen() if sys.platform.startswith("linux") else None
    if dlopen is None:
        yield None
        return
    finder = _LockFreeNativeLoading(dlopen)
    _torch_global_deps(dlopen)
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.005


@contextlib.contextmanager
def short_thread_switches() -> Iterator[None]:
    """While any caller is inside (process-wide; callers on several threads may overlap):
    the switch interval is ``SWITCH_INTERVAL_S``; the last one out restores it."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_saved, SWITCH_INTERVAL_S))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


@contextlib.contextmanager
def few_long_lock_holds() -> Iterator[None]:
    """While active (process-wide): no full garbage collection and a short switch interval;
    on leaving, everything alive is frozen out of later collections (see the module's
    docstring) and both settings are restored."""
    thresholds = gc.get_threshold()
    if IMPORT_WITHOUT_FULL_COLLECTIONS:
        gc.set_threshold(thresholds[0], thresholds[1], _NO_FULL_COLLECTION)
    try:
        with short_thread_switches():
            yield
    finally:
        if IMPORT_WITHOUT_FULL_COLLECTIONS:
            gc.freeze()
            gc.set_threshold(*thresholds)


_import_lock = threading.Lock()
_imported = False


def engine_imported() -> bool:
    """Whether ``import_engine`` has finished (successfully) in this process."""
    return _imported


def import_engine() -> None:
    """Import what a first Analyze needs (on a background thread: it takes seconds), the
    native libraries loaded off the interpreter lock, with few long holds of the lock. One
    import per process: a second caller waits for the first (without the lock). Cheap once
    done. Call it ``WORKER_NICE`` below the UI thread (see the module's docstring)."""
    global _imported
    with _import_lock:
        if _imported:
            return
        with native_loading_off_the_lock(), few_long_lock_holds():
            try:
                from inference.engine import warm_up

                warm_up()
            except ImportError as exc:  # no torch installed: Analyze will say so when asked
                log.info("warm-up: the engine cannot start (%s)", exc)
                return
        limit_torch_threads()
        _imported = True
