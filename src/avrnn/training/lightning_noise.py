"""Lines Lightning writes into every run's log that tell a researcher nothing, or something untrue here:

- the "💡 Tip" advertising a cloud logger (rank_zero_info, at every Trainer);
- the deprecation of `LeafSpec` by its own pytree helper (torch's, not this project's code; no action);
- "Checkpoint directory ... exists and is not empty": a resume writes into its own run folder, and the
  run folder's rules (avrnn.training.run_folder) refuse every other reuse before Lightning is reached.

`quiet()` drops exactly these, leaving every other warning and info line; calling it again adds nothing.
"""

from __future__ import annotations

import logging
import warnings

TIP_PREFIX = "💡 Tip:"
RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                     "lightning_utilities.core.rank_zero")
WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
            r"Checkpoint directory .* exists and is not empty")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


_FILTER = _DropTips()


def quiet() -> None:
    """Drop Lightning's tip and the two warnings of the module docstring (idempotent)."""
    # rank_zero_info logs through whichever of these Lightning's imports set last (lightning_utilities' `log`)
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)
