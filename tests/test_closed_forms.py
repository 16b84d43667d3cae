"""The core maths held to closed forms and independent computations (issue: mutation testing): each test
asserts a value worked out from the definition, never one read back from the code under test."""

import inspect
import math

import pytest
import torch

from avrnn.evaluation.streams import EstimateStreams
from avrnn.models import losses, phase_losses
from avrnn.models.objectives import JensenShannon, WassersteinGradientPenalty


# --- WGAN-GP's penalty (Gulrajani et al. 2017): gp_weight * mean_b (||grad_z D(z_hat_b)|| - 1)^2 --------
def linear_score(weights: torch.Tensor):
    """D(z, h) = sum_{t,j} w_tj z_tj per sequence: grad_z D = w wherever z is taken, so the penalty has a
    closed form; it reads padded steps too (only the mask keeps them out of the norm)."""
    return lambda z, h: (z * weights).flatten(1).sum(1)


def test_the_gradient_penalty_is_the_squared_distance_of_the_gradient_norm_from_one():
    torch.manual_seed(0)
    weights = torch.tensor([[[0.6, 0.0], [0.0, 0.0]]])  # ||w|| = 0.6 on the unmasked steps
    z_prior, z_post, h = torch.randn(3, 2, 2), torch.randn(3, 2, 2), torch.zeros(3, 2, 5)
    mask = torch.ones(3, 2)
    penalty = losses.gradient_penalty(linear_score(weights), (z_prior, h), (z_post, h), mask)
    assert penalty.item() == pytest.approx((0.6 - 1) ** 2)  # not 0.6 ** 2 (a penalty on the norm itself)
    weights = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])  # ||w|| = 5
    assert losses.gradient_penalty(linear_score(weights), (z_prior, h), (z_post, h), mask).item() == \
        pytest.approx(16.0)


def test_padded_steps_carry_no_gradient_into_the_penalty():
    weights = torch.tensor([[[3.0, 0.0], [4.0, 0.0], [12.0, 0.0]]])  # step norms 3, 4, 12
    z, h = torch.randn(2, 3, 2), torch.zeros(2, 3, 1)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # the second sequence ends after two steps
    penalty = losses.gradient_penalty(linear_score(weights), (z, h), (z + 1, h), mask)
    assert penalty.item() == pytest.approx(((13 - 1) ** 2 + (5 - 1) ** 2) / 2)  # sqrt(9+16+144), sqrt(9+16)


