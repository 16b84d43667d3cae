"""Plain torch modules and pure loss functions: no Lightning, no Hydra, no file I/O."""

from avrnn.models.critic import SequenceCritic
from avrnn.models.vrnn import VRNN, VRNNOutput

__all__ = ["VRNN", "VRNNOutput", "SequenceCritic"]
