import numpy as np
import pytest

from core.timing import frame_count, resample_frames

SCENE_RATES = [24, 25, 30000 / 1001, 30, 50, 60]


@pytest.mark.parametrize("fps", SCENE_RATES)
def test_resampling_follows_time_without_drift(fps):
    duration = 61.37  # long enough for 29.97 fps rounding to show if it accumulated
    model_fps = 30.0
    n_model = frame_count(duration, model_fps)
    source = np.sin(np.arange(n_model) / model_fps * 3.0)[:, None].astype(np.float64)
    out = resample_frames(source, model_fps, fps, duration)
    assert len(out) == round(duration * fps)
    times = np.arange(len(out)) / fps
    inside = times <= (n_model - 1) / model_fps
    # linear interpolation of a smooth curve: error bounded by curvature, never growing with time
    np.testing.assert_allclose(out[inside, 0], np.sin(times[inside] * 3.0), atol=2.5e-3)
    # like a sound strip, the clip covers frames [0, N) with N/fps within half a frame of the duration,
    # so the last keyed frame is the strip's last frame
    assert abs(len(out) / fps - duration) <= 0.5 / fps


def test_same_rate_is_identity():
    frames = np.random.default_rng(0).normal(size=(90, 4))
    np.testing.assert_array_equal(resample_frames(frames, 30, 30, 3.0), frames)