def test_the_conditional_critic_is_penalised_at_interpolated_states_on_its_own_prior_path():
    """D(z, h) = sum z * h: grad_z D = h_hat, the states interpolated with the same alpha as z."""
    z_prior, z_post = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    h_prior, h_post = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    mask = torch.ones(4, 3)
    torch.manual_seed(7)
    penalty = losses.gradient_penalty(lambda z, h: (z * h).flatten(1).sum(1), (z_prior, h_prior), (z_post, h_post), mask)
    torch.manual_seed(7)
    alpha = torch.rand(4, 1, 1)  # the draw the penalty makes first
    h_hat = alpha * h_prior + (1 - alpha) * h_post
    assert penalty.item() == pytest.approx(((h_hat.flatten(1).norm(dim=1) - 1) ** 2).mean().item(), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # alpha drawn in the latents' precision
def test_the_penalty_is_taken_at_the_interpolates_of_prior_and_posterior_latents(dtype):
    """D(z) = ||z||^2 / 2 per sequence: grad_z D = z_hat = alpha z_prior + (1 - alpha) z_post."""
    z_prior, z_post = torch.randn(4, 3, 2, dtype=dtype), torch.randn(4, 3, 2, dtype=dtype)
    h = torch.zeros(4, 3, 1, dtype=dtype)
    torch.manual_seed(3)
    penalty = losses.gradient_penalty(lambda z, _: 0.5 * z.pow(2).flatten(1).sum(1), (z_prior, h), (z_post, h),
                                      torch.ones(4, 3, dtype=dtype))
    torch.manual_seed(3)
    alpha = torch.rand(4, 1, 1, dtype=dtype)
    z_hat = alpha * z_prior + (1 - alpha) * z_post
    assert penalty.dtype == dtype
    assert penalty.item() == pytest.approx(((z_hat.flatten(1).norm(dim=1) - 1) ** 2).mean().item(),
                                           rel=1e-12 if dtype == torch.float64 else 1e-6)


def test_the_penalty_trains_the_critic():
    """D(z) = sum w z: penalty (||w|| - 1)^2, whose gradient in w is 2 (||w|| - 1) w / ||w||: the gradient's
    own graph is kept (create_graph), or the penalty would not reach the critic's weights."""
    weights = torch.tensor([[[3.0, 4.0]]], requires_grad=True)
    z, h = torch.randn(2, 1, 2), torch.zeros(2, 1, 1)
    penalty = losses.gradient_penalty(linear_score(weights), (z, h), (z + 1, h), torch.ones(2, 1))
    (grad,) = torch.autograd.grad(penalty, weights)
    torch.testing.assert_close(grad, 2 * (5.0 - 1) * torch.tensor([[[3.0, 4.0]]]) / 5.0)


def test_per_timestep_divides_by_the_unmasked_frames_even_where_there_is_one_or_none():
    per_step = torch.tensor([[5.0, 7.0], [11.0, 13.0]])
    one = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert losses.per_timestep(per_step, one).item() == 7.0  # one frame: its value, not half of it
    assert losses.per_timestep(per_step, torch.zeros(2, 2)).item() == 0.0  # none: 0, not a division by 0
    kl = torch.zeros(1, 2, 2)
    kl[0, 1, 0] = 3.0
    assert losses.free_bits_kl(kl, one[:1], free_bits=0.0).item() == 3.0  # the one frame's KL


def test_wgan_gp_adds_its_weight_times_the_penalty_to_the_critic_loss():
    weights = torch.tensor([[[3.0, 4.0]]])  # ||grad|| = 5: penalty 16
    z_prior, z_post, h = torch.ones(2, 1, 2), torch.zeros(2, 1, 2), torch.zeros(2, 1, 1)
    loss, terms = WassersteinGradientPenalty(gp_weight=10.0).critic_loss(
        linear_score(weights), (z_prior, h), (z_post, h), torch.ones(2, 1))
    # D(prior) = 7, D(post) = 0: L_dis = 7; plus 10 x 16
    assert loss.item() == pytest.approx(7 + 160) and terms["gradient_penalty"].item() == pytest.approx(16)
    assert terms["critic_loss"].item() == pytest.approx(7) and terms["wasserstein"].item() == pytest.approx(-7)


# --- the Jensen-Shannon estimate of the GAN critic: critic loss = 2 log 2 - 2 JS at the optimum ----------
@pytest.mark.parametrize("d_prior, d_post, js", [
    (0.0, 0.0, 0.0),  # a critic that cannot tell: both BCE terms log 2, loss 2 log 2
    (40.0, -40.0, math.log(2)),  # perfect separation: loss 0
    (math.log(3), -math.log(3), math.log(2) - math.log(4 / 3)),  # p = 3/4 on each side: loss 2 log(4/3)
])
def test_the_js_estimate_at_known_logits(d_prior, d_post, js):
    objective = JensenShannon()
    estimate = objective.distance(torch.full((5,), d_prior), torch.full((5,), d_post))
    assert estimate.item() == pytest.approx(js, abs=1e-6)
    loss = objective.loss(torch.full((5,), d_prior), torch.full((5,), d_post))
    assert loss.item() == pytest.approx(2 * math.log(2) - 2 * js, abs=1e-6)


# --- free bits in the training loss (model=vrnn model.free_bits) ------------------------------------------
def test_the_training_loss_floors_each_latent_dimension_at_free_bits_over_z_dim():
    rec_log_lik = torch.full((2, 3), -1.5)  # reconstruction 1.5 nats per step
    kl = torch.zeros(2, 3, 4)
    kl[..., 0] = 2.0  # one dimension at 2 nats per step, three at 0
    kl[1, 2] = 50.0  # a padded step: must not count
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    loss, terms = phase_losses.negative_elbo(rec_log_lik, kl, mask, kl_weight=1.0, free_bits=1.0)
    assert loss.item() == pytest.approx(1.5 + 2.0 + 3 * 0.25)  # each collapsed dimension raised to 1/4 nat
    assert terms["kl_per_timestep"].item() == pytest.approx(2.0)  # the logged KL is the true one
    loss, _ = phase_losses.negative_elbo(rec_log_lik, kl, mask, kl_weight=0.5, free_bits=8.0)
    assert loss.item() == pytest.approx(1.5 + 0.5 * 4 * 2.0)  # every dimension floored at 2 nats


def test_the_vrnn_phase_trains_on_the_configured_free_bits(make_cfg):
    from avrnn.training.fit import build_module
    from avrnn.training.phases import PHASES

    module = build_module(make_cfg("model=vrnn", "critic=none", "model.free_bits=40"))
    assert module.phases == ["elbo"]
    x, mask = torch.randn(2, 3, module.hparams.model["input_size"]), torch.ones(2, 3)
    floored, terms = PHASES["elbo"].loss(module, *PHASES["elbo"].inputs(module, x, mask))  # as run_phase calls it
    # 40 nats over z_dim = 4 dimensions: every dimension of the tiny, untrained model is below 10 nats
    assert floored.item() == pytest.approx(terms["rec_per_timestep"].item() + 40.0, rel=1e-5)


# --- evaluation over more than one batch: the totals of the batches, not the last batch's ----------------
def test_scoring_two_batches_gives_the_pooled_totals_of_scoring_each(make_cfg):
    from avrnn.evaluation.scoring import score
    from avrnn.training.fit import build_module

    module = build_module(make_cfg()).eval()
    frame = module.hparams.model["input_size"]
    first = (torch.randn(2, 5, frame), torch.tensor([[1.0] * 5, [1.0] * 3 + [0.0] * 2]))
    second = (torch.randn(3, 4, frame), torch.ones(3, 4))
    streams = EstimateStreams(0)  # one set of streams: the second batch's draws come after the first's
    alone = [score(module, [batch], iwae_k=[2], fivo_k=[2], prefix="t", streams=streams) for batch in (first, second)]
    pooled = score(module, [first, second], iwae_k=[2], fivo_k=[2], prefix="t", streams=EstimateStreams(0))
    frames = [m["t/frames"] for m in alone]
    assert pooled["t/frames"] == sum(frames) == 8 + 12 and pooled["t/sequences"] == 5
    for name in ("rec", "kl", "elbo", "iwae_2", "fivo_2"):
        total = sum(m[f"t/{name}_per_timestep"] * n for m, n in zip(alone, frames))
        assert pooled[f"t/{name}_per_timestep"] == pytest.approx(total / sum(frames), rel=1e-5), name
        per_sequence = sum(m[f"t/{name}_per_sequence"] * m["t/sequences"] for m in alone) / 5
        assert pooled[f"t/{name}_per_sequence"] == pytest.approx(per_sequence, rel=1e-5), name
    # the critic's distance: a mean over sequences
    distance = sum(m["t/wasserstein"] * m["t/sequences"] for m in alone) / 5
    assert pooled["t/wasserstein"] == pytest.approx(distance, rel=1e-5)


def test_each_estimate_is_the_same_whichever_others_are_asked_for_and_whatever_was_drawn_before(make_cfg):
    """The field report: one checkpoint's ELBO was -95.123 with IWAE and FIVO beside it and -95.497
    without; each estimate now draws from its own stream, seeded by evaluate's seed and its name."""
    from avrnn.evaluation.scoring import score
    from avrnn.training.fit import build_module

    module = build_module(make_cfg()).eval()
    frame = module.hparams.model["input_size"]
    batches = [(torch.randn(2, 5, frame), torch.ones(2, 5)), (torch.randn(3, 4, frame), torch.ones(3, 4))]
    everything = score(module, batches, iwae_k=[2, 3], fivo_k=[2], prefix="t")
    torch.manual_seed(99)  # whatever the global stream holds
    elbo_only = score(module, batches, iwae_k=[], fivo_k=[], prefix="t")
    fivo_only = score(module, batches, iwae_k=[], fivo_k=[2], prefix="t")
    iwae_3 = score(module, batches, iwae_k=[3], fivo_k=[], prefix="t")
    for name in ("rec", "kl", "elbo", "wasserstein"):
        key = f"t/{name}_per_timestep" if name != "wasserstein" else "t/wasserstein"
        assert elbo_only[key] == everything[key], name
    assert fivo_only["t/fivo_2_per_timestep"] == everything["t/fivo_2_per_timestep"]
    assert iwae_3["t/iwae_3_per_timestep"] == everything["t/iwae_3_per_timestep"]
    other_seed = score(module, batches, iwae_k=[], fivo_k=[], prefix="t", streams=EstimateStreams(1))
    assert other_seed["t/elbo_per_timestep"] != everything["t/elbo_per_timestep"]  # the seed still matters


def test_a_stream_seeds_only_the_cpu_generator_and_a_model_elsewhere_is_refused(monkeypatch):
    """torch.manual_seed would re-seed every device's generator too, behind the caller's back."""
    from avrnn.evaluation.streams import require_cpu

    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    with EstimateStreams(0).drawing("elbo"):
        torch.randn(3)
    assert seeded == []
    model = torch.nn.Linear(2, 2)
    require_cpu(model)
    model.weight = torch.nn.Parameter(torch.empty(2, 2, device="meta"))
    with pytest.raises(ValueError, match=r"needs the model on the CPU; it is on cpu, meta: move it with \.cpu\(\) first"):
        require_cpu(model)


# --- which parameters each phase's gradient reaches, per ablation ------------------------------------------
def group_gradients(module, loss_of) -> dict[str, bool]:
    """Which parameter groups (theta, phi, omega = TR, tau = PS, encoders) get a non-zero gradient from
    `loss_of(module)`, computed on a fresh forward pass (the fused loop's backward runs once per pass)."""
    groups = module.vrnn.parameter_groups()
    torch.manual_seed(1)
    grads = torch.autograd.grad(loss_of(module), [p for name in groups for p in groups[name]], allow_unused=True)
    reached, at = {}, 0
    for name, parameters in groups.items():
        reached[name] = any(g is not None and bool(g.abs().sum() > 0) for g in grads[at:at + len(parameters)])
        at += len(parameters)
    return reached


@pytest.mark.parametrize("critic_input, prior_path", [("sequence", "shared"), ("conditional", "shared"),
                                                      ("conditional", "own")])
@pytest.mark.parametrize("ablation, trains_prior", [("none", True), ("posterior_only", False)])
def test_the_adversarial_gradient_reaches_tr_only_where_the_ablation_trains_it(make_cfg, critic_input, prior_path,
                                                                               ablation, trains_prior):
    """The prior's term moves TR (omega) where the adversarial step trains the prior; PS (tau) only through
    the shared path's states (h_{t-1} carries earlier posterior samples) and never under posterior_only,
    where PS is pulled towards a prior it cannot move, through no path."""
    from avrnn.training.fit import build_module
    from avrnn.training.phases import PHASES

    module = build_module(make_cfg(f"ablation={ablation}", f"critic.input={critic_input}",
                                   f"model.prior_path={prior_path}"))
    x, mask = torch.randn(3, 5, module.hparams.model["input_size"]), torch.ones(3, 5)
    score = phase_losses.sequence_score(module.critic, mask)

    def prior_term(m):
        z_post, z_prior, h, h_prior = m.vrnn.latents(x)
        return score(z_prior if trains_prior else z_prior.detach(), h_prior).mean()  # as adversarial_loss does

    def posterior_term(m):
        z_post, z_prior, h, h_prior = m.vrnn.latents(x)
        return score(z_post, h).mean()

    from_prior = group_gradients(module, prior_term)
    assert from_prior["omega"] is trains_prior
    assert from_prior["tau"] is (trains_prior and prior_path == "shared")
    assert group_gradients(module, posterior_term)["tau"] is True
    whole = group_gradients(module, lambda m: phase_losses.adversarial_loss(
        m.vrnn, m.critic, m.objective, x, mask, trains_prior)[0])
    assert whole["omega"] is trains_prior and whole["tau"] is True
    stepped = {id(p) for p in PHASES["adversarial"].parameters(module)}
    assert all((id(p) in stepped) is trains_prior for p in module.vrnn.parameter_groups()["omega"])
    assert all(id(p) in stepped for p in module.vrnn.parameter_groups()["tau"])


# --- FIVO's settings reach the particle filter ---------------------------------------------------------------
def test_vrnn_fivo_resamples_with_the_given_generator_and_threshold(make_cfg):
    from avrnn.models.bounds import vrnn_fivo
    from avrnn.training.fit import build_module

    module = build_module(make_cfg())
    vrnn = module.vrnn.eval()
    x, mask = torch.randn(2, 6, module.hparams.model["input_size"]), torch.ones(2, 6)

    def fivo(generator_seed: int, threshold: float) -> torch.Tensor:
        torch.manual_seed(0)  # the particles' draws
        with torch.no_grad():
            return vrnn_fivo(vrnn, x, mask, 4, resample_threshold=threshold,
                             generator=torch.Generator().manual_seed(generator_seed))
    # resampling at every step: the ancestors come from the generator given, so its seed matters
    torch.testing.assert_close(fivo(1, 1.0), fivo(1, 1.0))
    assert not torch.allclose(fivo(1, 1.0), fivo(2, 1.0))
    # never resampling: the generator is never drawn from
    torch.testing.assert_close(fivo(1, 0.0), fivo(2, 0.0))


# --- FIVO's resampling: when the effective sample size (sum w)^2 / sum w^2 falls below threshold x k ------
class RecordingStep:
    """A particle step whose log-weights are fixed per particle (`log_alpha`, (B * k,)) and whose state
    is each particle's id: which states reach each step shows whether and how the filter resampled."""

    def __init__(self, log_alpha: torch.Tensor, as_tuple: bool = False):
        self.log_alpha, self.as_tuple, self.seen = log_alpha, as_tuple, []

    def __call__(self, x_t, state):
        ids = state[0] if self.as_tuple else state
        self.seen.append(ids.clone())
        return self.log_alpha, state


def resampled(weights: list[float], threshold: float, mask=None, as_tuple=False) -> bool:
    """Whether the filter resampled after the first step, for one sequence of k = len(weights) particles."""
    from avrnn.models.bounds import fivo_bound

    k = len(weights)
    step = RecordingStep(torch.tensor(weights).log(), as_tuple)
    ids = torch.arange(k, dtype=torch.float32)
    state = (ids, ids * 10) if as_tuple else ids
    mask = torch.ones(1, 2) if mask is None else mask
    fivo_bound(step, state, torch.zeros(1, 2, 1), mask, k, resample_threshold=threshold,
               generator=torch.Generator().manual_seed(0))
    return not torch.equal(step.seen[1], ids)  # the second step's particles are not the first's


@pytest.mark.parametrize("weights, threshold, expected", [
    ([1.0, 3.0], 0.75, False),  # ESS = 16 / 10 = 1.6 >= 0.75 x 2
    ([1.0, 3.0], 0.85, True),  # 1.6 < 1.7
    ([1.0, 1.0], 1.0, False),  # ESS = k exactly: not below
    ([1.0, 1e-6, 1e-6, 1e-6], 0.3, True),  # ESS ~ 1 < 1.2: one particle carries the weight
])
def test_fivo_resamples_exactly_where_the_effective_sample_size_falls_below_the_threshold(weights, threshold,
                                                                                            expected):
    assert resampled(weights, threshold) is expected


def test_fivo_never_resamples_at_a_padded_step():
    assert resampled([1.0, 1e-6], 1.0) is True
    assert resampled([1.0, 1e-6], 1.0, mask=torch.tensor([[0.0, 0.0]])) is False


def test_fivo_resamples_every_part_of_a_tuple_state_and_halves_are_the_default_threshold():
    assert resampled([1.0, 1e-6], 1.0, as_tuple=True) is True  # the ids come from the tuple's first part
    from avrnn.models.bounds import fivo_bound

    assert inspect.signature(fivo_bound).parameters["resample_threshold"].default == 0.5  # Maddison et al.'s


def test_fivo_resampling_draws_each_sequences_ancestors_from_its_own_particles_with_replacement():
    """Two sequences of two particles, each with one particle carrying (almost) all the weight: every new
    particle descends from it, in its own sequence (rows b * k + j)."""
    from avrnn.models.bounds import fivo_bound

    step = RecordingStep(torch.tensor([1.0, 1e-9, 1e-9, 1.0]).log())
    fivo_bound(step, torch.arange(4, dtype=torch.float32), torch.zeros(2, 3, 1), torch.ones(2, 3), 2,
               resample_threshold=1.0, generator=torch.Generator().manual_seed(0))
    assert step.seen[1].tolist() == [0.0, 0.0, 3.0, 3.0]


# --- the critics' readouts: what each score is made of, computed by hand from the critic's own layers -----
def by_hand_per_step(critic, z: torch.Tensor) -> torch.Tensor:
    """score(fc(lstm state)) at every step, (B, T): the LSTM run step by step from a zero state."""
    state, scores = None, []
    for t in range(z.shape[1]):
        out, state = critic.lstm(z[:, t:t + 1], state)
        scores.append(critic.score(critic.fc(out[:, 0])).squeeze(-1))
    return torch.stack(scores, 1)


def test_the_sequence_critics_readouts_score_the_last_unmasked_step_or_the_mean_over_unmasked_steps():
    from avrnn.models.critic import SequenceCritic

    torch.manual_seed(0)
    z = torch.randn(3, 4, 2)
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])  # lengths 4, 2, 1
    last, mean = SequenceCritic(2, lstm_size=5, fc_size=6), SequenceCritic(2, lstm_size=5, fc_size=6, readout="mean")
    mean.load_state_dict(last.state_dict())
    with torch.no_grad():
        per_step = by_hand_per_step(last, z)
        torch.testing.assert_close(last(z, mask), per_step[torch.arange(3), torch.tensor([3, 1, 0])])
        torch.testing.assert_close(mean(z, mask), torch.stack([per_step[0].mean(), per_step[1, :2].mean(),
                                                               per_step[2, 0]]))
        assert last(z, mask).shape == mean(z, mask).shape == (3,)
        padded = z.clone()
        padded[1, 2:], padded[2, 1:] = 100.0, -100.0  # what lies in the padding changes nothing
        torch.testing.assert_close(last(padded, mask), last(z, mask))
        torch.testing.assert_close(mean(padded, mask), mean(z, mask))


