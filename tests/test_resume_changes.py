"""Resuming with a changed setting: applied mid-run (learning rates, max_iterations, ...) or refused
in one line (architecture, critic, ablation, corpus content, seed), nothing saved lost."""

import logging
import shutil
from pathlib import Path

import pytest
import torch

from avrnn.analysis.figures import read_scalars
from avrnn.config import ConfigError
from avrnn.training.resume import APPLIED_WITHIN, APPLY, REFUSE, RESUME_RULES, RULES, rule, schema_leaves
from avrnn.training.fit import train


def test_every_leaf_of_the_schema_is_classified_exactly_once():
    leaves = schema_leaves()
    assert len(leaves) == len(set(leaves)) and len(RULES) == len(RESUME_RULES)  # no leaf listed twice
    assert set(RESUME_RULES) == set(leaves) | set(APPLIED_WITHIN)
    for key in APPLIED_WITHIN:  # a key inside a leaf compared whole (which would otherwise refuse its change)
        assert key not in leaves and RESUME_RULES[key.rsplit(".", 1)[0]] == REFUSE and RESUME_RULES[key] == APPLY
    assert set(RESUME_RULES.values()) == {APPLY, REFUSE}
    assert rule("trainer.max_epochs") == APPLY and rule("critic.objective._target_") == REFUSE
    assert rule("model.optimizer.lr") == APPLY and rule("model.optimizer.name") == REFUSE


def test_the_prior_samples_griffin_lim_iterations_may_change_on_resume_the_rest_of_the_representation_not(caplog):
    from avrnn.config import ConfigError
    from avrnn.training.resume import changed_leaves, check_resume

    def config(**representation):
        return {"seed": 1, "data": {"representation": {"name": "stft", "window": "hann", "griffin_lim_iterations": 32,
                                                       **representation}}}

    with caplog.at_level("INFO", logger="avrnn.resume"):
        applied = check_resume(config(), config(griffin_lim_iterations=64), Path("last.ckpt"), 10)
    assert applied == {"data.representation.griffin_lim_iterations": (32, 64)}
    assert "resume: data.representation.griffin_lim_iterations changed from 32 to 64 (applied from now on)" in \
        caplog.messages
    with pytest.raises(ConfigError, match=r"^cannot resume last.ckpt with data.representation.trim_top_db=20, "
                                          r"data.representation.window=hamming: it trained with "
                                          r"data.representation.trim_top_db=null, data.representation.window=hann"):
        check_resume(config(), config(window="hamming", trim_top_db=20, griffin_lim_iterations=64), Path("last.ckpt"),
                     10)  # each refused key by name (a whole dict is no fix a user can type); a key one side lacks: null
    assert check_resume(config(), config(), Path("last.ckpt"), 10) == {}
    nested = {"seed": 1, "critic": {"name": "wgan", "networks": {"sequence": {"_target_": "a.B", "size": 8}}}}
    added = {"seed": 1, "critic": {"name": "wgan", "networks": {"sequence": {"_target_": "a.B", "size": 8, "depth": 2}}}}
    # a key added inside a dict compared whole, nested: a change, by name (null where it was absent)
    assert changed_leaves(nested, added) == {"critic.networks.sequence.depth": (None, 2)}
    assert rule("critic.networks.sequence.depth") == REFUSE
    other = {"seed": 1, "critic": {"name": "wgan", "networks": {"sequence": {"_target_": "c.D", "width": 3}}}}
    assert changed_leaves(nested, other) == {"critic.networks.sequence._target_": ("a.B", "c.D")}  # another class


