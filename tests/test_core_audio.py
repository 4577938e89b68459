import numpy as np
import pytest

from core.audio import SAMPLE_RATE, load_audio
from core.errors import AudioError


def test_real_speech_loads_as_16k_mono(speech_path):
    samples = load_audio(str(speech_path))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / SAMPLE_RATE == pytest.approx(2.99, abs=0.01)


@pytest.mark.parametrize("name", ["stereo48k", "flac", "ogg", "mp3"])
def test_other_formats_and_rates_resample_to_the_same_duration(audio_files, name):
    reference = load_audio(str(audio_files["speech"]))
    samples = load_audio(str(audio_files[name]))
    assert samples.ndim == 1
    # mp3 encoders pad a few milliseconds at the ends
    assert abs(len(samples) - len(reference)) <= SAMPLE_RATE * (0.06 if name == "mp3" else 0.01), name


def test_window_of_a_file(speech_path):
    window = load_audio(str(speech_path), offset_s=1.0, duration_s=1.5)
    assert len(window) == pytest.approx(1.5 * SAMPLE_RATE, abs=2)


@pytest.mark.parametrize(
    "name, expected",
    [("silent", "is silent"), ("corrupt", "Could not read audio"), ("empty", "is empty"), ("missing", "not found")],
)
def test_bad_audio_gets_a_message_that_says_what_to_do(audio_files, name, expected):
    with pytest.raises(AudioError) as info:
        load_audio(str(audio_files[name]))
    message = str(info.value)
    assert expected in message
    assert str(audio_files[name]) in message
    assert any(hint in message for hint in ("Pick", "Use", "Check"))