def test_the_conditional_critic_averages_its_per_step_scores_over_unmasked_steps_and_never_dies():
    from avrnn.models.critic import ConditionalCritic

    torch.manual_seed(0)
    critic = ConditionalCritic(2, 3, fc_size=4)
    z, h = torch.randn(2, 3, 2), torch.randn(2, 3, 3)
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    with torch.no_grad():
        per_step = critic.score(critic.fc(torch.cat([z, h], -1))).squeeze(-1)
        torch.testing.assert_close(critic(z, mask, h), torch.stack([per_step[0].mean(), per_step[1, 0]]))
        for layer in (critic.fc.fc1, critic.fc.fc2):  # every unit's input negative (weights tiny, bias -1)
            layer.weight.fill_(1e-3)
            layer.bias.fill_(-1.0)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(z, mask, h).sum(), z)
    assert grad.abs().sum() > 0  # LeakyReLU: a critic whose units are all negative still has a gradient


# --- the objectives' other halves: weight clipping, the adversarial losses at known scores ----------------
def test_wgan_clips_every_critic_weight_to_the_clip_value_and_wgan_gp_clips_none():
    from avrnn.models.objectives import Wasserstein

    critic = torch.nn.Linear(3, 2)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.5, -0.05, -2.0], [0.1, 0.0, -0.1]]))
        critic.bias.copy_(torch.tensor([0.07, -0.3]))
    untouched = {name: p.clone() for name, p in critic.named_parameters()}
    WassersteinGradientPenalty(gp_weight=10.0).after_critic_step(critic)
    assert all(torch.equal(p, untouched[name]) for name, p in critic.named_parameters())
    Wasserstein(clip_value=0.1).after_critic_step(critic)
    torch.testing.assert_close(critic.weight, torch.tensor([[0.1, -0.05, -0.1], [0.1, 0.0, -0.1]]))
    torch.testing.assert_close(critic.bias, torch.tensor([0.07, -0.1]))
    Wasserstein(clip_value=None).after_critic_step(critic)  # no clipping asked: nothing moves
    torch.testing.assert_close(critic.bias, torch.tensor([0.07, -0.1]))


