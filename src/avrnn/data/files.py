"""Files a later run reads are written whole or not at all.

Every such file (checkpoints, the data cache, metrics.json, the stored config, the sweeps' results,
the generated corpus) is written to a uniquely named temporary file in the target's own folder,
flushed and fsynced, given the umask's mode, put in place with `os.replace` (atomic within one
filesystem) and the folder fsynced. A write that fails (a full disk reports ENOSPC at write, at fsync
or, on network filesystems, only at close) removes its temporary file and leaves the earlier file as
it was; `WriteFailed` then says which folder's filesystem refused and what was checked to be kept.

Never through /tmp: a move from another filesystem is a copy over the target, and a full disk
tears the target (what Lightning's fsspec save did to last.ckpt).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

SUFFIX = ".partial"  # a temporary's name: .<target name>~<host>~<pid>~<random>.partial (never *.ckpt)
STALE_ELSEWHERE_SECONDS = 24 * 3600  # another host's temporary this old is abandoned
STALE_HERE_SECONDS = 60  # this host's, of a process that is gone, once this old


class WriteFailed(OSError):
    """A file could not be written (the disk is full, the folder is read-only, ...); the earlier file
    under that name, if any, is unchanged. The message names the folder and what is kept."""

    def __str__(self) -> str:
        return str(self.strerror)


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would, for a moment, for every thread)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: read it by setting it (briefly)
    os.umask(mask)
    return mask


def _prefix(target: Path) -> str:
    return f".{target.name}~{socket.gethostname()}~{os.getpid()}~"


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the filesystem allows a folder to be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, kept: Callable[[Path], str] | None = None) -> Iterator[BinaryIO]:
    """`with atomic_file(path) as handle: handle.write(...)`: `path` holds the new bytes after the
    block, or (on any error) what it held before. Raises WriteFailed for an OSError (ENOSPC, EROFS, ...);
    `kept(path)` says, after checking, what is kept for the message (default: kept_target)."""
    target = Path(path)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=_prefix(target), suffix=SUFFIX)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError) and not isinstance(error, WriteFailed):
            raise WriteFailed(error.errno, failure_message(target, error, kept)) from error
        raise
    fsync_folder(folder)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def failure_message(target: Path, error: OSError, kept: Callable[[Path], str] | None = None) -> str:
    """One line: what failed where, and what is still there (checked now, not assumed)."""
    reason = {errno.ENOSPC: "no space left on the filesystem of", errno.EDQUOT: "disk quota exceeded on",
              errno.EROFS: "read-only filesystem at", errno.EACCES: "no permission to write in"}.get(
        error.errno, f"{error.strerror or error} in")
    try:
        still = (kept or kept_target)(target)
    except Exception as check:  # noqa: BLE001 - the check itself says what it found
        still = f"what is there did not pass its check ({type(check).__name__}: {check})"
    free = ""
    with contextlib.suppress(OSError):
        free = f", {shutil.disk_usage(target.parent).free:,} bytes free there"
    return f"could not write {target.name}: {reason} {target.parent}{free}; {still}; free space (or choose another folder) and run again"


def as_write_failure(error: OSError, folder: Path, kept: Callable[[Path], str] | None = None) -> OSError:
    """The error to report for an OSError that escaped a run writing into `folder`: a WriteFailed met on
    the way (another writer's error, e.g. TensorBoard's on the same full disk, may have replaced it), or, for
    a full disk or quota, a WriteFailed naming `folder` and what is kept there (`kept(folder / name)`);
    other errors unchanged."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, WriteFailed):
            return current
        current = current.__cause__ or current.__context__
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return error
    written = Path(error.filename) if error.filename else Path(folder) / "a file of the run (its logs)"
    message = failure_message(written, error, lambda _: (kept or kept_target)(Path(folder) / "?"))
    return WriteFailed(error.errno, message)


def kept_target(target: Path) -> str:
    """What a failed write of `target` kept, checked now: the earlier file and its size, or nothing."""
    if target.is_file():
        return f"the earlier {target.name} is kept unchanged ({target.stat().st_size:,} bytes)"
    return f"no earlier {target.name} existed; nothing was written"


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove temporaries that an earlier process left in `folder` (it was killed mid-write): those of
    this host whose process is gone, and other hosts' older than a day. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = socket.gethostname()
    removed = []
    for path in folder.glob(f".*{SUFFIX}"):
        parts = path.name.rsplit("~", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            continue  # not one of ours (another tool's .partial file)
        owner_host, pid = parts[1], int(parts[2])
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            continue
        if owner_host == host:  # its process is gone (and, as containers may share a host name, it is not fresh)
            stale = pid != os.getpid() and not _alive(pid) and age > STALE_HERE_SECONDS
        else:
            stale = age > STALE_ELSEWHERE_SECONDS
        if stale:
            with contextlib.suppress(OSError):
                (shutil.rmtree if path.is_dir() else os.unlink)(path)
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """`with atomic_folder(root) as staging: <write files under staging>`: `root` appears whole, or not
    at all (a stale staging folder is removed by remove_stale_temporaries). `root` must not exist or be
    an empty folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=_prefix(target), suffix=SUFFIX))
    try:
        yield staging
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        os.replace(staging, target)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, WriteFailed):
            raise WriteFailed(error.errno, failure_message(target, error, _kept_folder)) from error
        raise
    fsync_folder(target.parent)


def _kept_folder(target: Path) -> str:
    if target.is_dir() and any(target.iterdir()):
        return f"{target} holds what was there before this write began (the new one was not put in place)"
    return f"no {target.name} was put in place; nothing of it was written"
