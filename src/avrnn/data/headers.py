"""What an audio file's header promises, against what the file holds: a file cut short (a copy or a
download that stopped early) is named, never read as a shorter utterance.

libsndfile reads what is there: a WAV whose data chunk promises 8,000 samples and holds 300 decodes to
300 samples, a NIST SPHERE file likewise, with no error. `shortfall(path)` reads the header's sizes:
  WAV   the data chunk's size against what follows it; where that size is a streaming writer's
        placeholder (PLACEHOLDERS: unknown), the RIFF size (bytes after the first 8) against the file's
        size. A missing final pad byte (after an odd-sized chunk) is not a shortfall, nor is a RIFF size
        that is wrong while the audio is whole. Where both sizes are unknown and the data size reads 0,
        `readable` makes libsndfile read to the file's end. RIFX (big-endian) likewise; RF64 from its
        ds64 chunk.
  SPHERE sample_count x channel_count x sample_n_bytes after the header (header size: its second line);
        compressed codings (shorten) promise no byte count.
A FLAC file's STREAMINFO promises its number of samples; avrnn.data.audio compares the decoded samples
with the count libsndfile reads from there (OGG has no such field).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

# sizes a streaming writer leaves in a WAV header, meaning unknown: 0 and 0xFFFFFFFF, and SoX's when it
# cannot seek (0x7FFFF000, its MS_UNSPEC; 0x7FFFFFFF)
PLACEHOLDERS = (0, 0xFFFFFFFF, 0x7FFFF000, 0x7FFFFFFF)
SAMPLE_FORMATS = (1, 3, 0xFFFE)  # PCM, IEEE float, extensible
SPHERE_HEADER_BYTES = 1024


def sphere_header(path: Path) -> dict[str, str]:
    """The fields of a NIST SPHERE header ({} for any other file)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SPHERE_HEADER_BYTES)
    except OSError:
        return {}
    if not head.startswith(b"NIST_1A"):
        return {}
    fields = {}
    for line in head.decode("ascii", "replace").splitlines()[2:]:
        if line.strip() == "end_head":
            break
        parts = line.split(None, 2)
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
    return fields


@dataclass(frozen=True)
class WavLayout:
    """Where a WAV file's sizes and samples lie (`data_size` None: no data chunk found)."""
    order: str  # struct byte order: "<" (RIFF, RF64) or ">" (RIFX)
    riff_size: int
    format_tag: int  # 1 PCM, 3 float, 0xFFFE extensible: sizes count samples; others (ADPCM, GSM) blocks
    block_align: int
    data_offset: int | None
    data_size: int | None
    size_field: tuple[int, str] | None  # where the data size that libsndfile reads lies: (offset, struct format)


def wav_layout(path: Path, size: int) -> WavLayout | None:
    """The sizes a WAV (RIFF, RIFX or RF64) header gives, or None for any other file."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
            return None
        order = ">" if head[:4] == b"RIFX" else "<"
        (riff_size,) = struct.unpack(order + "I", head[4:8])
        data_size64 = None
        if head[:4] == b"RF64":  # the 64-bit sizes are in the ds64 chunk that follows: riff, data, count
            ds64 = handle.read(24)
            if ds64[:4] != b"ds64" or len(ds64) < 24:
                return None
            riff_size, data_size64 = struct.unpack("<QQ", ds64[8:24])
        offset, format_tag, block_align = 12, 1, 0
        while offset + 8 <= size:
            handle.seek(offset)
            chunk, chunk_size = struct.unpack(order + "4sI", handle.read(8))
            if chunk == b"fmt ":
                format_tag, block_align = struct.unpack(order + "H10xH", handle.read(14))
            if chunk == b"data":
                field = (offset + 4, order + "I")
                if data_size64 is not None and chunk_size == 0xFFFFFFFF:
                    chunk_size, field = data_size64, (28, "<Q")  # ds64's data size (12 + 8 + 8)
                return WavLayout(order, riff_size, format_tag, block_align, offset + 8, chunk_size, field)
            offset += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to an even size
    return WavLayout(order, riff_size, format_tag, block_align, None, None, None)


def _unknown_length(layout: WavLayout) -> bool:
    """A streaming writer's header: no size known (a data size of 0 then means unknown, not empty)."""
    return layout.riff_size in PLACEHOLDERS and layout.data_size in PLACEHOLDERS


def _wav_shortfall(layout: WavLayout, size: int) -> str | None:
    if layout.data_size is not None and layout.data_size not in PLACEHOLDERS:
        held = size - layout.data_offset
        if layout.data_size <= held:
            return None  # the audio is whole (a RIFF size off by a writer's bug, or cut after it, is not read)
        if layout.block_align and layout.format_tag in SAMPLE_FORMATS:
            return (f"its data chunk promises {layout.data_size // layout.block_align} samples ({layout.data_size} "
                    f"bytes), the file holds {held // layout.block_align}")
        return f"its data chunk promises {layout.data_size} bytes, the file holds {held}"
    # no data size to go by: the RIFF size is what says how much follows
    if layout.riff_size not in PLACEHOLDERS and layout.riff_size + 8 > size + 1:  # + 1: a final pad byte left out
        return f"its RIFF header promises {layout.riff_size + 8} bytes, the file holds {size}"
    return None


def readable(path: Path) -> str | io.BytesIO:
    """What libsndfile should open for `path`: the path itself, or, for a WAV written by a streaming writer
    with a data size of 0 (unknown; libsndfile reads it as no samples), a copy in memory whose data size
    is what the file holds after the data chunk's header."""
    try:
        size = os.path.getsize(path)
        layout = wav_layout(Path(path), size)
    except (OSError, struct.error):
        return str(path)
    if layout is None or layout.data_size != 0 or not _unknown_length(layout) or layout.data_offset >= size:
        return str(path)
    data = bytearray(Path(path).read_bytes())
    offset, form = layout.size_field
    held = min(size - layout.data_offset, 0xFFFFFFFE) if form.endswith("I") else size - layout.data_offset
    struct.pack_into(form, data, offset, held)
    return io.BytesIO(data)


def _sphere_shortfall(path: Path, size: int) -> str | None:
    fields = sphere_header(path)
    if not fields or "shorten" in fields.get("sample_coding", "") or "sample_count" not in fields:
        return None
    try:
        count = int(fields["sample_count"])
        channels = int(fields.get("channel_count", 1))
        width = int(fields.get("sample_n_bytes", 2))
        with open(path, "rb") as handle:  # the header's size: its second line
            header = int(handle.read(64).split(b"\n")[1].strip() or SPHERE_HEADER_BYTES)
    except (ValueError, IndexError):
        return None
    held = max(0, (size - header) // (channels * width))
    if count > held:
        return f"its NIST SPHERE header promises {count} samples (sample_count), the file holds {held}"
    return None


def shortfall(path: Path) -> str | None:
    """How a WAV or NIST SPHERE file falls short of its header (module docstring), or None where it holds
    what its header promises, promises nothing countable, or is of another format."""
    try:
        size = os.path.getsize(path)
        layout = wav_layout(Path(path), size)
        return _wav_shortfall(layout, size) if layout is not None else _sphere_shortfall(Path(path), size)
    except (OSError, struct.error):
        return None  # unreadable: reading the audio names it