def test_the_adversarial_losses_at_known_scores():
    from avrnn.models.objectives import Wasserstein

    d_prior, d_post = torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5])
    # WGAN: TR and PS minimise -L_dis = mean D(post) - mean D(prior) = 0.5 - 2
    assert Wasserstein().adversarial_loss(d_prior, d_post).item() == pytest.approx(-1.5)
    assert Wasserstein().distance(d_prior, d_post).item() == pytest.approx(-1.5)
    # GAN, non-saturating with flipped labels: -log sigmoid(d_post) - log(1 - sigmoid(d_prior)), batch means
    expected = (-torch.nn.functional.logsigmoid(d_post).mean() - torch.nn.functional.logsigmoid(-d_prior).mean())
    assert JensenShannon().adversarial_loss(d_prior, d_post).item() == pytest.approx(expected.item())
    assert JensenShannon().adversarial_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(2 * math.log(2))


def test_the_critics_default_sizes_are_the_papers():
    """Section VI: an LSTM of 128 units and two fully connected layers of 100 units (the config's defaults too)."""
    from avrnn.config import CriticConfig
    from avrnn.models.critic import ConditionalCritic, SequenceCritic

    sequence, conditional = SequenceCritic(4), ConditionalCritic(4, 8)
    assert (sequence.lstm.hidden_size, sequence.fc.fc1.out_features, sequence.fc.fc2.out_features) == (128, 100, 100)
    assert (conditional.fc.fc1.out_features, conditional.fc.fc2.out_features) == (100, 100)
    assert (CriticConfig.lstm_size, CriticConfig.fc_size, CriticConfig.readout) == (128, 100, "last")


