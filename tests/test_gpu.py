"""GPU paths (CUDA graphs, bf16 autocast, the fast loop on CUDA). Most need a CUDA device and are
skipped without one (CI has none; they were run on a lent H100, see docs/performance.md)."""

from __future__ import annotations

import functools
import logging

import pytest
import pytorch_lightning as pl
import torch

from avrnn.models.phase_losses import elbo_loss  # the training step of model=vrnn: -ELBO per timestep, terms
from avrnn.training.cuda_graphs import GraphedBackward
from avrnn.models import VRNN, losses
from avrnn.models.reference import reference_terms
from avrnn.training.fit import train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SMALL = dict(input_size=6, z_dim=3, hidden_size=8, x_features=5, z_features=5, mlp_hidden=8)


def fixed_noise(monkeypatch):
    """VRNN.draw_noise returns the same noise for the same shape: eager and graphed runs (whose
    warm-ups draw extra noise) then compute the same function. Drawn once per shape, outside any
    graph capture (the first draw happens in a warm-up run)."""
    cache = {}

    def draw(self, batch, steps, like):
        key = (batch, steps, self.z_dim, like.dtype, like.device)
        if key not in cache:
            generator = torch.Generator(device=like.device).manual_seed(len(cache))
            cache[key] = torch.randn(steps, 2, batch, self.z_dim, generator=generator, device=like.device,
                                     dtype=like.dtype).unbind(1)
        return cache[key]

    monkeypatch.setattr(VRNN, "draw_noise", draw)


def eager_loss_and_grads(model, loss_fn, x, mask):
    model.zero_grad(set_to_none=True)
    loss, terms = loss_fn(x, mask)
    loss.backward()
    return loss.detach(), terms, [p.grad.clone() for p in model.parameters()]


@needs_cuda
@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_vrnn_matches_the_reference_on_cuda(rnn, mlp_layout):
    torch.manual_seed(0)
    model = VRNN(**{**SMALL, **mlp_layout}, rnn=rnn).double().cuda()
    x = torch.randn(3, 7, 6, dtype=torch.double, device="cuda")
    mask = torch.ones(3, 7, dtype=torch.double, device="cuda")
    mask[2, 4:] = 0

    def grads(fn):
        model.zero_grad()
        torch.manual_seed(1)
        rec, kl = fn()
        (losses.per_timestep(kl, mask) - losses.per_timestep(rec, mask)).backward()
        return [rec.detach(), kl.detach()] + [p.grad.clone() for p in model.parameters()]

    fast = grads(lambda: (lambda out: (out.rec_log_lik, out.kl.sum(-1)))(model(x, mask)))
    for got, want in zip(fast, grads(lambda: reference_terms(model, x, mask))):
        torch.testing.assert_close(got, want)


@needs_cuda
@pytest.mark.parametrize("autocast", [False, True])
def test_graphed_backward_equals_eager_for_new_inputs_and_does_not_accumulate(monkeypatch, autocast, mlp_layout):
    fixed_noise(monkeypatch)
    torch.manual_seed(0)
    model = VRNN(**{**SMALL, **mlp_layout}).cuda()
    loss_fn = functools.partial(elbo_loss, model)
    graphed = GraphedBackward(loss_fn, list(model.parameters()))
    inputs = [(torch.randn(4, 9, 6, device="cuda"), torch.ones(4, 9, device="cuda")) for _ in range(2)]
    inputs[1][1][3, 5:] = 0
    tolerance = dict(rtol=2e-2, atol=2e-3) if autocast else dict(rtol=1e-5, atol=1e-6)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast, cache_enabled=False):
        for x, mask in inputs + inputs[:1]:  # the first input again: replays overwrite, never add
            loss, terms = graphed(x, mask)
            graph_grads = [p.grad.clone() for p in model.parameters()]
            want_loss, want_terms, want_grads = eager_loss_and_grads(model, loss_fn, x, mask)
            torch.testing.assert_close(loss, want_loss, **tolerance)
            torch.testing.assert_close(terms, want_terms, **tolerance)
            for got, want in zip(graph_grads, want_grads):
                torch.testing.assert_close(got, want, **tolerance)
    assert len(graphed.graphs) == 1  # one shape, one capture
    graphed(torch.randn(2, 5, 6, device="cuda"), torch.ones(2, 5, device="cuda"))
    assert len(graphed.graphs) == 2


class _FinalWeights(pl.Callback):
    def on_fit_end(self, trainer, module):
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}


@needs_cuda
@pytest.mark.parametrize("arm", [["model=avrnn", "critic=wgan"], ["model=avrnn", "critic=gan", "ablation=hybrid"],
                                 ["model=vrnn", "critic=none", "model.kl_warmup_iterations=4"]])
def test_training_with_cuda_graphs_gives_the_eager_weights(make_cfg, monkeypatch, caplog, arm):
    """Same data, same noise: three iterations with and without training.cuda_graphs end at the same
    weights (fp32; the graph runs the same kernels, so only kernel-level rounding may differ)."""
    fixed_noise(monkeypatch)
    finals = []
    for graphs in (False, True):
        weights = _FinalWeights()
        with caplog.at_level(logging.INFO, logger="avrnn.cuda_graphs"):
            train(make_cfg("trainer=gpu", "trainer.precision=32-true", *arm, f"training.cuda_graphs={graphs}",
                           "training.test_after_training=false", "training.validate_before_training=false"),
                  callbacks=[weights])
        finals.append(weights.state)
    assert "captured the" in caplog.text and "failed" not in caplog.text
    for name, value in finals[0].items():
        torch.testing.assert_close(finals[1][name], value, rtol=1e-4, atol=1e-5, msg=name)


@needs_cuda
@pytest.mark.parametrize("arm", [["model=avrnn", "critic=wgan"], ["model=avrnn", "critic=wgan_gp"],
                                 ["model=avrnn", "critic=gan", "ablation=posterior_only"],
                                 ["model=vrnn", "critic=none"]])
def test_bf16_training_with_cuda_graphs_runs(make_cfg, arm, caplog):
    with caplog.at_level(logging.INFO, logger="avrnn.cuda_graphs"):
        metrics = train(make_cfg("trainer=gpu", *arm, "training.cuda_graphs=true"))
    assert "captured the" in caplog.text and "failed" not in caplog.text
    assert torch.isfinite(torch.tensor(metrics["test/elbo_per_timestep"]))


@needs_cuda
def test_cuda_graphs_are_on_by_default_on_a_gpu(make_cfg, caplog):
    with caplog.at_level(logging.INFO, logger="avrnn"):
        train(make_cfg("trainer=gpu", "trainer.fast_dev_run=1"))
    assert "captured the reconstruction phase" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without a GPU")
@pytest.mark.parametrize("setting", ["true", "null"])
def test_cuda_graphs_without_a_gpu_train_eagerly(make_cfg, caplog, setting):
    """true says why graphs are off; the default (null) stays quiet on a CPU."""
    with caplog.at_level(logging.INFO, logger="avrnn"):
        metrics = train(make_cfg(f"training.cuda_graphs={setting}", "trainer.fast_dev_run=1"))
    warned = "training.cuda_graphs=true needs a CUDA device (this run is on cpu)" in caplog.text
    assert warned == (setting == "true")
    assert "captured" not in caplog.text
    assert torch.isfinite(torch.tensor(metrics["train/elbo_per_timestep"]))
