"""What a sweep folder says about its jobs: how many a grid makes (sweep_size) and how each one ended
(<sweep dir>/.jobs/<num>.json, written by avrnn.training.sweeps.record_job in the job's own process).
Kept apart from sweep_report so that the training entry points do not import plotting."""

from __future__ import annotations

import json
from pathlib import Path

JOB_RECORDS = ".jobs"


def job_records(sweep_dir) -> list[dict]:
    """The records record_job wrote for a sweep folder, by job number, each with "written": its file's
    modification time (the sweep folder's filesystem clock)."""
    folder = Path(sweep_dir) / JOB_RECORDS
    records = [{**json.loads(path.read_text()), "written": path.stat().st_mtime} for path in folder.glob("*.json")] \
        if folder.is_dir() else []
    return sorted(records, key=lambda record: record["job"])


def sweep_size(task_overrides: list[str]) -> int | None:
    """How many jobs the basic sweeper makes of these overrides (the product of the swept values);
    None where an override is not a plain list or range (Optuna's intervals)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    total = 1
    for override in OverridesParser.create().parse_overrides(task_overrides):
        if override.is_sweep_override():
            if not (override.is_discrete_sweep() or override.is_range_sweep()):
                return None
            total *= len(list(override.sweep_string_iterator()))
    return total
