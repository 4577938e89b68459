"""The emotion model against the default on the synthetic corpus's test speakers.

    .venv/bin/python benchmarks/bench_emotion.py --data CORPUS --model emotion [--baseline default]

Prints: LVE, EVE (LVE formula on eye + forehead vertices, METHODS.md) and FDD on every test clip
(the emotion model told each clip's emotion and intensity, the default model neutral); emotion
recognisability (a classifier trained on ground-truth motion of the training speakers labels
motion generated at intensity 1 for each emotion); upper-face displacement against intensity;
inference time for 60 s of speech (neutral and happy) and Mesh Attention's share of it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.audio import load_audio  # noqa: E402
from core.data import load_clips  # noqa: E402
from core.evaluate import fdd, load_masks, lve  # noqa: E402
from core.flame import SHARED_FLAME  # noqa: E402
from core.models import EMOTIONS, Conditioning, load_model  # noqa: E402


def motion_features(offsets: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Time-averaged offsets of the expressive vertices: what a viewer reads an emotion from."""
    return offsets[:, vertices].mean(axis=0).ravel()


VISIBLE_MM = 0.05


def train_classifier(features: np.ndarray, labels: np.ndarray, floor: float = VISIBLE_MM / 1000):
    """A linear classifier on standardised features. Each feature's spread is floored at `floor`
    (metres): without the floor, features that barely vary in the ground truth (forehead vertices
    no expression reaches vary by microns) get the largest weights, and invisible model errors of
    a few hundredths of a millimetre there decide the label."""
    mean, std = features.mean(0), np.maximum(features.std(0), floor)
    x = torch.from_numpy((features - mean) / std).float()
    y = torch.from_numpy(labels).long()
    torch.manual_seed(0)
    layer = torch.nn.Linear(x.shape[1], len(EMOTIONS))
    optimiser = torch.optim.Adam(layer.parameters(), lr=0.01, weight_decay=1e-3)
    with torch.enable_grad():  # main() turns gradients off for the models
        for _ in range(500):
            loss = torch.nn.functional.cross_entropy(layer(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return lambda f: layer(torch.from_numpy((np.atleast_2d(f) - mean) / std).float()).argmax(1).numpy()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="emotion")
    parser.add_argument("--baseline", default="default")
    parser.add_argument("--masks", default=os.path.join(SHARED_FLAME, "FLAME_masks.pkl"))
    parser.add_argument("--sentences", type=int, default=24, help="test sentences for recognisability")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, baseline = load_model(args.model), load_model(args.baseline)
    masks = load_masks(args.masks)
    lips, upper = masks["lips"], np.union1d(masks["forehead"], masks["eye_region"])
    expressive = np.union1d(upper, lips)[::4]

    # 1. accuracy on every test clip
    test = load_clips(args.data, "test")
    rows = {"emotion model": [], "default model": []}
    for clip in test:
        truth = clip.vertices()
        audio = load_audio(clip.wav_path)
        for name, net, conditioning in (("emotion model", model, Conditioning(clip.emotion, clip.intensity)),
                                        ("default model", baseline, Conditioning())):
            pred = clip.template + net.predict(audio, clip.template, conditioning).vertex_offsets()
            n = min(len(pred), len(truth))
            rows[name].append((lve(pred[:n], truth[:n], lips).mean(), lve(pred[:n], truth[:n], upper).mean(),
                               fdd(pred[:n], truth[:n], clip.template, upper)))
    print(f"test clips: {len(test)} ({sum(c.emotion != 'neutral' for c in test)} emotional)")
    print("| model | LVE (x1e-5) | EVE (x1e-5) | FDD (x1e-7) |\n|---|---|---|---|")
    for name, values in rows.items():
        v = np.array(values)
        print(f"| {name} | {v[:, 0].mean() * 1e5:.3f} | {v[:, 1].mean() * 1e5:.3f} | {v[:, 2].mean() * 1e7:.2f} |")

    # 2. recognisability: a classifier of ground-truth motion labels generated motion
    train = load_clips(args.data, "train")
    train = [c for c in train if "a" not in c.sentence.replace("sentence", "")]  # originals, not augmented copies
    features = np.stack([motion_features(c.vertices() - c.template[None], expressive) for c in train])
    labels = np.array([EMOTIONS.index(c.emotion) for c in train])
    classifiers = {f"spread floored at {VISIBLE_MM} mm": train_classifier(features, labels),
                   "no floor (reads micron differences)": train_classifier(features, labels, floor=1e-9)}
    held = load_clips(args.data, "val")
    held_features = np.stack([motion_features(c.vertices() - c.template[None], expressive) for c in held])
    held_labels = np.array([EMOTIONS.index(c.emotion) for c in held])
    sentences = [c for c in test if c.emotion == "neutral"][: args.sentences]
    generated = {label: [] for label in EMOTIONS}
    for clip in sentences:
        audio = load_audio(clip.wav_path)
        for label in EMOTIONS:
            offsets = model.predict(audio, clip.template, Conditioning(label, 1.0)).vertex_offsets()
            generated[label].append(motion_features(offsets, expressive))
    for name, classify in classifiers.items():
        confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), dtype=int)
        for label, features_of_label in generated.items():
            for predicted in classify(np.stack(features_of_label)):
                confusion[EMOTIONS.index(label), predicted] += 1
        print(f"\nclassifier, {name}: {np.mean(classify(held_features) == held_labels):.1%} on ground-truth motion "
              f"of validation speakers")
        print(f"recognised emotion of generated motion at intensity 1 ({len(sentences)} sentences x 7): "
              f"{np.trace(confusion) / confusion.sum():.1%}")
        print("per emotion: " + ", ".join(f"{e} {confusion[i, i] / confusion[i].sum():.0%}" for i, e in enumerate(EMOTIONS)))
        print("confusion (rows: asked for, columns: recognised as " + ", ".join(EMOTIONS) + ")\n" + str(confusion))

    # 3. upper-face displacement grows with intensity
    levels = (0.0, 0.25, 0.5, 0.75, 1.0)
    print("\n| emotion | " + " | ".join(f"{x:g}" for x in levels) + " | monotonic |\n|---|" + "---|" * (len(levels) + 1))
    for label in EMOTIONS[1:]:
        means = []
        for level in levels:
            values = []
            for clip in sentences[:8]:
                audio = load_audio(clip.wav_path)
                offsets = model.predict(audio, clip.template, Conditioning(label, level)).vertex_offsets()
                values.append(np.linalg.norm(offsets[:, upper], axis=2).mean() * 1000)
            means.append(float(np.mean(values)))
        print(f"| {label} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {all(np.diff(means) > 0)} |")

    # 4. time for 60 s of speech, and Mesh Attention's share
    import glob

    clips = [load_audio(p) for p in sorted(glob.glob(os.path.join(SHARED_FLAME, "..", "audio", "librivox", "*.wav")))]
    audio = np.concatenate(clips * 20)[: 16000 * 60]
    template = test[0].template
    spent = {"attention": 0.0}

    def before(module, inputs):
        spent["start"] = time.perf_counter()

    def after(module, inputs, output):
        spent["attention"] += time.perf_counter() - spent["start"]

    model.mesh_attention.register_forward_pre_hook(before)
    model.mesh_attention.register_forward_hook(after)
    # neutral as well: with "fusion": "expression" neutral speech is the content branch's, without Mesh Attention
    for name, net, conditioning in (("emotion model, neutral", model, Conditioning()),
                                    ("emotion model, happy 0.8", model, Conditioning("happy", 0.8)),
                                    ("default model", baseline, Conditioning())):
        net.predict(audio[:16000 * 5], template, conditioning)  # warm up
        spent["attention"] = 0.0
        started = time.perf_counter()
        net.predict(audio, template, conditioning)
        total = time.perf_counter() - started
        share = f", Mesh Attention {spent['attention'] / total:.0%}" if net is model else ""
        print(f"{name}: 60 s of speech in {total:.2f} s{share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
