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


def test_the_fused_pass_refuses_a_layer_layout_it_does_not_read():
    """It reads proposal.fc1/fc2/mean/raw_std by name: an extra layer must fail, not be skipped."""
    model = VRNN(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8)
    model.proposal.fc3 = torch.nn.Linear(8, 8)
    with pytest.raises(TypeError, match=r"reads proposal as GaussianMLP with layers \['fc1', 'fc2', 'activation', "
                                        r"'mean', 'raw_std'\].*update avrnn/models/fused.py"):
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