def test_a_spectrogram_run_resumes_with_more_griffin_lim_iterations_for_its_samples(make_cfg, tmp_path):
    from avrnn.evaluation.scoring import load_module

    run = tmp_path / "run"
    stft = ["data/representation=stft", "data.frame_size=256", "data.hop=64", "data.representation.trim_top_db=null",
            "model.emission=itakura_saito", "training.iterations_per_epoch=2", f"paths.output_dir={run}"]
    train(make_cfg(*stft, "training.max_iterations=2"))
    train(make_cfg(*stft, "training.max_iterations=4", "data.representation.griffin_lim_iterations=5", "ckpt_path=last"))
    module = load_module(run / "checkpoints" / "last.ckpt")
    assert module.iteration == 4 and module.representation.settings.griffin_lim_iterations == 5


def lr_logged(run, phase="reconstruction"):
    steps, values = read_scalars(run)[f"lr/{phase}"]
    return dict(zip(steps.tolist(), values.tolist()))


def test_a_changed_learning_rate_is_applied_on_resume_and_logged(make_cfg, tmp_path, caplog):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", "training.iterations_per_epoch=2"))
    with caplog.at_level(logging.INFO, logger="avrnn.resume"):
        train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=4", "training.iterations_per_epoch=2",
                       "ckpt_path=last", "model.optimizer.lr=1e-5", "critic.optimizer.lr=2e-5"))
    lrs = lr_logged(run)
    steps = sorted(lrs)
    assert [lrs[s] for s in steps[:2]] == pytest.approx([3e-4, 3e-4]) and lrs[steps[-1]] == pytest.approx(1e-5)
    critic_lrs = lr_logged(run, "critic")
    assert critic_lrs[max(critic_lrs)] == pytest.approx(2e-5)
    lines = [r.getMessage() for r in caplog.records if r.name == "avrnn.resume"]
    assert "resume: model.optimizer.lr changed from 0.0003 to 1e-05 (applied from now on)" in lines
    assert "resume: training.max_iterations changed from 2 to 4 (applied from now on)" in lines
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-5)
    assert state["avrnn_config"]["model"]["optimizer"]["lr"] == pytest.approx(1e-5)


@pytest.mark.parametrize("override,key,old", [("model.z_dim=8", "model.z_dim", "4"), ("seed=7", "seed", "1234"),
                                              ("critic.n_critic=2", "critic.n_critic", "1"),
                                              ("ablation.kl_weight=1.0", "ablation.kl_weight", "0.0"),
                                              ("data.batch_size=3", "data.batch_size", "2")])
def test_a_change_that_alters_what_the_weights_mean_is_refused_before_anything_is_written(make_cfg, tmp_path, override,
                                                                                           key, old):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", "training.iterations_per_epoch=2"))
    saved = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run / "checkpoints").iterdir()}
    with pytest.raises(ConfigError) as error:
        train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=4", "ckpt_path=last", override))
    message = str(error.value)
    assert message.startswith(f"cannot resume {run / 'checkpoints' / 'last.ckpt'} with {key}=")
    assert f"it trained with {key}={old}" in message and f"resume with {key}={old} in place of yours" in message
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (run / "checkpoints").iterdir()} == saved


def audio_folder(root, seed):
    import numpy as np
    import soundfile as sf
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index in range(10):
        sf.write(str(root / f"{index:02d}.wav"), (0.1 * rng.standard_normal(3200)).astype("float32"), 16000)
    return root


def test_a_moved_corpus_is_accepted_and_another_corpus_refused(make_cfg, tmp_path):
    corpus = audio_folder(tmp_path / "corpus", seed=0)
    audio = ["data=audio_dir", "data.crop_frames=8", "data.batch_size=2", "data.cache_dir=null", "data.val_fraction=0.2",
             "data.test_fraction=0.2", "training.iterations_per_epoch=2", "model.hidden_size=16", "model.x_features=8",
             "model.z_features=8", "model.mlp_hidden=16", "model.z_dim=4", "trainer.enable_progress_bar=false"]
    run = tmp_path / "run"
    train(make_cfg(*audio, f"data.root={corpus}", f"paths.output_dir={run}", "training.max_iterations=2", tiny=False))
    moved = tmp_path / "moved"
    shutil.copytree(corpus, moved)
    metrics = train(make_cfg(*audio, f"data.root={moved}", f"paths.output_dir={run}", "training.max_iterations=3",
                             "ckpt_path=last", tiny=False))
    assert metrics["iteration"] == 3
    other = audio_folder(tmp_path / "other", seed=1)
    with pytest.raises(ConfigError, match=rf"cannot resume: the run trained on data.root={moved}, and the corpus at "
                                          rf"data.root={other} is not the same training data now"):
        train(make_cfg(*audio, f"data.root={other}", f"paths.output_dir={run}", "training.max_iterations=4",
                       "ckpt_path=last", tiny=False))


