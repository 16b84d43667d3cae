"""Critics D_eta: what the critic reads (critic.input) and how it scores it.

Every critic scores latent sequences z (B, T, Z) drawn at states h_{t-1} (B, T, H), with a (B, T)
mask, one score per sequence: `critic(z, mask, h)`. Which one a run uses: critic.input, a key of
critic.networks (conf/config.yaml's schema, avrnn.config), each a `_target_` config.

  sequence     the paper's (Section VI): an LSTM over the whole sequence z_{<=T}; ignores h.
               Prior and posterior samples drawn along the posterior's h path differ in how
               consecutive steps relate even when PS = TR, so its zero is not at q = p (unless the
               prior samples drive their own path, model.prior_path=own).
  conditional  an MLP on [z_t, h_{t-1}] per step, no memory across steps, averaged over unmasked
               steps. Its distance is zero when p(z_t | h) equals the posterior aggregated over x at
               that h, which includes q = p (the converse does not hold: a zero does not mean q = p).
"""

from __future__ import annotations

import torch
from torch import nn

from avrnn.models.layers import MLP


READOUTS = ("last", "mean")


def _leaky():
    # LeakyReLU: a critic whose units all die outputs a constant and stops learning for good
    return nn.LeakyReLU(0.2)


def masked_mean(per_step: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (per_step * mask).sum(1) / mask.sum(1).clamp(min=1)


class SequenceCritic(nn.Module):
    """One LSTM layer (state 128) and two FC layers (100 units) reading z_{<=T}, then a linear score.

    readout="last" scores the LSTM state at each sequence's last unmasked step (the whole
    sequence z_{<=T}); readout="mean" averages per-step scores over unmasked steps. Neither
    depends on what lies in the padding, since the LSTM is causal.
    """

    def __init__(self, z_dim: int, h_dim: int | None = None, lstm_size: int = 128, fc_size: int = 100,
                 readout: str = "last"):
        super().__init__()
        self.lstm = nn.LSTM(z_dim, lstm_size, batch_first=True)
        self.fc = MLP(lstm_size, [fc_size, fc_size], activation=_leaky)
        self.score = nn.Linear(fc_size, 1)
        self.readout = readout

    def forward(self, z: torch.Tensor, mask: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        states, _ = self.lstm(z)
        if self.readout == "last":
            last = (mask.sum(1).long() - 1).clamp(min=0)
            states = states[torch.arange(z.shape[0], device=z.device), last]
            return self.score(self.fc(states)).squeeze(-1)
        return masked_mean(self.score(self.fc(states)).squeeze(-1), mask)


class ConditionalCritic(nn.Module):
    """Scores each step's z_t given h_{t-1} (detached: the critic judges z, not the recurrence) with
    two FC layers and a linear score, averaged over unmasked steps."""

    def __init__(self, z_dim: int, h_dim: int, fc_size: int = 100):
        super().__init__()
        self.fc = MLP(z_dim + h_dim, [fc_size, fc_size], activation=_leaky)
        self.score = nn.Linear(fc_size, 1)

    def per_step(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """(B, T) scores, each from its own step's z_t and h_{t-1} only."""
        return self.score(self.fc(torch.cat([z, h.detach()], -1))).squeeze(-1)

    def forward(self, z: torch.Tensor, mask: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.per_step(z, h), mask)
