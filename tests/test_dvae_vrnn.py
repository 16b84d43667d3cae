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
