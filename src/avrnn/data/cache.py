"""A cache of preprocessed corpora, keyed by a hash of the data options and the files' sizes
and modification times, so a second run with the same options starts in seconds."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import torch

from avrnn.data import files

log = logging.getLogger(__name__)


def cache_key(options: dict, files: list[Path]) -> str:
    """Hash of the options that change the frames and of every input file's identity."""
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps({"options": options, "files": stats}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load(path: Path) -> dict | None:
    """The cached dict, or None when missing or unreadable (a broken cache is rebuilt, not fatal)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable cache file is simply rebuilt
        log.warning("ignoring unreadable data cache %s (%s); rebuilding it", path, error)
        return None


def save(path: Path, content: dict) -> None:
    """Write atomically (avrnn.data.files): an interrupted write or a full disk never leaves a torn cache.
    Stale temporaries of killed writers are removed first (the folder may be shared by several runs)."""
    files.remove_stale_temporaries(path.parent)
    serialized = io.BytesIO()
    torch.save(content, serialized)
    with files.atomic_file(path) as handle:
        handle.write(serialized.getbuffer())
