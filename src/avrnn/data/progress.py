"""Progress over a long loop (reading a corpus, scoring a split): tqdm's bar on a terminal, log lines elsewhere.

A bar redraws one line of a terminal; written to a file (SLURM, nohup, a runner's log) it is one endless
line of carriage returns, and hidden it says nothing for as long as IWAE-64 takes. Where stdout is not a
terminal (nor a notebook: the rule of training's bar), `progress` logs instead, through the caller's logger (stdout and the run's log file):

    scoring test: batch 7/19 (36%), 2.10 s/batch, ETA 25s
    scoring test: 19 batches in 40s (2.10 s/batch)

the first kind at most every `every_seconds` seconds, the second once at the end (the rule of training's
progress lines, avrnn.training.progress_lines).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

EVERY_SECONDS = 30.0  # training.log_every_seconds' default
T = TypeVar("T")


def on_terminal() -> bool:
    """Whether output is read live: stdout is a terminal, or this is a notebook (tqdm.auto draws a widget there).
    Training's bar and progress lines follow the same rule (avrnn.training.fit)."""
    return sys.stdout.isatty() or "ipykernel" in sys.modules


def is_rank_zero() -> bool:
    """Whether this is the first process of a distributed run, or the only one (Lightning's rank, read from
    the launcher's environment: LOCAL_RANK, SLURM_PROCID, ...)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def plural(count: int, noun: str) -> str:
    """'utterance' for 1, 'utterances' otherwise ('batches', 'keys'): the noun as it reads beside `count`."""
    return noun if count == 1 else noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def counted(count: int, noun: str) -> str:
    """'1 utterance', '3 utterances', '2 batches': a count with its noun in the singular or plural."""
    return f"{count} {plural(count, noun)}"


def duration(seconds: float) -> str:
    """`2h05m`, `3m07s`, `42s`: a time span as a person reads it ("unknown" where it is not finite)."""
    if not math.isfinite(seconds):
        return "unknown"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress(iterable: Iterable[T], what: str, log: logging.Logger, unit: str = "batch",
             every_seconds: float = EVERY_SECONDS, leave: bool = True, terminal: bool | None = None,
             clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """Yield `iterable`'s items, showing progress as `what: <unit> i/n`.

    Args:
        what: what is done, e.g. "scoring test".
        log: where the lines go without a terminal.
        unit: what one item is ("batch", "file").
        every_seconds: the least time between two progress lines (without a terminal); > 0.
        leave: whether the finished bar stays on the terminal.
        terminal: whether to draw a bar (None: on_terminal()).
        clock: a monotonic clock in seconds (for tests).
    """
    if not every_seconds > 0:
        raise ValueError(f"every_seconds must be > 0, got {every_seconds}")
    if not is_rank_zero():  # each DDP process reads the corpus: one says how far it is
        yield from iterable
        return
    if terminal if terminal is not None else on_terminal():
        yield from tqdm(iterable, desc=what, unit=unit, leave=leave)
        return
    try:
        total = len(iterable)
    except TypeError:  # a generator, an iterable dataset's loader
        total = None
    start = last = first = clock()
    done = 0
    for item in iterable:
        yield item
        done, now = done + 1, clock()
        first = now if done == 1 else first
        if now - last >= every_seconds and done != total:
            last = now
            where = f"{unit} {done}/{total} ({100 * done // total}%)" if total else f"{unit} {done}"
            # from the items after the first: the first carries the loop's one-off costs (imports, caches)
            eta = f", ETA {duration((now - first) / (done - 1) * (total - done))}" if total and done > 1 else ""
            log.info("%s: %s, %s%s", what, where, pace(now - start, done, unit), eta)
    elapsed = clock() - start
    log.info("%s: %s in %s (%s)", what, counted(done, unit), duration(elapsed), pace(elapsed, done, unit))


def pace(seconds: float, done: int, unit: str) -> str:
    """`2.00 s/batch`, or `375 files/s` where each takes under 0.1 s (`0.00 s/file` said nothing)."""
    each = seconds / max(done, 1)
    if each >= 0.1 or seconds <= 0:
        return f"{each:.2f} s/{unit}"
    return f"{done / seconds:.3g} {plural(2, unit)}/s"
