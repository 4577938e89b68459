"""Reading a reference video: its frames (downscaled for face tracking), frame rate and sound.

PyAV decodes both the picture and the audio track, so no ffmpeg binary is needed. A clip is
checked before any frame is tracked: it must exist, have a constant frame rate, last long
enough, and have sound unless the speech is given separately.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .audio import SAMPLE_RATE
from .errors import TalkingHeadError

MAX_SIDE = 640  # face tracking needs no more; larger frames only cost time
VFR_TOLERANCE = 0.25  # frame intervals may differ this much from the median before the rate counts as variable


class VideoError(TalkingHeadError):
    """The reference video cannot be used."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    n_frames: int
    width: int
    height: int
    has_audio: bool

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def _require_av():
    try:
        import av
    except ImportError:
        raise VideoError("Reading video needs the PyAV package: tick Video Adaptation Packages and press Install "
                         "Dependencies in the preferences, or pip install av==18.1.0 mediapipe==0.10.21.") from None
    return av


def _open(path: str):
    av = _require_av()

    if not os.path.isfile(path):
        raise VideoError(f"Video not found: {path}. Check the path.")
    try:
        container = av.open(path)
    except Exception as exc:  # PyAV raises its own error types for foreign or broken files
        raise VideoError(f"Cannot read video {path}: {str(exc).strip() or type(exc).__name__}. Use an .mp4, .mov, "
                         ".mkv or .webm file.") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no picture (no video stream). Give the clip of the actor's face.")
    return container


def probe_video(path: str) -> VideoInfo:
    """Frame rate, frame count and size from the packets' timestamps (no decoding); refuses a
    variable frame rate, which would put the face out of step with the sound."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stamps = sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size)
        has_audio = bool(container.streams.audio)
        width, height = stream.codec_context.width, stream.codec_context.height
    except Exception as exc:
        raise VideoError(f"Cannot read video {path}: {exc}. Export it again.") from None
    finally:
        container.close()
    if len(stamps) < 2:
        raise VideoError(f"{path} holds {len(stamps)} frame(s); give a clip of a few seconds.")
    intervals = np.diff(stamps)
    median = float(np.median(intervals))
    if median <= 0:
        raise VideoError(f"{path} has broken frame timestamps; export it again.")
    irregular = np.abs(intervals - median) > VFR_TOLERANCE * median
    if irregular.mean() > 0.02:
        raise VideoError(f"{path} has a variable frame rate ({irregular.mean():.0%} of frame intervals differ from "
                         f"{1 / median:.2f} fps), as phones record; convert it to a constant rate first, e.g. "
                         f"ffmpeg -i IN -vf fps=30 -c:a copy OUT.mp4.")
    span = stamps[-1] - stamps[0]  # over the whole clip: containers round each timestamp (Matroska to 1 ms)
    return VideoInfo(path, (len(stamps) - 1) / span, len(stamps), int(width), int(height), has_audio)


def video_frames(path: str, first: int = 0, last: int | None = None, max_side: int = MAX_SIDE) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8, frame `first` to `last` inclusive, scaled so the longer side is at
    most `max_side`."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index < first:
                continue
            if last is not None and index > last:
                break
            scale = min(1.0, max_side / max(frame.width, frame.height))
            if scale < 1.0:
                frame = frame.reformat(width=int(frame.width * scale) // 2 * 2, height=int(frame.height * scale) // 2 * 2)
            yield frame.to_ndarray(format="rgb24")
    finally:
        container.close()


def video_audio(path: str, start_s: float = 0.0, duration_s: float | None = None) -> np.ndarray:
    """The video's sound as 16 kHz mono float32 (a window of it when asked)."""
    av = _require_av()

    container = _open(path)
    try:
        if not container.streams.audio:
            raise VideoError(f"{path} has no sound track; give the speech with --audio (or pick an audio file).")
        sound, picture = container.streams.audio[0], container.streams.video[0]
        # sound before the first picture (an encoder's priming samples have negative times) is dropped,
        # so sample 0 is heard with frame 0
        picture_start = float(picture.start_time * picture.time_base) if picture.start_time is not None else 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks, skip = [], None
        for frame in container.decode(sound):
            if skip is None:
                first = float(frame.pts * frame.time_base) if frame.pts is not None else picture_start
                skip = int(round((picture_start - first) * SAMPLE_RATE))
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"Cannot read the sound of {path}: {exc}. Give the speech with --audio.") from None
    finally:
        container.close()
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if skip:  # > 0: drop sound before the picture; < 0: the sound starts late, pad with silence
        audio = audio[skip:] if skip > 0 else np.concatenate([np.zeros(-skip, np.float32), audio])
    begin = int(round(start_s * SAMPLE_RATE))
    end = None if duration_s is None else begin + int(round(duration_s * SAMPLE_RATE))
    return audio[begin:end]


def write_video(path: str, frames: np.ndarray, fps: float, audio: np.ndarray | None = None) -> None:
    """Encode RGB frames (T, H, W, 3) uint8 (and 16 kHz mono sound, as PCM so it starts exactly with
    the first frame) in a Matroska file (.mkv): test and benchmark clips of synthetic speakers with
    known motion."""
    import fractions

    av = _require_av()

    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        sound = container.add_stream("pcm_s16le", rate=SAMPLE_RATE) if audio is not None else None
        if sound is not None:
            sound.layout = "mono"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            samples = (np.clip(np.asarray(audio, dtype=np.float32), -1, 1) * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in sound.encode(frame):
                container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
