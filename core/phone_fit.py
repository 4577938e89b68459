"""Teach a model's phonetic head real voices: `python -m core fit-phones`.

The shipped models learn motion from synthetic speech only, and their phonetic head (a linear
read-out of the viseme features, trained beside the motion) hears real voices poorly: on real
speech its /p b m/ posterior is often below 0.1, which is what keeps the lip seal (core.lips) from
telling /p b m/ from /t d n/. Real speech with phone times needs no face capture, so this refits
that head alone on real recordings (folders of .wav with .phone.json alignments, as
tools/real_speech.py prepares), optionally with perturbed copies (pitch, speed, noise, reverb,
telephone: core.corpus.augment) so one speaker stands for more. Everything else is frozen, so the
motion is bit-for-bit the model's; only the seal's hearing changes.

    python -m core fit-phones --model default --speech DIR [DIR ...] --out MODEL_DIR [--lip-seal 1]
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ModelError, OutputError


@dataclass
class PhoneFitOptions:
    steps: int = 500  # full-batch Adam steps over every frame
    lr: float = 1e-2
    seed: int = 0
    augment_copies: int = 0  # perturbed copies of each recording (timing kept in sync)
    holdout: float = 0.0  # share of recordings kept out of the fit and reported on
    weight_decay: float = 0.0


def aligned_recordings(folders: list[str]) -> list[tuple[str, str]]:
    """(wav, alignment) pairs of every .wav that has a .phone.json beside it, sorted."""
    pairs = []
    for folder in folders:
        if not os.path.isdir(folder):
            raise OutputError(f"Speech folder not found: {folder}. Prepare one with tools/real_speech.py --out DIR.")
        for wav in sorted(glob.glob(os.path.join(folder, "*.wav"))):
            alignment = wav[: -len(".wav")] + ".phone.json"
            if os.path.isfile(alignment):
                pairs.append((wav, alignment))
    if not pairs:
        raise OutputError(f"No .wav with a .phone.json alignment in {', '.join(folders)}; "
                          "prepare real speech with tools/real_speech.py --out DIR.")
    return pairs


def frames_of(model, audio: np.ndarray, phones, device) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(viseme features (N, d), phone classes (N,)) of one recording, window by window as the
    model decodes it, so the head is fitted on the features it reads at inference."""
    import torch

    from .phones import frame_phone_labels

    with torch.no_grad():
        features = model.speech_features(audio, device)
        n_frames = features.shape[1]
        labels = torch.from_numpy(frame_phone_labels(phones, n_frames, model.fps))
        xs, ys = [], []
        for start, end in model.decoding_windows(n_frames):
            xs.append(model.viseme_features(features[:, start:end])[0].cpu())
            ys.append(labels[start:end])
    return torch.cat(xs), torch.cat(ys)


