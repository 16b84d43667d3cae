"""The emissions EM_phi: the Itakura-Saito density held to closed forms and independent densities (each
kind through the VRNN's fused pass against the per-step reference: tests/test_reference.py)."""

import math
import re

import pytest
import torch
from torch.distributions import Exponential, Normal

from avrnn.models.emissions import ItakuraSaito, ItakuraSaitoMLP, itakura_saito_floor


@pytest.mark.parametrize("variance", [1e-4, 0.3, 7.0, 2e3])
def test_the_itakura_saito_density_integrates_to_one(variance):
    """Trapezoid rule over P from 0 to 60 v (the tail beyond holds e^-60), on a grid fine near 0."""
    power = torch.cat([torch.zeros(1), torch.logspace(-12, math.log10(60.0), 200_001)]).double() * variance
    density = ItakuraSaito(torch.tensor(variance, dtype=torch.double)).log_prob(power).exp()
    assert torch.trapezoid(density, power).item() == pytest.approx(1.0, abs=1e-6)


def test_the_itakura_saito_density_is_the_exponential_of_mean_v_and_the_complex_gaussians_power():
    """-log p(P) = log v + P / v: torch's Exponential(rate 1/v); and, for X = a + ib with a, b ~ N(0, v/2)
    (a circular complex Gaussian of variance v) and P = |X|^2, p(P) = pi p(a, b) (polar coordinates: the
    phase is uniform, dA = dP dtheta / 2)."""
    torch.manual_seed(0)
    variance = torch.rand(4, 5, dtype=torch.double) * 10 + 1e-3
    real, imaginary = torch.randn(2, 4, 5, dtype=torch.double) * (variance / 2).sqrt()
    power = real ** 2 + imaginary ** 2
    ours = ItakuraSaito(variance).log_prob(power)
    torch.testing.assert_close(ours, Exponential(1 / variance).log_prob(power))
    complex_gaussian = Normal(0, (variance / 2).sqrt()).log_prob(real) + Normal(0, (variance / 2).sqrt()).log_prob(imaginary)
    torch.testing.assert_close(ours, complex_gaussian + math.log(math.pi))
    torch.testing.assert_close(-ours, ItakuraSaito(variance).divergence(power) + power.log() + 1)  # d_IS + log P + 1


def test_the_divergence_is_zero_at_the_data_and_positive_elsewhere():
    power = torch.tensor([0.5, 2.0, 30.0], dtype=torch.double)
    assert torch.allclose(ItakuraSaito(power).divergence(power), torch.zeros(3, dtype=torch.double))
    assert (ItakuraSaito(power * 1.5).divergence(power) > 0).all() and (ItakuraSaito(power / 3).divergence(power) > 0).all()
    # d_IS(P | v) = P/v - log(P/v) - 1 at P/v = 2: 1 - log 2
    assert ItakuraSaito(torch.tensor([1.0])).divergence(torch.tensor([2.0])).item() == pytest.approx(1 - math.log(2))


def test_each_bins_loss_is_never_below_what_the_variance_floor_allows():
    torch.manual_seed(0)
    floor = 1e-3
    head = ItakuraSaitoMLP(4, [8, 8], 6, variance_floor=floor)
    with torch.no_grad():
        head.raw_variance.bias.fill_(-50.0)  # every predicted variance pressed to the floor
    power = torch.cat([torch.zeros(1, 6), torch.rand(99, 6) ** 4 * 0.01], 0)  # zeros and powers around the floor
    emission = head(torch.randn(100, 4))
    assert (emission.mean >= floor).all()
    assert (-emission.log_prob(power) >= itakura_saito_floor(power, floor) - 1e-6).all()
    best = itakura_saito_floor(torch.tensor([0.0, floor / 2, 2.0]), floor)  # at v = floor, floor, P
    torch.testing.assert_close(best, torch.tensor([math.log(floor), math.log(floor) + 0.5, math.log(2.0) + 1]))


def test_samples_have_the_predicted_mean():
    torch.manual_seed(0)
    variance = torch.tensor([0.1, 4.0])
    samples = ItakuraSaito(variance).sample((200_000,))
    assert (samples >= 0).all()
    torch.testing.assert_close(samples.mean(0), variance, rtol=0.02, atol=0)


def test_an_enormous_raw_variance_stays_finite_and_can_come_back():
    head = ItakuraSaitoMLP(2, [4, 4], 3, variance_floor=1e-6)
    with torch.no_grad():
        head.raw_variance.bias.fill_(100.0)  # beyond the cap of 80
    emission = head(torch.zeros(1, 2))
    loss = -emission.log_prob(torch.ones(1, 3)).sum()
    assert torch.isfinite(emission.mean).all() and torch.isfinite(loss)
    loss.backward()
    assert (head.raw_variance.bias.grad > 0).all()  # descending lowers the variance towards the data


