"""Style adaptation on the synthetic corpus's test speakers (styles the model never saw).

    .venv/bin/python benchmarks/bench_adapt.py --data CORPUS [--model default] [--speakers 5]

For each test speaker: a reference of about 5 s (neutral sentences joined until 5 s), then LVE and
MVE on 10+ other neutral sentences of that speaker for: the unadapted model (average style),
stage 1 only (style embedding), stage 1 + LoRA (the product), the same without the meta-learned
start, and full-basis fine-tuning. Prints the time to adapt and the style file size.

On the synthetic corpus it also prints how far the speaker's style alone moves the face: each
evaluation clip rebuilt from its metadata with the training speakers' mean style instead of its
own (same phones, same blinks), against the ground truth. That is the error an adaptation that
learned the style perfectly would remove; what stays is the model's error on speech itself, the
same for every speaker.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.adapt import AdaptOptions, ReferenceClip, adapt_style  # noqa: E402
from core.audio import load_audio  # noqa: E402
from core.data import load_clips  # noqa: E402
from core.evaluate import load_masks, lve  # noqa: E402
from core.flame import SHARED_FLAME  # noqa: E402
from core.models import Conditioning, load_model  # noqa: E402
from core.styles import save_style  # noqa: E402

VARIANTS = {
    "unadapted": None,
    "stage 1 (style only)": AdaptOptions(stage2="none"),
    "stage 1 + LoRA (product)": AdaptOptions(),
    "stage 1 + LoRA, meta-learned start": AdaptOptions(use_meta=True),
    "full-basis fine-tune": AdaptOptions(stage2="full"),
}


def reference_of(clips, seconds: float = 5.0):
    """Neutral sentences joined until `seconds`: (ReferenceClip, clips used)."""
    audio, offsets, used = [], [], []
    for clip in clips:
        a = load_audio(clip.wav_path)
        motion = clip.vertices() - clip.template[None]
        n = min(len(motion), int(round(len(a) / 16000 * 30)))
        audio.append(a[: int(n / 30 * 16000)])
        offsets.append(motion[:n])
        used.append(clip)
        if sum(len(x) for x in audio) / 16000 >= seconds:
            break
    n = int(seconds * 30)  # exactly `seconds` of reference
    return ReferenceClip(np.concatenate(audio)[: int(seconds * 16000)], np.concatenate(offsets)[:n], 30.0), used


def mean_training_style(data: str) -> dict | None:
    """The training speakers' mean style parameters (synthetic corpus only; None otherwise)."""
    path = os.path.join(data, "splits.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        splits = json.load(handle)
    styles = [splits["speakers"][name]["style"] for name in splits["train"] if "style" in splits.get("speakers", {}).get(name, {})]
    return {key: float(np.mean([style[key] for style in styles])) for key in styles[0]} if styles else None


def style_alone(data: str, clip, mean_style: dict, rigs: dict, seed: int) -> np.ndarray | None:
    """(T, V) distance between the clip's ground truth and the same clip spoken in the mean style
    (same phones, same blinks); None where the clip cannot be rebuilt from its metadata."""
    from core.corpus.articulation import FaceRig
    from core.corpus.generate import motion_from_meta
    from core.flame import summed_eyelids
    from core.train import flame_triangles

    path = os.path.join(data, "meta", f"{clip.subject}_{clip.sentence}.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        meta = json.load(handle)
    if clip.subject not in rigs:  # the generator's rig, with the eyelid fields the corpus command blinks with
        rigs[clip.subject] = FaceRig(clip.template, flame_triangles(), summed_eyelids())
    truth = clip.vertices()
    own = motion_from_meta(rigs[clip.subject], meta, len(truth), seed)
    # the metadata's rounded phone times move a closure now and then (a clip's mean moves under
    # 0.01 mm); a wrong seed moves every blink (0.03 mm)
    if np.linalg.norm(own - truth, axis=2).mean() > 1.5e-5:
        raise SystemExit(f"{clip.subject}_{clip.sentence} does not rebuild from its metadata with corpus seed {seed}; "
                         "pass the seed the corpus was generated with (--corpus-seed)")
    # the blink rate stays the speaker's: blinks are not what adaptation learns
    style = {**mean_style, "blink_rate": meta["style"]["blink_rate"]}
    return np.linalg.norm(motion_from_meta(rigs[clip.subject], {**meta, "style": style}, len(truth), seed) - own, axis=2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--speakers", type=int, default=5)
    parser.add_argument("--masks", default=os.path.join(SHARED_FLAME, "FLAME_masks.pkl"))
    parser.add_argument("--corpus-seed", type=int, default=0, help="the seed the synthetic corpus was made with")
    args = parser.parse_args()
    model = load_model(args.model)
    masks = load_masks(args.masks)
    lips = masks["lips"]
    # where the whole-face error sits: the mouth (what a style changes) and the eyes (blinks at
    # random times, which no adaptation can predict from audio)
    eyes = np.union1d(masks["eye_region"], np.union1d(masks["left_eyeball"], masks["right_eyeball"]))
    clips = [c for c in load_clips(args.data, "test") if c.emotion == "neutral"]
    speakers = sorted({c.subject for c in clips})[: args.speakers]
    scores = {name: {"lve": [], "mve": [], "mve_lips": [], "mve_eyes": [], "seconds": [], "kb": []} for name in VARIANTS}
    mean_style, rigs, style_distance = mean_training_style(args.data), {}, []
    for speaker in speakers:
        own = [c for c in clips if c.subject == speaker]
        reference, used = reference_of(own)
        evaluation = [c for c in own if c not in used][:12]
        print(f"{speaker}: reference {len(reference.audio) / 16000:.1f} s ({len(used)} sentences), "
              f"evaluated on {len(evaluation)} other sentences", file=sys.stderr)
        if mean_style is not None:
            for clip in evaluation:
                distance = style_alone(args.data, clip, mean_style, rigs, args.corpus_seed)
                if distance is not None:
                    style_distance.append(distance.mean())
        for name, options in VARIANTS.items():
            conditioning = Conditioning()
            if options is not None:
                started = time.time()
                style = adapt_style(model, reference, "bench", options)
                scores[name]["seconds"].append(time.time() - started)
                with tempfile.TemporaryDirectory() as tmp:
                    path = save_style(style, os.path.join(tmp, "bench"))
                    scores[name]["kb"].append(os.path.getsize(path) / 1024)
                conditioning = Conditioning(adapted_style=style)
            for clip in evaluation:
                truth = clip.vertices()
                pred = model.predict(load_audio(clip.wav_path), clip.template, conditioning).vertex_offsets()
                n = min(len(pred), len(truth))
                pred = pred[:n] + clip.template[None]
                scores[name]["lve"].append(lve(pred, truth[:n], lips).mean())
                distance = np.linalg.norm(pred - truth[:n], axis=2)
                scores[name]["mve"].append(distance.mean())
                scores[name]["mve_lips"].append(distance[:, lips].mean())
                scores[name]["mve_eyes"].append(distance[:, eyes].sum() / distance.size)  # their part of the mean
    base = np.mean(scores["unadapted"]["mve"])
    base_lve = np.mean(scores["unadapted"]["lve"])
    print("| variant | LVE (x1e-5) | MVE (mm) | MVE vs unadapted | LVE vs unadapted | MVE on the lips (mm) | "
          "eyes' share of MVE | adapt time (s) | style file |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in scores.items():
        l, m = np.mean(s["lve"]), np.mean(s["mve"])
        seconds = f"{np.mean(s['seconds']):.1f}" if s["seconds"] else "-"
        size = f"{np.mean(s['kb']):.0f} KB" if s["kb"] else "-"
        print(f"| {name} | {l * 1e5:.3f} | {m * 1000:.3f} | {(m / base - 1) * 100:+.1f}% | "
              f"{(l / base_lve - 1) * 100:+.1f}% | {np.mean(s['mve_lips']) * 1000:.3f} | "
              f"{np.mean(s['mve_eyes']) / m:.0%} | {seconds} | {size} |")
    if style_distance:
        share = np.mean(style_distance)
        print(f"\nthe speakers' styles alone (ground truth against the same clips in the training speakers' mean "
              f"style): MVE {share * 1000:.3f} mm, {share / base:.0%} of the unadapted model's MVE; an adaptation "
              f"that learned the style perfectly, and nothing else, would remove about that much")
    return 0


if __name__ == "__main__":
    sys.exit(main())
