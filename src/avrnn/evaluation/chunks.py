"""IWAE-k in bounded memory: the teacher-forced pass behind IWAE-k keeps every step of batch x k
particles (sequence_log_weights), so one long recording multiplies the memory of its whole batch
(measured on a CPU: about 15 KB per particle-frame at the default model size, 6 KB at the tests' tiny
one; a 60 s recording at 16 kHz with k=64 and its 7 batch-mates padded to it would need about 37 GB). Where batch x k x frames exceeds `max_particle_frames`, the batch is scored in
parts: groups of sequences (each cut to its own longest), then chunks of particles, whose log
weights are joined before the log-mean-exp: the same estimator; only the random draws differ.
Within the budget the computation is the unchunked one, draw for draw.
"""

from __future__ import annotations

import torch

from avrnn.models.bounds import iwae_bound, sequence_log_weights


def plan(batch: int, steps: int, particles: int, max_particle_frames: int) -> tuple[int, int]:
    """(sequences per group, particles per chunk) keeping group x chunk x steps <= max_particle_frames
    where it can (one sequence with one particle at a time is the least it can do); (batch, particles)
    within the budget."""
    sequences = max(1, min(batch, max_particle_frames // max(1, steps * particles)))
    chunk = max(1, min(particles, max_particle_frames // max(1, steps)))  # all k wherever two sequences fit
    return sequences, chunk


def iwae_in_parts(model, x: torch.Tensor, mask: torch.Tensor, particles: int, max_particle_frames: int) -> torch.Tensor:
    """IWAE-k (B,) in nats per sequence, scored in parts (see the module's docstring). x: (B, T, F),
    mask: (B, T)."""
    batch, steps, _ = x.shape
    sequences, chunk = plan(batch, steps, particles, max_particle_frames)
    if (sequences, chunk) == (batch, particles):
        return iwae_bound(sequence_log_weights(model, x, mask, particles))
    bounds = []
    for start in range(0, batch, sequences):
        part_mask = mask[start:start + sequences]
        length = int(part_mask.sum(1).max())  # its own longest: no steps of padding for a long batch-mate
        part_x, part_mask = x[start:start + sequences, :length], part_mask[:, :length]
        weights = [sequence_log_weights(model, part_x, part_mask, min(chunk, particles - done))
                   for done in range(0, particles, chunk)]
        bounds.append(iwae_bound(torch.cat(weights)))  # the particles of every chunk (dim 0)
    return torch.cat(bounds)
