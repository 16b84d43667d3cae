"""Nothing saved is ever torn: every file a later run reads is written beside its target and renamed
into place (avrnn.data.files); a full disk at write, at fsync or at close (network filesystems report it
late) keeps the earlier file, removes the temporary, and says which folder is full and what is kept."""

import errno
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import torch

from avrnn.data import files
from avrnn.training.checkpoints import load_checkpoint
from avrnn.training.fit import train

RUN = ["training.iterations_per_epoch=2", "training.validate_before_training=false"]


class FullDisk:
    """A file whose write, fsync or close fails with ENOSPC (after `room` bytes are accepted)."""

    def __init__(self, real, where: str, room: int = 4096):
        self.real, self.where, self.room = real, where, room

    def write(self, data):
        if self.where == "write" and len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):  # flush, fileno, tell, seek, ...: the real file's
        return getattr(self.real, name)

    def close(self):
        self.real.close()
        if self.where == "close":
            raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def no_tmp(monkeypatch, tmp_path):
    """TMPDIR unusable: a write that still went through /tmp would fail."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))


def full_disk(monkeypatch, where: str, under=None):
    """ENOSPC at `where` for every file written (under the folder `under`, if given)."""
    real_fdopen, real_fsync = os.fdopen, os.fsync

    def hit(fd) -> bool:
        return under is None or os.readlink(f"/proc/self/fd/{fd}").startswith(str(under))

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        return FullDisk(handle, where) if hit(fd) else handle

    def fsync(fd):
        if where == "fsync" and hit(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    monkeypatch.setattr(files.os, "fsync", fsync)


def temporaries(folder):
    return [p.name for p in folder.rglob(f"*{files.SUFFIX}")]


@pytest.mark.parametrize("where", ["write", "fsync", "close"])
def test_a_full_disk_keeps_the_earlier_file_and_says_what_is_kept(tmp_path, monkeypatch, no_tmp, where):
    target = tmp_path / "out" / "metrics.json"
    files.write_text(target, "earlier")
    full_disk(monkeypatch, where)
    with pytest.raises(files.WriteFailed) as failed:
        files.write_text(target, "x" * 100_000)
    assert target.read_text() == "earlier" and temporaries(tmp_path) == []
    assert str(failed.value).startswith(f"could not write metrics.json: no space left on the filesystem of "
                                        f"{target.parent}, ")
    assert "the earlier metrics.json is kept unchanged (7 bytes)" in str(failed.value)
    assert failed.value.errno == errno.ENOSPC


def test_a_written_file_has_the_umasks_mode_and_no_temporary_stays(tmp_path, no_tmp):
    old = os.umask(0o027)
    try:
        files.write_text(tmp_path / "a.yaml", "x: 1")
    finally:
        os.umask(old)
    assert (tmp_path / "a.yaml").stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["a.yaml"]


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run(["true"]).returncode or subprocess.Popen(["true"])
    dead.wait()
    host = files.socket.gethostname()
    stale = tmp_path / f".last.ckpt~{host}~{dead.pid}~abc{files.SUFFIX}"
    live = tmp_path / f".last.ckpt~{host}~{os.getpid()}~abc{files.SUFFIX}"
    other_host = tmp_path / f".last.ckpt~elsewhere~1~abc{files.SUFFIX}"
    fresh = tmp_path / f".metrics.json~{host}~{dead.pid}~def{files.SUFFIX}"  # a container's live writer, maybe
    not_ours = tmp_path / f".download{files.SUFFIX}"
    for path in (stale, live, other_host, fresh, not_ours):
        path.write_text("partial")
    old = files.time.time() - files.STALE_HERE_SECONDS - 10
    for path in (stale, live, other_host, not_ours):
        os.utime(path, (old, old))
    assert files.remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and other_host.exists() and fresh.exists() and not_ours.exists()


@pytest.mark.parametrize("where", ["write", "fsync", "close"])
def test_a_full_disk_during_a_checkpoint_keeps_every_checkpoint(make_cfg, tmp_path, monkeypatch, no_tmp,
                                                               run_in_process, tiny, corpus_dir, where):
    run = tmp_path / "run"
    train(make_cfg(*RUN, "training.max_iterations=2", f"paths.output_dir={run}", "training.test_after_training=false"))
    folder = run / "checkpoints"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    full_disk(monkeypatch, where, under=folder)
    result = run_in_process("train.py", *tiny, *RUN, f"data.root={corpus_dir}", f"hydra.run.dir={run}",
                            "training.max_iterations=4", "training.test_after_training=false", "ckpt_path=last")
    monkeypatch.undo()
    assert result.returncode == 2
    assert result.last_line.startswith(f"error: could not write ") and \
        f"no space left on the filesystem of {folder}, " in result.last_line
    assert result.last_line.endswith("; kept, each read back whole: best-iter000002.ckpt (iteration 2), last.ckpt "
                                     "(iteration 2); free space (or choose another folder) and run again"), \
        result.last_line
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # nothing torn, no temporary
    assert load_checkpoint(folder / "last.ckpt")["avrnn_iteration"] == 2


def test_the_data_cache_and_the_generated_corpus_are_written_whole(make_cfg, tmp_path, monkeypatch, no_tmp):
    from avrnn.data import cache
    from avrnn.data.synthetic import MARKER, SyntheticCorpusSpec, generate_corpus

    cache.save(tmp_path / "cache" / "corpus.pt", {"frames": torch.ones(3)})
    full_disk(monkeypatch, "fsync")
    with pytest.raises(files.WriteFailed, match="could not write corpus.pt: no space left"):
        cache.save(tmp_path / "cache" / "corpus.pt", {"frames": torch.zeros(3)})
    with pytest.raises(files.WriteFailed):
        generate_corpus(tmp_path / "corpus", SyntheticCorpusSpec(train_speakers=1, test_speakers=1,
                                                                 utterances_per_speaker=1, min_seconds=0.2,
                                                                 max_seconds=0.3))
    monkeypatch.undo()
    assert torch.equal(cache.load(tmp_path / "cache" / "corpus.pt")["frames"], torch.ones(3))
    assert not (tmp_path / "corpus").exists() and temporaries(tmp_path) == []  # no partial corpus to refuse later
    spec = SyntheticCorpusSpec(train_speakers=1, test_speakers=1, utterances_per_speaker=1, min_seconds=0.2,
                               max_seconds=0.3)
    root = generate_corpus(tmp_path / "corpus", spec)
    assert json.loads((root / MARKER).read_text())["seed"] == spec.seed and len(list(root.rglob("*.WAV"))) == 2


@pytest.mark.slow
def test_a_real_small_filesystem_fills_and_every_checkpoint_survives(make_cfg, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here ({made.stderr.strip() or made.returncode})")
    try:
        run = mount / "run"
        train(make_cfg(*RUN, "training.max_iterations=2", f"paths.output_dir={run}",
                       "training.test_after_training=false"))
        folder = run / "checkpoints"
        before = {path.name: path.read_bytes() for path in folder.iterdir()}
        size = len(before["last.ckpt"])
        with open(mount / "filler", "wb") as handle:  # leave room for half a checkpoint
            handle.write(b"\0" * max(0, shutil.disk_usage(mount).free - size // 2))
        with pytest.raises(files.WriteFailed) as failed:
            train(make_cfg(*RUN, "training.max_iterations=4", f"paths.output_dir={run}",
                           "training.test_after_training=false", "ckpt_path=last"))
        assert f"no space left on the filesystem of {folder}, " in str(failed.value)
        assert "kept, each read back whole: best-iter000002.ckpt (iteration 2), last.ckpt (iteration 2)" in \
            str(failed.value)
        assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # no torn file, no temporary
    finally:
        subprocess.run(["umount", "-l", str(mount)])  # lazily: the run's log writers may still hold files


def test_a_corpus_another_process_put_in_place_first_is_used(tmp_path, monkeypatch):
    """DDP ranks or parallel jobs generating the same corpus at once: the first rename wins, the others use it."""
    from avrnn.data import synthetic

    spec = synthetic.SyntheticCorpusSpec(train_speakers=1, test_speakers=1, utterances_per_speaker=1, min_seconds=0.2,
                                         max_seconds=0.3)
    original = synthetic._write_corpus

    def racing(folder, spec):
        original(folder, spec)
        original(tmp_path / "corpus", spec)  # another process finishes first

    monkeypatch.setattr(synthetic, "_write_corpus", racing)
    root = synthetic.generate_corpus(tmp_path / "corpus", spec)
    assert len(list(root.rglob("*.WAV"))) == 2 and temporaries(tmp_path) == []
