"""The fast VRNN (batched outside the time loop) equals the per-step reference implementation."""

import pytest
import torch

from avrnn.models import VRNN
from avrnn.models import losses
from avrnn.models.reference import reference_terms


@pytest.mark.parametrize("rnn, recurrence_input, emission", [
    ("gru", "xz", "gaussian"), ("gru", "x", "gaussian"), ("lstm", "xz", "gaussian"), ("lstm", "x", "gaussian"),
    ("gru", "xz", "bernoulli"), ("gru", "xz", "itakura_saito")])
def test_same_parameters_and_noise_give_the_same_losses_and_gradients(rnn, recurrence_input, emission):
    torch.manual_seed(0)
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8, rnn=rnn,
                 recurrence_input=recurrence_input, emission=emission).double()
    # data every emission's density is defined on: real values, or values in [0, 1] (probabilities, powers)
    x = torch.randn(3, 7, 6, dtype=torch.double) if emission == "gaussian" else torch.rand(3, 7, 6, dtype=torch.double)
    mask = torch.ones(3, 7, dtype=torch.double)
    mask[2, 4:] = 0

    def loss_and_grads(fn):
        model.zero_grad()
        torch.manual_seed(1)
        rec, kl = fn()
        loss = -losses.per_timestep(rec, mask) + losses.per_timestep(kl, mask)
        loss.backward()
        return rec.detach(), kl.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    def fast():
        out = model(x, mask)
        return out.rec_log_lik, out.kl.sum(-1)

    fast_rec, fast_kl, fast_grads = loss_and_grads(fast)
    ref_rec, ref_kl, ref_grads = loss_and_grads(lambda: reference_terms(model, x, mask))
    assert torch.isfinite(fast_rec).all()
    torch.testing.assert_close(fast_rec, ref_rec)
    torch.testing.assert_close(fast_kl, ref_kl)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, msg=name)


@pytest.mark.parametrize("rnn, emission, prior_samples", [("gru", "gaussian", True), ("lstm", "itakura_saito", False)])
def test_every_mlp_layout_gives_the_references_losses_and_gradients(mlp_layout, rnn, emission, prior_samples):
    """model.*_widths and model.activation (identity blocks, one to three layers) in the fused pass: the same
    losses and every parameter's gradient as VRNN.step, in float64."""
    torch.manual_seed(0)
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8, rnn=rnn,
                 emission=emission, **mlp_layout).double()
    x = torch.randn(3, 7, 6, dtype=torch.double)
    x = x.exp() if emission == "itakura_saito" else x  # powers
    mask = torch.ones(3, 7, dtype=torch.double)
    mask[1, 3:] = 0

    def loss_and_grads(fn):
        model.zero_grad()
        torch.manual_seed(1)
        rec, kl = fn()
        (losses.per_timestep(kl, mask) - losses.per_timestep(rec, mask)).backward()
        return [rec.detach(), kl.detach()], {n: p.grad.clone() for n, p in model.named_parameters()}

    fast_terms, fast_grads = loss_and_grads(lambda: (lambda out: (out.rec_log_lik, out.kl.sum(-1)))(
        model(x, mask, prior_samples=prior_samples)))
    ref_terms, ref_grads = loss_and_grads(lambda: reference_terms(model, x, mask))
    for got, want in zip(fast_terms, ref_terms):
        torch.testing.assert_close(got, want)
    assert set(fast_grads) == set(ref_grads) and all(grad.abs().sum() > 0 for grad in ref_grads.values())
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, msg=name)


def test_mlp_widths_shape_the_blocks_and_an_empty_list_is_the_identity():
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, activation="tanh", phi_x_widths=[], phi_z_widths=[4, 5],
                 tr_widths=[], ps_widths=[7], em_widths=[])
    x = torch.randn(2, 6)
    torch.testing.assert_close(model.phi_x(x), x)
    assert [linear.out_features for linear in model.phi_z.layers().linears] == [4, 5]
    assert model.f_theta.input_size == 6 + 5  # phi_x is the identity: the cell reads x_t itself
    assert model.transition.mean.in_features == 8 and model.proposal.fc1.in_features == 6 + 8
    assert model.emission.mean.in_features == 5 + 8
    assert isinstance(model.phi_z.activation, torch.nn.Tanh)
    names = {name for name, _ in model.named_parameters()}
    assert "phi_z.fc2.weight" in names and "phi_z.fc3.weight" not in names and not any(
        name.startswith("phi_x.") for name in names)


@pytest.mark.parametrize("widths", [[0], [4, -1], "8", [2.5], [True]])
def test_a_width_list_that_is_not_positive_integers_is_refused_by_name(widths):
    with pytest.raises(ValueError, match=r"model\.ps_widths=.* must be a list of positive layer widths"):
        VRNN(input_size=6, ps_widths=widths)


