"""A cache of preprocessed corpora, keyed by a hash of the data options and of every file's path,
size and content, so a second run with the same options starts in seconds, and a corpus replaced in
place (a release tarball unpacked with its fixed modification times, files of the same size) is never
served from the cache of its earlier version. Hashing the bytes (BLAKE2b) is cheap next to decoding them.
A cache folder that cannot be written means running without the cache, in one line."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from pathlib import Path

import torch

from avrnn.data import files

log = logging.getLogger(__name__)


def content_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def cache_key(options: dict, files: list[Path]) -> str:
    """Hash of the options that change the frames and of every input file's path, size and content
    (not its modification time: release tarballs fix those, and copies change them)."""
    stats = [(str(p), p.stat().st_size, content_digest(p)) for p in files]
    blob = json.dumps({"options": options, "files": stats}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def writable(folder: Path) -> str | None:
    """None where files can be written in `folder` (made if missing); else why not, in words."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


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
