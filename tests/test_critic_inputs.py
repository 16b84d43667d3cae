"""Critic inputs whose zero sits at q = p (issue: A-VRNN done right): critic.input=conditional and
model.prior_path=own beside the paper's sequence critic on the shared path.

Fast and exact checks here; the statistical check, a strong critic trained to tell prior from
posterior latents where z_t drives h_t, is a slow test (`make test-slow`)."""

import pytest
import torch

from avrnn.config import ConfigError, validate
from avrnn.models import VRNN
from avrnn.models.critic import ConditionalCritic, SequenceCritic
from avrnn.training import train

SMALL = dict(frame_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8)


def set_proposal_to_transition(model: VRNN, shift: float = 0.0) -> None:
    """PS_tau(x, h) := TR_omega(h) (+ shift on the mean): the proposal ignores x, reads h as TR does."""
    proposal, transition, n_x = model.proposal, model.transition, model.proposal.fc1.in_features - model.hidden_size
    with torch.no_grad():
        proposal.fc1.weight.zero_()
        proposal.fc1.weight[:, n_x:] = transition.fc1.weight
        proposal.fc1.bias.copy_(transition.fc1.bias)
        for name in ("fc2", "mean", "raw_std"):
            getattr(proposal, name).load_state_dict(getattr(transition, name).state_dict())
        proposal.mean.bias += shift


def same_noise(monkeypatch):
    """Posterior and prior samples from the same standard normal draws."""
    def draw(self, batch, steps, like):
        noise = torch.randn(steps, batch, self.z_dim, dtype=like.dtype)
        return noise, noise
    monkeypatch.setattr(VRNN, "draw_noise", draw)


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_own_path_with_ps_equal_to_tr_and_the_same_noise_gives_the_posteriors_latents_bitwise(monkeypatch, rnn):
    same_noise(monkeypatch)
    torch.manual_seed(0)
    model = VRNN(**SMALL, rnn=rnn, prior_path="own")
    set_proposal_to_transition(model)
    z_post, z_prior, h, h_prior = model.latents(torch.randn(4, 9, 6))
    assert h_prior is not h  # its own path, computed on its own ...
    assert torch.equal(z_prior, z_post) and torch.equal(h_prior, h)  # ... and equal to the last bit
    set_proposal_to_transition(model, shift=0.5)
    z_post, z_prior, _, _ = model.latents(torch.randn(4, 9, 6))
    assert not torch.equal(z_prior, z_post)  # PS off TR: the two differ (the check above can fail)


def test_the_conditional_critics_score_at_step_t_reads_only_step_t():
    torch.manual_seed(0)
    critic = ConditionalCritic(z_dim=3, h_dim=8, fc_size=6)
    z, h = torch.randn(2, 7, 3), torch.randn(2, 7, 8)
    before = critic.per_step(z, h)
    z2, h2 = z.clone(), h.clone()
    z2[:, [0, 1, 5, 6]] += 3.0
    h2[:, [0, 1, 5, 6]] -= 2.0
    after = critic.per_step(z2, h2)
    assert torch.equal(before[:, 2:5], after[:, 2:5])  # steps 2-4 untouched: their scores are bitwise equal
    assert not torch.equal(before[:, 0], after[:, 0])
    mask = torch.ones(2, 7)
    mask[1, 4:] = 0
    torch.testing.assert_close(critic(z, mask, h), (before * mask).sum(1) / mask.sum(1))  # unmasked mean


def test_the_sequence_critics_score_depends_on_earlier_steps():
    """The contrast: the paper's critic reads the whole sequence (so its score at the end sees step 0)."""
    torch.manual_seed(0)
    critic = SequenceCritic(z_dim=3, lstm_size=6, fc_size=5)
    z, mask = torch.randn(2, 7, 3), torch.ones(2, 7)
    z2 = z.clone()
    z2[:, 0] += 3.0
    assert not torch.equal(critic(z, mask), critic(z2, mask))


@pytest.mark.parametrize("overrides", [
    ["critic=wgan_gp", "critic.input=conditional"], ["critic=wgan_gp", "model.prior_path=own"],
    ["critic=wgan_gp", "critic.input=conditional", "model.prior_path=own"], ["critic=wgan_gp", "model.recurrence_input=x"],
    ["critic=gan", "critic.input=conditional"], ["critic=wgan", "model.prior_path=own", "model.rnn=lstm"]])
def test_each_critic_input_trains(make_cfg, overrides):
    metrics = train(make_cfg(*overrides, "trainer.fast_dev_run=2"))
    assert all(value == value for value in metrics.values())
    assert torch.isfinite(torch.tensor(metrics["train/adversarial_loss"]))


@pytest.mark.parametrize("override,needle", [
    ("critic.input=conditional", "critic.input=conditional and model.prior_path=shared shape what the critic"),
    ("model.prior_path=own", "critic.input=sequence and model.prior_path=own shape what the critic"),
])
def test_critic_inputs_are_refused_with_the_vrnn_in_one_line(make_cfg, override, needle):
    with pytest.raises(ConfigError) as error:
        validate(make_cfg("model=vrnn", override))
    assert needle in str(error.value) and "model=vrnn has no critic" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("override,message", [
    ("critic.input=lstm", "critic.input='lstm' is not allowed; choose one of sequence, conditional"),
    ("model.prior_path=mine", "model.prior_path='mine' is not allowed; choose one of shared, own"),
    ("model.recurrence_input=z", "model.recurrence_input='z' is not allowed; choose one of xz, x"),
])
def test_unknown_inputs_and_paths_are_one_line(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(override))
