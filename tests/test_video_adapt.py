"""Adapting from a video: synthetic speakers with known motion are rendered into clips, their motion
is recovered from the video (MediaPipe landmarks -> the rig's controls on FLAME), and bad clips are
refused with one clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mediapipe", reason="adapting from video needs mediapipe==0.10.21 (requirements.txt)")
pytest.importorskip("av", reason="reading video needs PyAV (requirements.txt)")

from conftest import LIBRIVOX_CLIP, REPO, shared_path  # noqa: E402

FPS = 30.0
SIZE = 256


@pytest.fixture(scope="module")
def speaker():
    """The FLAME head in its canonical frame, its landmark fit, and a known 2.99 s motion: the jaw
    opening and closing twice a second with some rounding, as speech does."""
    from core.audio import load_audio
    from core.corpus.articulation import J_JAW, J_ROUND
    from core.flame import load_flame_mesh
    from core.head_frame import estimate_head_frame
    from core.preview import frame_bounds, render_clip
    from core.video_motion import LandmarkFit

    vertices, triangles = load_flame_mesh(str(shared_path("flame/FLAME_sample.ply")))
    canonical = estimate_head_frame(vertices, triangles).points_to_canonical(vertices)
    fit = LandmarkFit(canonical, triangles)
    audio = load_audio(str(shared_path(LIBRIVOX_CLIP)))
    n = int(round(len(audio) / 16000 * FPS))
    times = np.arange(n) / FPS
    controls = np.zeros((n, fit.n_controls))
    controls[:, J_JAW] = np.clip(6 + 7 * np.sin(2 * np.pi * 2.0 * times), 0, None)
    controls[:, J_ROUND] = np.clip(np.sin(2 * np.pi * 0.7 * times), 0, 1)
    truth = fit.deform(controls)
    frames = render_clip(truth, triangles, SIZE, frame_bounds(canonical), crop=0.6)
    return {"fit": fit, "truth": truth, "frames": frames, "audio": audio, "triangles": triangles}


def test_motion_recovered_from_a_rendered_clip_follows_the_true_lips(speaker):
    from core.face_tracking import track_faces
    from core.video_calibration import calibrate_fit

    fit, truth = speaker["fit"], speaker["truth"]
    [tracked] = track_faces(iter(speaker["frames"]), len(truth), FPS)
    with pytest.raises(RuntimeError, match="calibrate"):
        fit.motion(tracked)
    calibrate_fit(fit, speaker["triangles"])  # textured renders at another size and framing than this grey clip
    recovered = fit.motion(tracked)
    assert np.allclose(fit.motion(tracked, tracked), recovered, atol=1e-7), "two identical views read as one"
    with pytest.raises(ValueError, match="views"):
        fit.fit(tracked, tracked[:-1])
    # the true face has no expression: what the tracker reads there must stay under its resolution
    from core.corpus.articulation import PARAMS
    from core.video_motion import EXPRESSION_MAX
    noise = fit.control_noise[len(PARAMS):]
    assert np.all(np.isfinite(noise)) and np.all(noise > 0) and np.all(noise < 0.25 * EXPRESSION_MAX)
    assert fit.fit(tracked)[:, len(PARAMS):].max() < 0.15 * EXPRESSION_MAX  # 0.37 (squint, stretch) unthresholded
    true_gap, found_gap = fit.rig.lip_gap(truth), fit.rig.lip_gap(recovered)
    assert np.corrcoef(true_gap, found_gap)[0, 1] > 0.9
    assert 0.6 < np.ptp(found_gap) / np.ptp(true_gap) < 1.4  # the opening's size, not only its timing
    still = fit.rig.w_jaw + fit.rig.w_lips < 0.01  # forehead, skull, neck: pose removed, nothing moves there
    assert np.abs(recovered[:, still] - truth[:, still]).max() < 0.002


def test_adapt_from_a_video_writes_a_style(tmp_path, weights_dir, speaker):
    from core.video import write_video

    video = tmp_path / "actor.mkv"
    write_video(str(video), speaker["frames"], FPS, speaker["audio"])
    env = {**os.environ, "TALKING_HEAD_WEIGHTS": str(weights_dir)}
    result = subprocess.run([sys.executable, "-m", "core", "adapt", "--video", str(video), "--template",
                             str(shared_path("flame/FLAME_sample.ply")), "--name", "FromVideo", "--out",
                             str(tmp_path / "styles")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "styles" / "FromVideo.safetensors").is_file()
    assert "wrote style 'FromVideo'" in result.stderr


def _write_variable_rate(path, frames):
    import fractions

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        stamp = 0
        for k, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = stamp, fractions.Fraction(1, 1000)
            stamp += 20 if k % 3 else 60  # a phone's rate drifting between 50 and 17 fps
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("case, words", [
    ("no_face", "No face found"),
    ("two_faces", "several faces"),
    ("lost_long", "The face is lost"),
    ("short", "at least 2 s"),
    ("no_sound", "no sound track"),
    ("variable_rate", "variable frame rate"),
])
def test_bad_videos_are_refused_with_one_clear_message(tmp_path, speaker, case, words):
    from core.adapt import load_video_reference
    from core.errors import TalkingHeadError
    from core.video import write_video

    frames, audio = speaker["frames"], speaker["audio"]
    video = tmp_path / "clip.mkv"
    if case == "no_face":
        write_video(str(video), np.full_like(frames, 40), FPS, audio)
    elif case == "two_faces":
        pair = np.concatenate([frames, frames[::-1]], axis=2)  # two people side by side
        write_video(str(video), pair, FPS, audio)
    elif case == "lost_long":
        gappy = frames.copy()
        gappy[20:45] = 40  # 0.83 s without a face
        write_video(str(video), gappy, FPS, audio)
    elif case == "short":
        write_video(str(video), frames[:45], FPS, audio[:24000])
    elif case == "no_sound":
        write_video(str(video), frames, FPS)
    else:
        _write_variable_rate(video, frames)
    with pytest.raises(TalkingHeadError, match=words) as caught:
        load_video_reference(str(video), None, str(shared_path("flame/FLAME_sample.ply")), 30.0)
    assert "\n" not in str(caught.value)


def test_calibration_poses_are_reproducible_speech_like_and_start_at_rest(speaker):
    from core.corpus.articulation import J_JAW
    from core.video_motion import JAW_MAX_MM, REST_POSES

    fit = speaker["fit"]
    controls = fit.calibration_controls()
    assert np.array_equal(controls, fit.calibration_controls())
    assert np.all(controls[:REST_POSES] == 0)
    assert 0 <= controls.min() and controls[:, J_JAW].max() <= min(14.0, JAW_MAX_MM)
    active = (controls[REST_POSES:] > 0).mean(axis=0)
    assert np.all(active > 0.05), "every control appears in some poses, so the regression can learn it"
    assert fit.calibration_poses(controls[:2]).shape == (2, len(fit.rig.template), 3)


def test_blinks_do_not_move_the_pose_reference(speaker):
    """The eyelids are not among the landmarks the head pose is fitted on: a blink must not tilt the head."""
    from core.flame import summed_eyelids

    fit = speaker["fit"]
    eyelids = summed_eyelids()
    if eyelids is None:
        pytest.skip("../shared/flame/*_eyelid.npy (the eyelid fields) is absent")
    blink = fit.rig.template + eyelids
    moved = np.linalg.norm(fit.landmarks(blink[None])[0] - fit.rest, axis=1)
    assert moved[fit.still].max() < 1e-4
    assert (moved > 5e-4).sum() >= 6, "the blink moves landmarks the pose could otherwise have used"
    image = fit.landmarks(blink[None].astype(np.float64)) * np.array([1.0, -1.0, -1.0]) * 1000.0  # mm, image axes
    tracked = np.zeros((1, 478, 3))
    tracked[:, fit.mediapipe_index] = image
    assert np.abs(fit.align(tracked)[0][fit.still] - fit.rest[fit.still]).max() < 1e-4


def test_a_head_the_tracker_cannot_see_is_refused(speaker):
    from core.errors import TopologyError

    fit = speaker["fit"]
    lost = [None] * len(fit.calibration_controls())
    with pytest.raises(TopologyError, match="calibration renders"):
        fit.calibrate(lost)


def test_a_short_loss_of_the_face_is_filled_in(speaker):
    from core.face_tracking import fill_lost_frames

    tracked = [np.full((478, 3), float(k)) for k in range(30)]
    tracked[10:13] = [None, None, None]
    filled = fill_lost_frames(tracked, FPS)
    assert np.allclose(filled[11], 11.0)
