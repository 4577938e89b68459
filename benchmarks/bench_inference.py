"""Speed and memory of speech-to-motion on this machine: prints figures, asserts nothing.

    .venv/bin/python benchmarks/bench_inference.py [--model default] [--seconds 60] [--repeats 3]

End to end = read the audio file, encode, decode, offsets on a FLAME head at 30 fps (what
`python -m core animate` does minus writing the file). The speech is real: the clips of
../shared/audio concatenated to the requested length.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"


def real_speech(seconds: float) -> tuple[np.ndarray, str]:
    """(audio, transcript): the English clips of ../shared/audio with transcripts, one after another
    while whole clips fit, then silence up to `seconds`."""
    from core.align import read_transcripts
    from core.audio import load_audio

    known = read_transcripts(str(REPO / "benchmarks" / "real_speech_transcripts.txt"))
    clips = []
    for path in sorted(glob.glob(str(SHARED / "audio" / "librivox" / "*.wav"))) + sorted(
            glob.glob(str(SHARED / "audio" / "a2f" / "*.wav"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        text = Path(path).with_suffix(".txt").read_text().strip() if Path(path).with_suffix(".txt").is_file() \
            else known.get(stem)
        if text:
            clips.append((path, text))
    if not clips:
        sys.exit("needs ../shared/audio (real speech clips)")
    pieces, words, total = [], [], 0
    while True:
        for clip, text in clips:
            audio = load_audio(clip)
            if total + len(audio) > seconds * 16000:
                pieces.append(np.zeros(int(seconds * 16000) - total, dtype=np.float32))
                return np.concatenate(pieces), " ".join(words)
            pieces.append(audio)
            words.append(text)
            total += len(audio)


def main() -> int:
    import soundfile
    import torch

    from core.audio import load_audio
    from core.flame import load_flame_mesh
    from core.models import Conditioning, load_model
    from core.pipeline import animate

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="parallel,autoregressive")
    parser.add_argument("--phones", default="none,given,whisper",
                        help="phone layer sources to time (parallel mode): none, given (the transcript aligned), "
                             "whisper (transcribed)")
    parser.add_argument("--long-seconds", type=float, default=600.0,
                        help="also animate this much speech in one go: memory and window seams (0 to skip)")
    args = parser.parse_args()

    head = str(SHARED / "flame" / "FLAME_sample.ply")
    template, triangles = load_flame_mesh(head)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "speech.wav")
        speech, transcript = real_speech(args.seconds)
        soundfile.write(wav, speech, 16000)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
        print(f"audio: {args.seconds:g} s of real speech, model '{args.model}'")
        from core.speech import speech_timing

        speech_timing(speech[: 16000 * 3])  # the transcriber and aligner load once per process
        runs = [(mode, "none") for mode in args.modes.split(",")]
        runs += [("parallel", phones) for phones in args.phones.split(",") if phones != "none"]
        for mode, phones in runs:
            model = load_model(args.model)
            model.config["mode"] = mode
            repeats = args.repeats if mode == "parallel" else 1
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                audio = load_audio(wav)
                timing = None if phones == "none" else speech_timing(audio, transcript if phones == "given" else None)
                motion = animate(audio, template, triangles, model, Conditioning(speech=timing), 30.0)
                times.append(time.perf_counter() - started)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            label = mode if phones == "none" else f"{mode}, phones {phones}"
            print(f"{label:>24}: {np.median(times):6.2f} s end to end (median of {repeats}), "
                  f"{motion.n_frames} frames, {motion.n_frames / np.median(times):7.1f} frames/s, "
                  f"process peak RSS {peak_mb:.0f} MB")
        if args.long_seconds > 0:
            long_recording(args, template, triangles)
    return 0


def long_recording(args, template, triangles) -> None:
    """A long take in one call: time, peak memory, and whether window joins show as jumps."""
    import torch

    from core.models import Conditioning, load_model
    from core.pipeline import animate

    model = load_model(args.model)
    audio = real_speech(args.long_seconds)[0]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    motion = animate(audio, template, triangles, model, Conditioning(), 30.0)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the largest vertex move per frame (mm), in chunks so the measurement adds no memory of its own
    step = np.concatenate([
        np.linalg.norm(np.diff(motion.offsets(slice(i, min(i + 1001, motion.n_frames))), axis=0), axis=2).max(axis=1)
        for i in range(0, motion.n_frames - 1, 1000)]) * 1000
    hop = int(model.config["window_frames"]) - int(model.config["overlap_frames"])
    joins = np.arange(hop, len(step), hop)
    print(f"{args.long_seconds / 60:g}-minute recording: {elapsed:.1f} s, {motion.n_frames} frames, "
          f"process peak RSS {peak:.0f} MB (was {before:.0f} MB before it)")
    print(f"  frame-to-frame motion (largest vertex, mm): median {np.median(step):.3f}, 99th percentile "
          f"{np.percentile(step, 99):.3f}, max {step.max():.3f}; at the {len(joins)} window joins: median {np.median(step[joins]):.3f}, "
          f"max {step[joins].max():.3f}")
    del torch


if __name__ == "__main__":
    sys.exit(main())