def test_the_objectives_defaults_are_the_published_and_configured_ones():
    """WGAN-GP's penalty weight 10 (Gulrajani et al. 2017); WGAN's clip the config's default (CriticConfig)."""
    from avrnn.config import CriticConfig
    from avrnn.models.objectives import Wasserstein

    assert WassersteinGradientPenalty().gp_weight == 10.0 and WassersteinGradientPenalty().clip_value is None
    assert Wasserstein().clip_value == CriticConfig.clip_value == 0.1


def test_the_phase_losses_defaults_are_the_plain_elbo_and_a_trained_prior(make_cfg):
    """Without kl_weight and free_bits: -ELBO = rec + KL exactly (no floor); without trains_prior the adversarial
    gradient reaches TR (the full A-VRNN)."""
    from avrnn.training.fit import build_module

    rec_log_lik, kl, mask = torch.full((1, 2), -1.0), torch.full((1, 2, 4), 0.01), torch.ones(1, 2)
    loss, terms = phase_losses.negative_elbo(rec_log_lik, kl, mask)
    assert loss.item() == pytest.approx(1.0 + 0.04)  # a floor of even 1 nat would give 1 + 1
    module = build_module(make_cfg())
    x, mask = torch.randn(2, 3, module.hparams.model["input_size"]), torch.ones(2, 3)
    loss, terms = phase_losses.elbo_loss(module.vrnn, x, mask)
    assert loss.item() == pytest.approx((terms["rec_per_timestep"] + terms["kl_per_timestep"]).item(), rel=1e-6)
    reached = group_gradients(module, lambda m: phase_losses.adversarial_loss(m.vrnn, m.critic, m.objective, x,
                                                                               mask)[0])
    assert reached["omega"] is True


