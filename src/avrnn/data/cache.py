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
import os
import tempfile
import time
from pathlib import Path

import torch

from avrnn.data import files

log = logging.getLogger(__name__)


def content_digest(path: Path) -> str:
    """BLAKE2b (16 bytes, hex) of the file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


class DigestMemo:
    """Content digests remembered in `folder`/MEMO_NAME (the data cache folder; None: nothing remembered),
    each under its file's (size, mtime, ctime, inode, device), so that a run on an unchanged corpus does
    not read every file again. Safe against a file replaced in place with its size and modification time
    set back (a release tarball): any write changes the ctime, which no tool can set. As git does for its
    index ("racy git"), a file changed within RACY_SECONDS of being hashed is not remembered: a filesystem
    that keeps times to the second could not tell a second write in that second. A memo that cannot be
    read or written means hashing again, never an error."""

    MEMO_NAME = "file-digests.json"
    RACY_SECONDS = 3.0

    def __init__(self, folder: Path | None):
        self.path = Path(folder) / self.MEMO_NAME if folder else None
        self.entries: dict[str, list] = {}
        self.hashed = 0  # files read and hashed by this memo (the rest were remembered)
        if self.path is not None and self.path.exists():
            try:
                self.entries = dict(json.loads(self.path.read_text()))
            except (OSError, ValueError, TypeError) as error:
                log.info("data: the file digest memo %s is unreadable (%s); hashing every file", self.path, error)

    def digest(self, path: Path) -> str:
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]
        entry = self.entries.get(str(path))
        if isinstance(entry, list) and len(entry) == 6 and entry[:5] == stamp and isinstance(entry[5], str):
            return entry[5]
        value = content_digest(path)
        self.hashed += 1
        if time.time() - max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9 >= self.RACY_SECONDS:
            self.entries[str(path)] = [*stamp, value]
        else:
            self.entries.pop(str(path), None)
        return value

    def save(self) -> None:
        """Write the memo atomically (several runs may share the folder: the last writer's memo is kept,
        which costs the others a second hashing at most), without the files that are gone."""
        if self.path is None or not self.hashed:
            return
        self.entries = {name: entry for name, entry in self.entries.items() if os.path.exists(name)}
        try:
            files.write_text(self.path, json.dumps(self.entries))
        except OSError as error:
            log.debug("data: the file digest memo %s was not written (%s)", self.path, error)


def cache_key(options: dict, digests: dict[Path, str]) -> str:
    """Hash of the options that change the frames and of every input file's path, size and content
    (`digests`: path -> content_digest; not its modification time: release tarballs fix those, and
    copies change them)."""
    stats = [(str(p), p.stat().st_size, digest) for p, digest in digests.items()]
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
