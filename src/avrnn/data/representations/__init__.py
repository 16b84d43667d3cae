"""What a timestep of the model is: one pluggable choice, `data.representation` (conf/data/representation/).

  waveform  z-scored waveform frames, data.frame_size samples each, not overlapping (the paper's input)
  stft      the STFT power spectrogram |X|^2 (a data.frame_size-sample window every data.hop samples,
            data.frame_size // 2 + 1 bins), divided by one scale fitted on the training split (the
            input of the DVAE benchmark, Girin et al. 2021)

Each is a `Representation` (base.py): it fits its statistics on the training split, encodes a waveform
to (T, F) features, decodes features back to a waveform, and says what a bound on them is a bound on.
`build` is the one place that picks the class by name; checkpoints store the statistics as plain
data (the module's `normalization` hyper-parameter) beside the data config that names the class.
"""

from __future__ import annotations

from typing import Any, Mapping

from avrnn.data.errors import DataError
from avrnn.data.representations.base import Representation
from avrnn.data.representations.stft import PowerSpectrogram
from avrnn.data.representations.waveform import Waveform

REPRESENTATIONS: dict[str, type[Representation]] = {"waveform": Waveform, "stft": PowerSpectrogram}
DEFAULT = {"name": "waveform"}  # what data configs and checkpoints of earlier versions meant


def settings(options) -> dict[str, Any]:
    """The `data.representation` node of a DataOptions (or of its plain dict) as a plain dict, checked: a
    known name and only the keys that representation takes."""
    node = getattr(options, "representation", None) if not isinstance(options, Mapping) \
        else options.get("representation")
    node = dict(DEFAULT if node is None else node)
    name = node.pop("name", None)
    if name not in REPRESENTATIONS:
        raise DataError(f"data.representation.name={name!r} is not allowed; choose one of "
                        f"{', '.join(REPRESENTATIONS)} (select one with data/representation=<name>)")
    REPRESENTATIONS[name].Settings.from_dict(node)  # raises DataError naming an unknown key or bad value
    return {"name": name, **node}


def build(options, statistics: Mapping[str, float] | None = None) -> Representation:
    """The representation the data options (a DataOptions or its dict) name, with `statistics` (a
    checkpoint's, or fitted later with `fit`)."""
    node = settings(options)
    get = options.get if isinstance(options, Mapping) else lambda key, default=None: getattr(options, key, default)
    cls = REPRESENTATIONS[node.pop("name")]
    return cls(frame_size=get("frame_size", 200), hop=get("hop"), last_frame=get("last_frame", "pad"),
               settings=cls.Settings.from_dict(node), statistics=statistics)


def of_earlier_version(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data.representation node of a checkpoint's data config written before representations existed:
    waveform frames, marked where they overlapped (data.hop < data.frame_size, which those versions accepted:
    such a checkpoint evaluates, with a warning, but no new run trains so)."""
    hop, frame_size = data.get("hop"), data.get("frame_size", 200)
    return {**DEFAULT, **({"earlier_version_overlap": True} if hop is not None and hop != frame_size else {})}


__all__ = ["REPRESENTATIONS", "Representation", "Waveform", "PowerSpectrogram", "build", "settings"]