def test_from_the_command_line_a_refused_resume_keeps_the_run_folders_config_and_an_accepted_one_records_what_ran(
        run_in_process, tmp_path, corpus_dir, tiny):
    run = tmp_path / "run"
    common = [*tiny, f"data.root={corpus_dir}", f"hydra.run.dir={run}", "training.iterations_per_epoch=2"]
    assert run_in_process("train.py", *common, "training.max_iterations=2").returncode == 0
    config = run / ".hydra" / "config.yaml"
    earlier = {p.name: p.read_bytes() for p in config.parent.iterdir()}
    refused = run_in_process("train.py", *common, "training.max_iterations=4", "ckpt_path=last", "model.z_dim=8")
    assert refused.returncode == 2 and refused.last_line.startswith("error: cannot resume ")
    assert refused.last_line.endswith("and this cannot change mid-run (they change what the checkpoint's weights and "
                                      "state mean); resume with model.z_dim=4 in place of yours, or start a new run "
                                      "(no ckpt_path)")
    assert {p.name: p.read_bytes() for p in config.parent.iterdir()} == earlier
    accepted = run_in_process("train.py", *common, "training.max_iterations=4", "ckpt_path=last",
                              "model.optimizer.lr=1e-5")
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    import yaml
    ran = yaml.safe_load(config.read_text())
    assert ran["model"]["optimizer"]["lr"] == 1e-5 and ran["training"]["max_iterations"] == 4
    assert ran["ckpt_path"] == "last" and ran["trainer"]["precision"] == "32-true"