def test_validation_refuses_a_negative_variance_and_power():
    with pytest.raises(ValueError):
        ItakuraSaito(torch.tensor([-1.0]), validate_args=True)
    with pytest.raises(ValueError):
        ItakuraSaito(torch.tensor([1.0]), validate_args=True).log_prob(torch.tensor([-5.0]))


@pytest.mark.parametrize("representation,emission,takes", [
    # negative features under the IS density: -log p(-1 | v=1e-6) is about -1e6, a bound without meaning
    ("waveform", "itakura_saito", "gaussian"),
    # z-scored samples are no probabilities: Bernoulli's "log p" of x = -1.3 has no normaliser that makes it one
    ("waveform", "bernoulli", "gaussian"),
    ("stft", "bernoulli", "gaussian or itakura_saito"),  # normalised powers exceed 1
])
def test_an_emission_whose_density_does_not_cover_the_features_is_refused(make_cfg, representation, emission, takes):
    from avrnn.config import ConfigError, validate
    from avrnn.models.emissions import EMISSIONS

    low = {"waveform": "-inf", "stft": "0"}[representation]
    with pytest.raises(ConfigError, match=rf"^model.emission={emission} is a density of "
                                          rf"{re.escape(EMISSIONS[emission][1].words)}, and the {representation} "
                                          rf"representation's features take values in \[{low}, inf\]; use "
                                          rf"model.emission={takes}$"):
        validate(make_cfg(f"data/representation={representation}", f"model.emission={emission}"))
    for fits in takes.split(" or "):
        validate(make_cfg(f"data/representation={representation}", f"model.emission={fits}"))


@pytest.mark.parametrize("emission", ["gaussian", "bernoulli", "itakura_saito"])
def test_each_read_out_draws_its_initial_weights_before_the_mlps(emission):
    """The order of earlier versions (a seed keeps its model): the read-out's first weight matrix is the first
    draw after seeding."""
    from avrnn.models.emissions import EMISSIONS
    from avrnn.models.vrnn import VRNNConfig

    build, _ = EMISSIONS[emission]
    torch.manual_seed(0)
    head = build(5, [8, 8], 6, VRNNConfig(input_size=6, emission=emission))
    torch.manual_seed(0)
    first = torch.nn.Linear(8, 6)
    read_out = {"gaussian": "mean", "bernoulli": "logits", "itakura_saito": "raw_variance"}[emission]
    assert torch.equal(getattr(head, read_out).weight, first.weight)


def test_by_default_nothing_is_validated_so_a_nan_reaches_the_loss():
    emission = ItakuraSaito(torch.tensor([float("nan"), -1.0]))
    assert torch.isnan(emission.log_prob(torch.tensor([1.0, -5.0]))).any()
    with pytest.raises(ValueError, match="support"):
        ItakuraSaito(torch.tensor([1.0]), validate_args=True).log_prob(torch.tensor([-5.0]))


def test_samples_take_the_variances_dtype():
    assert ItakuraSaito(torch.ones(3, dtype=torch.double)).sample((2,)).dtype == torch.double


def test_iwae_k_of_a_spectrogram_model_rises_with_k_on_average_over_independent_draws():
    """The bounds on the Itakura-Saito path: E[IWAE-k] rises with k (Burda et al. 2016, Theorem 1), on a small
    untrained VRNN, each k's mean over independent draws (6,400 weights each), within 4 standard errors; the gap
    from k = 1 (the ELBO) to 64 is visible."""
    import math

    from avrnn.models import VRNN
    from avrnn.models.bounds import iwae_bound, sequence_log_weights

    torch.manual_seed(0)
    model = VRNN(input_size=5, z_dim=2, hidden_size=6, x_features=4, z_features=4, mlp_hidden=6,
                 emission="itakura_saito").double()
    x = torch.rand(2, 4, 5, dtype=torch.double).pow(2) + 0.01  # powers
    samples = 6400
    with torch.no_grad():
        weights = sequence_log_weights(model, x, torch.ones(2, 4, dtype=torch.double), samples)  # (samples, B)
    means = []
    for k in (1, 4, 16, 64):
        per_draw = iwae_bound(weights.view(k, samples // k, 2))  # (draws, B), independent draws
        mean, se = per_draw.mean(0), per_draw.std(0) / math.sqrt(per_draw.shape[0])
        if means:
            assert (mean > means[-1][0] - 4 * torch.sqrt(se**2 + means[-1][1] ** 2)).all(), k
        means.append((mean, se))
    assert (means[-1][0] - means[0][0] > 4 * torch.sqrt(means[-1][1] ** 2 + means[0][1] ** 2)).all()
