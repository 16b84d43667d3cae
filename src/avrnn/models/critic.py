"""The critic D_eta of Section VI: one LSTM layer (state 128) and two FC layers (100 units)
reading a whole latent sequence z_{<=T}, and one linear read-out to a scalar score."""

from __future__ import annotations

import torch
from torch import nn

from avrnn.models.layers import MLP


class SequenceCritic(nn.Module):
    """Scores a latent sequence (B, T, z_dim) with a (B, T) mask; one score per sequence.

    readout="last" scores the LSTM state at each sequence's last unmasked step (the whole
    sequence z_{<=T}); readout="mean" averages per-step scores over unmasked steps. Neither
    depends on what lies in the padding, since the LSTM is causal.
    """

    def __init__(self, z_dim: int, lstm_size: int = 128, fc_size: int = 100, readout: str = "last"):
        super().__init__()
        if readout not in ("last", "mean"):
            raise ValueError(f"critic readout must be 'last' or 'mean', got {readout!r}")
        self.lstm = nn.LSTM(z_dim, lstm_size, batch_first=True)
        # LeakyReLU: a critic whose units all die outputs a constant and stops learning for good
        self.fc = MLP(lstm_size, fc_size, fc_size, activation=lambda: nn.LeakyReLU(0.2))
        self.score = nn.Linear(fc_size, 1)
        self.readout = readout

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(z)
        if self.readout == "last":
            last = (mask.sum(1).long() - 1).clamp(min=0)
            states = states[torch.arange(z.shape[0], device=z.device), last]
            return self.score(self.fc(states)).squeeze(-1)
        per_step = self.score(self.fc(states)).squeeze(-1)
        return (per_step * mask).sum(1) / mask.sum(1).clamp(min=1)

    @torch.no_grad()
    def clip_weights(self, clip_value: float) -> None:
        """WGAN weight clipping: clamp every parameter to [-c, c] (after each critic step)."""
        for parameter in self.parameters():
            parameter.clamp_(-clip_value, clip_value)