def split_holdout(pairs: list, holdout: float, seed: int) -> tuple[list, list]:
    """(fit, held out) recordings: a seeded random `holdout` share kept out."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_held = int(round(len(pairs) * holdout))
    held = set(order[:n_held].tolist())
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def fit_phone_head(model, pairs: list[tuple[str, str]], options: PhoneFitOptions, log=print) -> dict:
    """Refit `model.phone_head` in place on the recordings; returns a report (frames, losses, accuracy)."""
    import torch

    from .audio import load_audio
    from .corpus.augment import augment_clip
    from .corpus.speech import Phone
    from .evaluate import read_phone_alignment
    from .phones import IGNORED

    if getattr(model, "phone_head", None) is None:
        raise ModelError(f"Model '{model.name}' has no phonetic head to refit (train it with \"weight_phone\" > 0).")
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    device = next(model.parameters()).device
    model.eval()
    fit, held = split_holdout(pairs, options.holdout, options.seed)
    started = time.time()

    def frames(subset: list, copies: int):
        xs, ys = [], []
        for i, (wav, alignment) in enumerate(subset):
            audio, phones = load_audio(wav), [Phone(*p) for p in read_phone_alignment(alignment)]
            for copy in range(copies + 1):
                heard, timed = (audio, phones) if copy == 0 else augment_clip(audio, phones, rng)[:2]
                x, y = frames_of(model, heard, [(p.phone, p.start, p.end) for p in timed], device)
                xs.append(x)
                ys.append(y)
            if (i + 1) % 50 == 0:
                log(f"features {i + 1}/{len(subset)} recordings")
        return (torch.cat(xs), torch.cat(ys)) if xs else (None, None)

    x_fit, y_fit = frames(fit, options.augment_copies)
    x_held, y_held = frames(held, 0)
    head = model.phone_head
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(head.parameters(), lr=options.lr, weight_decay=options.weight_decay)

    def accuracy(x, y) -> float:
        with torch.no_grad():
            keep = y != IGNORED
            return float((head(x).argmax(-1)[keep] == y[keep]).float().mean())

    report = {"recordings": len(fit), "held_out_recordings": len(held), "frames": int(len(y_fit)),
              "accuracy_before": accuracy(x_fit, y_fit)}
    if x_held is not None:
        report["held_out_accuracy_before"] = accuracy(x_held, y_held)
    for step in range(options.steps):
        loss = torch.nn.functional.cross_entropy(head(x_fit), y_fit, ignore_index=IGNORED)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 0 or step == options.steps - 1:
            log(f"step {step + 1}/{options.steps}: loss {loss.item():.3f}")
    head.requires_grad_(False)
    report.update(loss=float(loss.item()), accuracy=accuracy(x_fit, y_fit), seconds=round(time.time() - started, 1))
    if x_held is not None:
        report["held_out_accuracy"] = accuracy(x_held, y_held)
    report["held_out"] = [os.path.basename(w) for w, _ in held]
    return report


def main_fit_phones(args) -> int:
    from .device import pick_device
    from .models import CONFIG_FILE, TRAINING_RECORD, load_model, read_training_record, resolve_model_dir, save_model

    if os.path.exists(os.path.join(args.out, CONFIG_FILE)) and not args.overwrite:
        raise OutputError(f"{args.out} already holds a model; choose another --out, or pass --overwrite.")
    if args.lip_seal is not None and not 0.0 <= args.lip_seal <= 1.0:
        raise OutputError(f"--lip-seal takes 0 (off) to 1, got {args.lip_seal}.")
    if not 0.0 <= args.holdout < 1.0:
        raise OutputError(f"--holdout is a share of the recordings, from 0 to below 1, got {args.holdout}.")
    pairs = aligned_recordings(args.speech)
    source = resolve_model_dir(args.model)
    model = load_model(source, pick_device(args.device))
    options = PhoneFitOptions(steps=args.steps, lr=args.lr, seed=args.seed, augment_copies=args.augment_copies,
                              holdout=args.holdout)
    report = fit_phone_head(model, pairs, options, log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.name:
        model.config["name"] = args.name
    if args.lip_seal is not None:
        model.config["lip_seal"] = float(args.lip_seal)
    save_model(model.to("cpu"), args.out)
    adaptation = os.path.join(source, "adaptation.safetensors")  # the motion is unchanged: its adaptation start still fits
    if os.path.isfile(adaptation):
        shutil.copyfile(adaptation, os.path.join(args.out, "adaptation.safetensors"))
    record = {**read_training_record(source),
              "fit_phones": {"from": os.path.basename(os.path.normpath(source)), "speech": args.speech,
                             "options": asdict(options), **report}}
    with open(os.path.join(args.out, TRAINING_RECORD), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    print(f"wrote {args.out}: phonetic head refitted on {report['recordings']} recordings ({report['frames']} frames); "
          f"frame accuracy {report['accuracy_before']:.2f} -> {report['accuracy']:.2f}"
          + (f", held out {report['held_out_accuracy_before']:.2f} -> {report['held_out_accuracy']:.2f}"
             if "held_out_accuracy" in report else ""), file=sys.stderr)
    return 0