# --- evaluation: another corpus than the checkpoint's, and the printed quality lines ---------------------
def test_evaluation_reads_the_corpus_given_at_evaluation_not_the_checkpoints(make_cfg, tmp_path):
    from omegaconf import OmegaConf

    from avrnn.config import ConfigError
    from avrnn.evaluation.scoring import build_eval_data
    from avrnn.training.fit import build_datamodule, build_module, data_options

    cfg = make_cfg()
    trained = build_datamodule(cfg)
    trained.prepare_data()
    trained.setup("fit")
    module = build_module(cfg, normalization=trained.statistics, data=data_options(cfg))
    other = dict(data_options(cfg), root=str(tmp_path / "another_corpus"), cache_dir=None)
    datamodule = build_eval_data(module, OmegaConf.create(other), "test", batch_size=3)
    assert datamodule.root == tmp_path / "another_corpus" and datamodule.options.eval_batch_size == 3
    assert datamodule.statistics == trained.statistics  # re-expressed in the checkpoint's statistics
    module.hparams.data = None
    with pytest.raises(ConfigError, match=r"^this checkpoint stores no data config; add data=<config> data.root="):
        build_eval_data(module, None, "test", batch_size=3)


def quality_metrics(scored: dict[str, int], left_out: dict[str, int], own: dict[str, dict[str, int]]) -> dict:
    """evaluate's speech-quality keys of the test split: `scored` utterances per measure, `left_out` of
    every measure (reason -> count), a measure's `own` gaps."""
    metrics = {"test/speech_quality_seconds": 2.04,
               "test/reconstructions_rebuilt_from": "the predicted power with the original's phase"}
    for key, mean, unit in (("si_sdr", -2.5, "dB"), ("pesq", 1.25, "MOS-LQO (1 to 4.5)"),
                             ("estoi", 0.5, "score (-1 to 1; 1: fully intelligible)")):
        because = {**left_out, **own.get(key, {})}
        metrics.update({f"test/{key}_mean": mean if scored[key] else None, f"test/{key}_std": 0.5,
                        f"test/{key}_unit": unit, f"test/{key}_utterances": scored[key],
                        f"test/{key}_skipped": sum(because.values()), f"test/{key}_skipped_because": because})
    return metrics


