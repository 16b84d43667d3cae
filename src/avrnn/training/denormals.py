"""Denormal (subnormal) floats flushed to zero on every thread that computes, or IEEE behaviour kept.

On some x86 CPUs arithmetic on subnormal floats (|x| < 1.2e-38 in fp32) is 10-100x slower; an
A-VRNN run whose critic and gradients drift there measured 1,482 to 5,776 frames/s, and 6,914 to
7,107 with them flushed (Intel Xeon, docs/performance.md). `torch.set_flush_denormal` sets the
flag (FTZ and DAZ in MXCSR) of the calling thread only; torch's intra-op (OpenMP) workers copy it
when they are created, and keep what they had otherwise. So `apply` sets the calling thread, then
checks every worker by computing a subnormal product in parallel, and where some worker disagrees
(its pool was started earlier) runs the setter once on each thread of an OpenMP team of libgomp,
the OpenMP runtime that torch's CPU build loads. `state()` says what is in force, measured.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import logging
import os

import torch

from avrnn.data.progress import counted

log = logging.getLogger("avrnn.denormals")  # the name before the layout change: log lines and users' logging settings keep it

_TINY = 1e-20  # _TINY * _TINY = 1e-40: subnormal in fp32, 0 where flushed


# dtype -> (integer view, exponent bits, mantissa bits) of its IEEE layout
_LAYOUTS = {
    torch.float32: (torch.int32, 0x7F800000, 0x007FFFFF),
    torch.float64: (torch.int64, 0x7FF0000000000000, 0x000FFFFFFFFFFFFF),
    torch.bfloat16: (torch.int16, 0x7F80, 0x007F),
    torch.float16: (torch.int16, 0x7C00, 0x03FF),
}


def count_subnormal(tensor: torch.Tensor) -> int:
    """How many elements of a float tensor are subnormal (exponent bits 0, mantissa not), read from
    the bits, so that the answer does not depend on this thread's flush (DAZ) mode."""
    view, exponent, mantissa = _LAYOUTS[tensor.dtype]
    bits = tensor.detach().contiguous().view(view)
    return int(((bits & exponent) == 0).logical_and_((bits & mantissa) != 0).sum())


def subnormal_survival() -> float:
    """The fraction of a subnormal product's elements that stay non-zero, computed on all intra-op
    threads (a large elementwise product is split evenly over them): 0 where every thread flushes,
    1 where none does, in between where the threads disagree."""
    elements = 1 << 16 if torch.get_num_threads() == 1 else max(1 << 20, torch.get_num_threads() << 16)
    x = torch.full((elements,), _TINY)
    return float((x * x != 0).float().mean())


def state() -> str:
    """'flushed', 'IEEE' or 'mixed' (some intra-op threads flush, some do not), as measured now."""
    survival = subnormal_survival()
    return "flushed" if survival == 0.0 else "IEEE" if survival == 1.0 else "mixed"


def _loaded_libgomp() -> list[str]:
    """Paths of the libgomp this process has loaded (Linux), else torch's bundled copies."""
    try:
        with open("/proc/self/maps") as maps:
            loaded = sorted({line.split()[-1] for line in maps if "libgomp" in line and "/" in line})
    except OSError:
        loaded = []
    torch_dir = os.path.dirname(torch.__file__)
    return loaded or sorted(glob.glob(os.path.join(torch_dir, "lib", "libgomp*.so*"))
                            + glob.glob(os.path.join(os.path.dirname(torch_dir), "torch.libs", "libgomp*.so*")))


@functools.lru_cache(maxsize=1)
def _openmp_team():
    """libgomp's GOMP_parallel, of the runtime torch runs on (None where there is none). Its teams
    belong to the calling thread: apply() and state() cover the thread that calls them."""
    for path in _loaded_libgomp():
        try:
            library = ctypes.CDLL(path)
            parallel = library.GOMP_parallel
        except (OSError, AttributeError):
            continue
        callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        parallel.argtypes = [callback, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        parallel.restype = None
        return parallel, callback
    return None


def _set_on_every_worker(flush: bool) -> None:
    team = _openmp_team()
    if team is None:
        return
    parallel, callback = team
    setter = callback(lambda _: torch.set_flush_denormal(flush))
    parallel(setter, None, torch.get_num_threads(), 0)


def all_threads(threads: int) -> str:
    """'the 1 thread', 'all 4 threads': the intra-op threads a setting holds on, as the log line reads."""
    return "the 1 thread" if threads == 1 else f"all {threads} threads"


def apply(flush: bool) -> str:
    """Flush denormals to zero (`flush`=True) or keep IEEE subnormals, on the calling thread and on
    every intra-op worker thread; log one line saying which is in force, and return it ('flushed',
    'IEEE', or 'mixed' where neither could be made to hold on every thread: a warning says so).
    Call it after torch.set_num_threads. A CPU that cannot flush (torch.set_flush_denormal returns
    False) keeps IEEE behaviour, and the line says so."""
    supported = torch.set_flush_denormal(flush)
    wanted = "flushed" if flush else "IEEE"
    current = state()
    if current != wanted:
        _set_on_every_worker(flush)
        current = state()
    threads = torch.get_num_threads()
    if flush and not supported:
        log.warning("denormal floats: this CPU cannot flush them to zero (flush_denormal=true has no effect); "
                    "IEEE subnormals on %s", counted(threads, "thread"))
    elif current == "mixed":
        log.warning("denormal floats: only some of the %d intra-op threads follow flush_denormal=%s (their pool "
                    "started before it was set); results stay correct but speed varies", threads,
                    str(flush).lower())
    elif flush:
        log.info("denormal floats: flushed to zero on %s (flush_denormal=true; "
                 "flush_denormal=false keeps IEEE subnormals)", all_threads(threads))
    else:
        log.info("denormal floats: IEEE subnormals kept on %s (flush_denormal=false)", all_threads(threads))
    return current
