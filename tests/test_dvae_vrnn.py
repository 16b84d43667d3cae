"""experiment=dvae_vrnn: the DVAE benchmark's VRNN (Girin, Bie et al. 2021; XiaoyuBIE1994/DVAE d94d213,
config/speech/cfg_vrnn.ini), expressed with this project's model.*_widths and model.activation."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from avrnn.models import VRNN
from avrnn.models.vrnn import VRNNConfig

# The benchmark's VRNN at that config, parameter by parameter (printed from its own code, d94d213: 480,097 in all),
# beside the name each has here: dense_x 256, dense_z 32,64, empty dense_hx_z / dense_h_z / dense_hz_x, LSTM 128.
BENCHMARK_SHAPES = {
    "phi_x.fc1.weight": (256, 513), "phi_x.fc1.bias": (256,),  # feature_extractor_x.linear0
    "phi_z.fc1.weight": (32, 16), "phi_z.fc1.bias": (32,),  # feature_extractor_z.linear0
    "phi_z.fc2.weight": (64, 32), "phi_z.fc2.bias": (64,),  # feature_extractor_z.linear1
    "f_theta.weight_ih": (512, 320), "f_theta.weight_hh": (512, 128),  # rnn.*_l0
    "f_theta.bias_ih": (512,), "f_theta.bias_hh": (512,),
    "transition.mean.weight": (16, 128), "transition.mean.bias": (16,),  # prior_mean
    "transition.raw_std.weight": (16, 128), "transition.raw_std.bias": (16,),  # prior_logvar
    "proposal.mean.weight": (16, 384), "proposal.mean.bias": (16,),  # inf_mean
    "proposal.raw_std.weight": (16, 384), "proposal.raw_std.bias": (16,),  # inf_logvar
    "emission.raw_variance.weight": (513, 192), "emission.raw_variance.bias": (513,),  # gen_out
}


def test_the_experiment_builds_the_benchmarks_vrnn_parameter_for_parameter(make_cfg):
    cfg = make_cfg("experiment=dvae_vrnn", tiny=False)
    model = VRNN(VRNNConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True)))
    assert {name: tuple(p.shape) for name, p in model.named_parameters()} == BENCHMARK_SHAPES
    assert sum(p.numel() for p in model.parameters()) == 480_097
    assert isinstance(model.phi_x.activation, torch.nn.Tanh) and isinstance(model.f_theta, torch.nn.LSTMCell)
    assert (cfg.model.name, cfg.critic.name, cfg.model.emission) == ("vrnn", "none", "itakura_saito")
    assert cfg.model.optimizer.lr == 0.002 and cfg.data.batch_size == 128 and cfg.data.crop_frames == 50
    assert cfg.training.grad_clip_norm is None
    assert (cfg.data.representation.name, cfg.data.frame_size, cfg.data.hop, cfg.data.sample_rate) == \
        ("stft", 1024, 256, 16000)
    assert cfg.data.representation.window == "sine" and cfg.data.representation.trim_top_db == 30


def test_the_experiment_trains_and_tests_on_a_small_corpus(make_cfg, tmp_path):
    from avrnn.training.fit import train

    metrics = train(make_cfg("experiment=dvae_vrnn", "data.frame_size=256", "data.hop=64", "data.batch_size=4",
                             "data.crop_frames=8", "data.representation.trim_top_db=null",
                             "model.phi_x_widths=[16]", "model.phi_z_widths=[4,8]", "model.hidden_size=8",
                             "training.max_iterations=3"))
    assert math.isfinite(metrics["test/elbo_per_timestep"])
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_a_size_the_widths_replace_is_named_as_having_no_effect(make_cfg, tmp_path, caplog):
    import logging

    from avrnn.models.vrnn import VRNNConfig
    from avrnn.training.fit import train

    # the experiment's x_features (256) is phi_x_widths' last; narrowing phi_x leaves x_features without effect
    assert VRNNConfig(input_size=257, phi_x_widths=[256], x_features=256).sizes_without_effect() == []
    assert VRNNConfig(input_size=257, phi_x_widths=[64]).sizes_without_effect() == []  # x_features at its default
    assert VRNNConfig(input_size=257, phi_x_widths=[], x_features=257).sizes_without_effect() == []  # identity
    assert VRNNConfig(input_size=257, phi_x_widths=[], x_features=64).sizes_without_effect() == [
        "model.x_features=64 has no effect: model.phi_x_widths=[] makes phi_x the identity: the model reads x_t itself "
        "(257 features), or set model.phi_x_widths=null to use model.x_features"]
    assert VRNNConfig(input_size=257, phi_z_widths=[], z_dim=16, z_features=16).sizes_without_effect() == []
    assert VRNNConfig(input_size=257, x_features=64, z_features=8, mlp_hidden=32).sizes_without_effect() == []
    idle = VRNNConfig(input_size=257, phi_z_widths=[4, 8], z_features=64, mlp_hidden=32,
                      **{f"{b}_widths": [] for b in ("phi_x", "tr", "ps", "em")}).sizes_without_effect()
    assert idle == ["model.z_features=64 has no effect: model.phi_z_widths=[4, 8] sets phi_z's layers, whose output "
                    "(8) is what the model reads; change the last of model.phi_z_widths, or set model.phi_z_widths=null "
                    "to use model.z_features",
                    "model.mlp_hidden=32 has no effect: every model.<block>_widths is set; change the widths, or set "
                    "one of them to null to use model.mlp_hidden"]
    with caplog.at_level(logging.WARNING, logger="avrnn.training"):
        train(make_cfg("experiment=dvae_vrnn", "data.frame_size=256", "data.hop=64", "data.batch_size=4",
                       "data.crop_frames=8", "data.representation.trim_top_db=null", "model.phi_x_widths=[16]",
                       "model.phi_z_widths=[4,8]", "model.z_features=8", "model.x_features=32",
                       "model.mlp_hidden=256", "model.hidden_size=8", "training.max_iterations=1"))
    warned = [r.getMessage() for r in caplog.records if r.name == "avrnn.training" and r.levelno == logging.WARNING]
    assert [line for line in warned if "no effect" in line] == [
        "model.x_features=32 has no effect: model.phi_x_widths=[16] sets phi_x's layers, whose output (16) is what the "
        "model reads; change the last of model.phi_x_widths, or set model.phi_x_widths=null to use model.x_features"]