def test_every_refused_change_is_named_in_the_one_line(make_cfg, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=2", "training.iterations_per_epoch=2"))
    with pytest.raises(ConfigError) as error:
        train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=4", "ckpt_path=last", "ablation=hybrid"))
    message = str(error.value)
    assert "ablation.kl_weight=1.0" in message and "ablation.name=hybrid" in message and "\n" not in message
    assert "resume with ablation=none in place of yours, or start" in message  # the group's choice undoes both


def test_a_refused_resumes_fix_is_overrides_a_command_line_takes_back(make_cfg):
    """The field case: resuming a model=avrnn critic=wgan run with model=vrnn printed "resume with critic.name=wgan,
    critic.objective={'_target_': ...}, model.name=avrnn", a Python dict no override takes, and settings that
    cannot undo a config group's choice. Each value also survives the shell and Hydra's parser as it was."""
    import shlex
    from pathlib import Path

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from avrnn.training.fit import plain
    from avrnn.training.resume import check_resume, hydra_value

    wgan, vrnn = plain(make_cfg("model=avrnn", "critic=wgan")), plain(make_cfg("model=vrnn"))
    with pytest.raises(ConfigError) as error:
        check_resume(wgan, vrnn, Path("last.ckpt"), 3)
    assert str(error.value).endswith("; resume with critic=wgan model=avrnn in place of yours, or start a new run (no "
                                     "ckpt_path)")
    from avrnn.training.resume import undoing_overrides  # a group whose option places a value (latent/z32.yaml)
    assert undoing_overrides({"model.z_dim": (32, 64)}) == ["latent=z32"]  # the fresh-user trial: latent=z64 was
    assert undoing_overrides({"model.z_dim": (7, 64)}) == ["model.z_dim=7"]  # told "model.z_dim=32"; no option: 7
    values = ["_([a-z]+)_", "/data/My Corpus", "a,b", "null", "1234", "it's \\ \"x\"", "end \\", "a\\\"b", "", True, None, 3, 0.0003,
              float("inf"), {"_target_": "a.B", "k": "", "l": [1, None, "x y"]}]
    parser = OverridesParser.create()
    for value in values:
        (word,) = shlex.split(shlex.quote(f"key={hydra_value(value)}"))
        (override,) = parser.parse_overrides([word])
        assert override.value() == value, (value, word)



def test_resuming_with_max_iterations_at_or_below_the_checkpoints_iteration_is_refused(make_cfg, tmp_path):
    run = tmp_path / "run"
    train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=4", "training.iterations_per_epoch=2"))
    with pytest.raises(ConfigError, match="it is at iteration 4 already; set training.max_iterations above 4"):
        train(make_cfg(f"paths.output_dir={run}", "training.max_iterations=3", "training.iterations_per_epoch=2",
                       "ckpt_path=last"))


def test_a_corpus_that_changed_in_place_is_refused(make_cfg, tmp_path):
    corpus = audio_folder(tmp_path / "corpus", seed=0)
    audio = ["data=audio_dir", "data.crop_frames=8", "data.batch_size=2", "data.cache_dir=null", "data.val_fraction=0.2",
             "data.test_fraction=0.2", "training.iterations_per_epoch=2", "model.hidden_size=16", "model.x_features=8",
             "model.z_features=8", "model.mlp_hidden=16", "model.z_dim=4", "trainer.enable_progress_bar=false",
             f"data.root={corpus}", f"paths.output_dir={tmp_path / 'run'}"]
    train(make_cfg(*audio, "training.max_iterations=2", tiny=False))
    audio_folder(tmp_path / "more", seed=3)
    for path in (tmp_path / "more").iterdir():  # ten more files in the same folder
        path.rename(corpus / f"more_{path.name}")
    with pytest.raises(ConfigError, match=rf"the run trained on data.root={corpus}, and the corpus there is not the "
                                          "same training data now"):
        train(make_cfg(*audio, "training.max_iterations=4", "ckpt_path=last", tiny=False))


def speaker_folders(root, speakers=5, each=4, seed=0):
    import numpy as np
    import soundfile as sf
    rng = np.random.default_rng(seed)
    for speaker in range(speakers):
        (root / f"spk{speaker}").mkdir(parents=True, exist_ok=True)
        for index in range(each):
            sf.write(str(root / f"spk{speaker}" / f"{index:02d}.wav"),
                     (0.1 * rng.standard_normal(3200)).astype("float32"), 16000)
    return root


def test_a_resume_refuses_a_validation_or_test_split_that_changed(make_cfg, tmp_path):
    """The field report: recordings added to the validation speaker's folder; the training split (and so
    its statistics) unchanged. Then a test file whose audio changed in place, then the corpus restored."""
    import soundfile as sf
    import torch

    corpus = speaker_folders(tmp_path / "corpus")
    audio = ["data=audio_dir", "data.crop_frames=8", "data.batch_size=2", "data.cache_dir=null", "data.val_fraction=0.2",
             "data.test_fraction=0.2", "data.speaker_pattern='spk(\\d+)'", "training.iterations_per_epoch=2",
             "model.hidden_size=16", "model.x_features=8", "model.z_features=8", "model.mlp_hidden=16", "model.z_dim=4",
             "trainer.enable_progress_bar=false", "training.test_after_training=false", f"data.root={corpus}",
             f"paths.output_dir={tmp_path / 'run'}"]
    train(make_cfg(*audio, "training.max_iterations=2", tiny=False))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    splits = torch.load(last, weights_only=False)["avrnn_splits"]
    assert [len(splits[name]["files"]) for name in ("train", "val", "test")] == [12, 4, 4]
    val_speaker = Path(splits["val"]["files"][0]).parent
    backup = tmp_path / "backup"
    shutil.copytree(corpus, backup)
    speaker_folders(tmp_path / "more", speakers=1, each=4, seed=9)
    for path in sorted((tmp_path / "more" / "spk0").iterdir()):
        path.rename(corpus / val_speaker / f"new_{path.name}")
    saved = last.read_bytes()
    with pytest.raises(ConfigError, match=rf"^cannot resume {last}: its val split is not the one it trained with: 4 -> 8 "
                                          rf"utterances, 4 files added \(e.g. {val_speaker}/new_00.wav\); the curves "
                                          r"and the best checkpoint would span two different sets; restore the corpus"):
        train(make_cfg(*audio, "training.max_iterations=4", "ckpt_path=last", tiny=False))
    shutil.rmtree(corpus)
    shutil.copytree(backup, corpus)
    test_file = corpus / splits["test"]["files"][1]
    sf.write(str(test_file), 0.5 * sf.read(str(test_file), dtype="float32")[0], 16000)
    with pytest.raises(ConfigError, match=r"its test split is not the one it trained with: 4 -> 4 utterances, the same "
                                          r"files, whose audio changed;"):
        train(make_cfg(*audio, "training.max_iterations=4", "ckpt_path=last", tiny=False))
    assert last.read_bytes() == saved
    shutil.rmtree(corpus)
    shutil.copytree(backup, corpus)
    assert train(make_cfg(*audio, "training.max_iterations=3", "ckpt_path=last", tiny=False))["iteration"] == 3
    assert torch.load(last, weights_only=False)["avrnn_splits"] == splits


def test_a_checkpoint_that_hashed_its_frames_is_compared_by_its_frames_as_before(tmp_path):
    """Checkpoints of the version before the content hash stored a hash of each split's names and frames:
    they are compared as that version compared them, so a file whose audio changed is still refused."""
    import soundfile as sf

    from avrnn.data.datamodule import SpeechDataModule
    from avrnn.training.resume import check_same_splits

    corpus = speaker_folders(tmp_path / "corpus")
    options = dict(root=str(corpus), layout="folder", cache_dir=None, val_fraction=0.2, test_fraction=0.2)
    dm = SpeechDataModule(options)
    dm.setup()
    earlier = dm.earlier_split_membership()
    assert all(set(entry) == {"files", "digest"} for entry in earlier.values())
    check_same_splits(earlier, dm.earlier_split_membership(), Path("last.ckpt"))  # the same corpus: accepted
    changed = corpus / earlier["val"]["files"][0]
    sf.write(str(changed), 0.5 * sf.read(str(changed), dtype="float32")[0], 16000)
    again = SpeechDataModule(options)
    again.setup()
    with pytest.raises(ConfigError, match=r"its val split is not the one it trained with: 4 -> 4 utterances, the "
                                          r"same files, whose audio changed"):
        check_same_splits(earlier, again.earlier_split_membership(), Path("last.ckpt"))


def test_a_split_read_from_other_copies_of_its_utterances_says_so():
    """A checkpoint of a version that kept a.mp3 over a.wav, resumed by one that keeps the lossless copy."""
    from avrnn.training.resume import check_same_splits

    stored = {"train": {"files": ["spk1/a.mp3", "spk1/b.wav"], "content": "1"}}
    now = {"train": {"files": ["spk1/a.wav", "spk1/b.wav"], "content": "2"}}
    with pytest.raises(ConfigError) as refused:
        check_same_splits(stored, now, Path("last.ckpt"))
    assert str(refused.value) == (
        "cannot resume last.ckpt: its train split is not the one it trained with: 2 -> 2 utterances, the same "
        "utterances, 1 of them now read from another copy (e.g. spk1/a.wav instead of spk1/a.mp3: this version keeps "
        "a lossless copy before a lossy one); the curves and the best checkpoint would span two different sets; "
        "resume with the version that wrote the checkpoint, move the copies now read (e.g. spk1/a.wav) out of "
        "data.root, or start a new run (another hydra.run.dir)")