def test_the_speech_quality_lines_give_each_measure_with_its_unit_and_why_some_were_not_scored(capsys):
    from avrnn.evaluation.scoring import print_speech_quality

    left_out = {"shorter than 0.25 s": 1, "digitally silent": 1}
    no_pesq = {"pesq": {"PESQ needs 8 or 16 kHz audio, this corpus is at 44100 Hz": 4}}
    print_speech_quality(quality_metrics({"si_sdr": 4, "pesq": 0, "estoi": 4}, left_out, no_pesq), "test", 44100)
    assert capsys.readouterr().out.splitlines() == [
        "reconstruction quality (teacher-forced, 44100 Hz; reconstructions, not prior samples):",
        "  audio rebuilt from the predicted power with the original's phase, scored against the original",
        "  scored on 4 of 6 utterances; 2 left out of every measure: 1 shorter than 0.25 s, 1 digitally silent",
        "  SI-SDR      -2.500 +/- 0.500 dB",
        "  PESQ (-)    not computed; 4 not scored: PESQ needs 8 or 16 kHz audio, this corpus is at 44100 Hz (4)",
        "  ESTOI       0.500 +/- 0.500 score (-1 to 1; 1: fully intelligible)",
        "  scored in 2.0 s",
    ]
    print_speech_quality(quality_metrics({"si_sdr": 1, "pesq": 1, "estoi": 1}, {}, {}), "test", 8000)
    assert capsys.readouterr().out.splitlines()[2:4] == ["  scored on 1 utterance",
                                                         "  SI-SDR      -2.500 +/- 0.500 dB"]
    print_speech_quality(quality_metrics({"si_sdr": 0, "pesq": 0, "estoi": 0}, left_out, {}), "test", 8000)
    assert capsys.readouterr().out.splitlines()[2:4] == [
        "  scored on 0 of 2 utterances; 2 left out of every measure: 1 shorter than 0.25 s, 1 digitally silent",
        "  SI-SDR      not computed"]
    print_speech_quality(quality_metrics({"si_sdr": 0, "pesq": 0, "estoi": 0}, left_out, {}), "test", 44100)
    assert "  PESQ (-)    not computed at 44100 Hz (PESQ needs 8 or 16 kHz audio)" in capsys.readouterr().out
    print_speech_quality(quality_metrics({"si_sdr": 0, "pesq": 0, "estoi": 0}, {}, {}), "test", 8000)  # an empty split
    assert "  ESTOI       not computed (no utterances to score)" in capsys.readouterr().out.splitlines()


def test_evaluation_resolves_the_given_corpus_config_and_names_a_split_it_lacks(make_cfg, tmp_path):
    from omegaconf import OmegaConf

    from avrnn.config import ConfigError
    from avrnn.evaluation.scoring import build_eval_data
    from avrnn.training.fit import build_module, data_options

    cfg = make_cfg()
    module = build_module(cfg, normalization={"mean": 0.0, "std": 0.1}, data=data_options(cfg))
    given = OmegaConf.create({"paths": {"data_dir": str(tmp_path)},
                              "data": dict(data_options(cfg), root="${paths.data_dir}/corpus", cache_dir=None)})
    datamodule = build_eval_data(module, given.data, "test", batch_size=2)
    assert datamodule.root == tmp_path / "corpus"  # the interpolation resolved, not a folder named ${...}
    with pytest.raises(ConfigError, match=r"^split='dev' is not allowed; choose train, val or test$"):
        build_eval_data(module, given.data, "dev", batch_size=2)