@pytest.mark.parametrize("override", ["model.tr_widths=[0]", "model.phi_x_widths=[4,-1]"])
def test_a_bad_width_is_refused_at_start_up_before_any_data_is_read(make_cfg, override):
    from avrnn.config import ConfigError, validate

    with pytest.raises(ConfigError, match=r"must be a list of positive layer widths"):
        validate(make_cfg(override))


def test_the_default_layout_keeps_the_earlier_versions_parameters_and_initial_weights():
    """null widths = two layers of mlp_hidden (and x_features / z_features for phi_x / phi_z): the same
    parameter names and, for one seed, the same initial weights as the explicit lists."""
    torch.manual_seed(0)
    implicit = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=4, mlp_hidden=7)
    torch.manual_seed(0)
    explicit = VRNN(input_size=6, z_dim=3, hidden_size=8, phi_x_widths=[7, 5], phi_z_widths=[7, 4],
                    tr_widths=[7, 7], ps_widths=[7, 7], em_widths=[7, 7])
    assert list(implicit.state_dict()) == list(explicit.state_dict())
    assert "proposal.fc2.weight" in implicit.state_dict() and "emission.mean.weight" in implicit.state_dict()
    for name, value in implicit.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[name]), name


@pytest.mark.parametrize("block, kind, prior_path", [("proposal", "GaussianMLP", "shared"), ("phi_z", "MLP", "shared"),
                                                     ("transition", "GaussianMLP", "own")])
def test_the_fused_pass_refuses_a_layer_layout_it_does_not_read(block, kind, prior_path):
    """It reads each block's layers by name (the transition in the loop of the prior's own path): an extra
    layer must fail, naming the block, what it expected and what it found, not be skipped."""
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8, prior_path=prior_path)
    getattr(model, block).fc3 = torch.nn.Linear(8, 8)
    heads = ", 'mean', 'raw_std'" if kind == "GaussianMLP" else ""
    with pytest.raises(TypeError, match=rf"^the fused VRNN pass reads {block} as {kind} with layers \['fc1', 'fc2', "
                                        rf"'activation'{heads}\], but it is {kind} with \['fc1', 'fc2', 'activation'"
                                        rf"{heads}, 'fc3'\]; update avrnn/models/fused.py to the new layout$"):
        model(torch.randn(2, 4, 6), torch.ones(2, 4))


def test_step_samples_the_posterior_with_data_and_the_prior_without():
    torch.manual_seed(0)
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8)
    state, noise = model.initial_state(2, torch.zeros(1)), torch.randn(2, 3)
    teacher = model.step(state, torch.randn(2, 6), noise=noise)
    torch.testing.assert_close(teacher.z, teacher.posterior.loc + teacher.posterior.scale * noise)
    free = model.step(state, noise=noise)
    assert free.posterior is None
    torch.testing.assert_close(free.z, free.prior.loc + free.prior.scale * noise)
    torch.testing.assert_close(free.x, model.expected_frames(free.emission))  # generation reads its own mean


@pytest.mark.parametrize("recurrence_input, prior_path", [("xz", "shared"), ("x", "shared"), ("xz", "own")])
def test_the_fused_passs_prior_samples_are_the_reparameterised_prior_at_their_own_h(recurrence_input, prior_path):
    """z_prior_t = mean + std x noise_t of TR at the h_{t-1} each sample was drawn at (the posterior's h,
    or the prior's own path), for every way h is driven; drawn unless prior_samples=False."""
    from avrnn.models.fused import fused_trajectory

    torch.manual_seed(0)
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8,
                 recurrence_input=recurrence_input, prior_path=prior_path).double()
    x = torch.randn(2, 4, 6, dtype=torch.double)
    post_noise, prior_noise = torch.randn(2, 4, 2, 3, dtype=torch.double).unbind(2)
    post_noise, prior_noise = post_noise.transpose(0, 1), prior_noise.transpose(0, 1)  # (T, B, Z)
    trajectory = fused_trajectory(model, model.phi_x(x), post_noise, prior_noise)  # prior samples by default
    prior = model.prior(trajectory.h_prior)
    torch.testing.assert_close(trajectory.z_prior, prior.loc + prior.scale * prior_noise.transpose(0, 1))
    torch.testing.assert_close(trajectory.z_post, trajectory.posterior.loc
                               + trajectory.posterior.scale * post_noise.transpose(0, 1))
    if prior_path == "own":
        assert not torch.allclose(trajectory.h_prior, trajectory.h_prev)  # its own path, not the posterior's
    else:
        assert trajectory.h_prior is trajectory.h_prev
    assert fused_trajectory(model, model.phi_x(x), post_noise, prior_noise, prior_samples=False).z_prior is None