def test_the_evaluation_report_prints_every_bound_in_both_units_and_what_it_scored(capsys, tmp_path):
    from avrnn.evaluation.scoring import print_report

    metrics = {"test/frames": 400, "test/sequences": 4,
               "test/elbo_per_timestep": -1.25, "test/elbo_per_sequence": -125.0, "test/elbo_bits_per_sample": 0.1,
               "test/iwae_16_per_timestep": -1.0, "test/iwae_16_per_sequence": -100.0,
               "val/elbo_per_timestep": 9.0, "val/elbo_per_sequence": 9.0,  # another split: not this table's
               "test/kl_by_dimension": [0.5, 0.0, 0.25], "test/active_units": 2, "frames_scored": "every frame",
               "checkpoint": "run/last.ckpt", "checkpoint_iteration": 40}
    print_report(metrics, "test", None, tmp_path / "metrics.json")  # None: the quality was not scored
    assert capsys.readouterr().out.splitlines() == [
        "bound             nats/timestep  nats/sequence",
        "elbo                     -1.250        -125.00",  # name in 16 columns, then 15 and 15
        "iwae_16                  -1.000        -100.00",
        "latent use: 2 of 3 dimensions active; KL per dimension 0.000 to 0.500 nats/timestep",
        f"4 utterances, 400 frames (every frame) scored with run/last.ckpt (iteration 40); wrote {tmp_path / 'metrics.json'}",
    ]
    for key in ("si_sdr", "pesq", "estoi"):
        metrics.update({f"test/{key}_mean": 1.0, f"test/{key}_std": 0.0, f"test/{key}_unit": "u",
                        f"test/{key}_utterances": 4, f"test/{key}_skipped": 0})
    distance = {"name": "wasserstein", "unit": "in the critic's own scale: compare runs of one critic setting only"}
    print_report({**metrics, "test/speech_quality_seconds": 1.0, "test/wasserstein": 0.01234,
                  "test/critic_distance": distance}, "test", 16000, tmp_path / "metrics.json")
    out = capsys.readouterr().out.splitlines()
    assert "  scored on 4 utterances" in out and "  PESQ (wb)   1.000 +/- 0.000 u" in out
    assert ("critic's wasserstein estimate, prior against posterior latent sequences: 0.01234 (in the critic's own "
            "scale: compare runs of one critic setting only)") in out


def test_every_critic_objective_says_the_unit_of_its_distance():
    from avrnn.models import objectives

    units = {cls.distance_name: cls.distance_unit for cls in vars(objectives).values()
             if isinstance(cls, type) and issubclass(cls, objectives.CriticObjective)}
    assert units == {"wasserstein": "in the critic's own scale: compare runs of one critic setting only",
                     "js_divergence": "nats"}


def test_latent_use_sums_over_batches_and_counts_dimensions_above_the_threshold(monkeypatch):
    """Two batches (masked steps left out): KL per dimension = its sum / frames; the posterior mean's
    variance over all frames; active = variance strictly above ACTIVE_VARIANCE."""
    from types import SimpleNamespace

    import torch

    from avrnn.evaluation.scoring import LatentUse

    monkeypatch.setattr(LatentUse, "ACTIVE_VARIANCE", 0.015625)  # 1/64: exact in binary
    use = LatentUse()
    for locs, mask in (([[0.125, 1.0, 0.0], [-0.125, 3.0, 0.0]], [1.0, 1.0]),
                       ([[0.125, 1.0, 0.5], [-0.125, 3.0, 0.0], [7.0, 7.0, 7.0]], [1.0, 1.0, 0.0])):
        loc = torch.tensor([locs])  # (batch 1, steps, dims)
        step_mask = torch.tensor([mask])
        kl = torch.tensor([[[1.0, 2.0, 4.0]] * len(mask)]) * step_mask.unsqueeze(-1)
        use.add(SimpleNamespace(mask=step_mask, kl=kl, posterior=SimpleNamespace(loc=loc)))
    metrics = use.metrics("test")
    assert metrics["test/kl_by_dimension"] == pytest.approx([1.0, 2.0, 4.0])  # 4 frames, 4 x each
    # dim 0: +-0.125 -> variance 1/64, exactly the threshold (not above); dim 1: 1, 3, 1, 3 -> 1; dim 2: 0.5 once
    assert metrics["test/posterior_mean_variance_by_dimension"] == pytest.approx([0.015625, 1.0, 0.046875])
    assert metrics["test/active_units"] == 2


def test_a_checkpoint_whose_stored_statistics_cannot_be_used_is_refused_by_name(make_cfg, tmp_path):
    import torch

    from avrnn.evaluation.scoring import load_module
    from avrnn.training.checkpoints import CheckpointError
    from avrnn.training.fit import build_module, data_options

    cfg = make_cfg()
    module = build_module(cfg, normalization={"mean": 0.0, "std": 0.0}, data=data_options(cfg))
    path = tmp_path / "zero_std.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    with pytest.raises(CheckpointError, match=rf"stored in the checkpoint {path}"):
        load_module(path)
    torch.save({"state_dict": {}, "hyper_parameters": {"model": {}}}, path)
    with pytest.raises(CheckpointError, match=rf"^{path} holds no model and critic hyper-parameters of this project "
                                              r"\(KeyError\('critic'\)\); use a checkpoint written by src/train.py$"):
        load_module(path)
