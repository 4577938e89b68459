"""The training recipe's settings (`--config FILE` of `python -m core train`), without torch.

Each setting's help lives on its field, so `python -m core train --help` documents every key from
the same place the trainer reads them.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass, field, fields

from .errors import ConfigError

# loss weights every architecture reads from its model config; older training configs had them at
# the top level, where only one architecture read them
MOVED_LOSS_WEIGHTS = frozenset({"weight_velocity", "weight_lip_contact"})

# the model a training config without "model" settings (and without `init`) trains
DEFAULT_MODEL = {"architecture": "imitator", "window_frames": 120, "overlap_frames": 30,
                 "align_lookback": 3, "align_lookahead": 3}


def _setting(default, help_text: str, factory=None):
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help_text})
    return field(default=default, metadata={"help": help_text})


@dataclass
class TrainConfig:
    model: dict = _setting(None, "model settings (architecture, sizes, loss weights such as weight_phone), on top of "
                                 "the default Imitator model, or with init on top of that model's own config", dict)
    init: str = _setting("", "a trained model (name or folder) to start from, to fine-tune it; its speaking styles "
                             "are matched by name, new ones start at their mean")
    freeze: list = _setting(None, "weight-name prefixes kept as they are (e.g. \"content_branch\"), so a fine-tune "
                                  "teaches some parts without unlearning the others", list)
    steps: int = _setting(3000, "optimiser steps")
    batch: int = _setting(8, "clips per step")
    crop_frames: int = _setting(120, "frames per training crop")
    # training sentences (2-4 s) are shorter than the windows long audio is decoded in, so without
    # joining the decoder never sees the context lengths and frame positions it meets at inference
    join_clips: bool = _setting(False, "join clips of one speaker back to back until a crop fills crop_frames")
    lr: float = _setting(1e-3, "base learning rate")
    augment: float = _setting(0.7, "probability that a clip's audio is augmented (noise, telephone, reverb, gain)")
    spectral_augment: bool = _setting(False, "log-mel only: also warp the mel axis (+-12%) and mask frequency bands "
                                             "of augmented clips, so the decoder cannot lean on the synthetic voices")
    feature_variants: int = _setting(3, "pretrained encoders: augmented copies per clip whose features are cached "
                                        "(the log-mel encoder runs on fresh augmentation every step)")
    feature_cache: str = _setting("", "folder of cached encoder features (\"\": <run folder>/features)")
    emotions: list = _setting(None, "train only on clips with these emotions ([]: all)", list)
    transcripts: str = _setting("", "for data without phone times (real VOCASET): transcripts, aligned with "
                                    "pocketsphinx")
    meta: dict = _setting(None, "meta-learned start for style adaptation (Reptile over the training speakers) after "
                                "the main training: {\"steps\": N, \"inner_style_steps\": 15, \"inner_lora_steps\": 15, "
                                "\"inner_lora_lr\": 0.003, \"outer_lr\": 0.2, \"rank\": 4, \"clips_per_speaker\": 6}; "
                                "steps 0 turns it off",
                          lambda: {"steps": 0})
    validate_every: int = _setting(500, "steps between validations on the validation speakers and checkpoints")
    # the average does not swing with the last batches the way the raw weights do
    weight_average: float = _setting(0.0, "exponential moving average of the weights for validation, the saved "
                                          "model and the meta start (0: off; 0.995: about the last 200 steps)")
    seed: int = _setting(0, "random seed of the run")
    threads: int = _setting(0, "CPU threads (0: torch's default)")
    device: str = _setting("auto", "where the model trains: auto (the GPU when there is one), cpu, cuda, mps")

    @classmethod
    def from_file(cls, path: str | None) -> "TrainConfig":
        if not path:
            return cls()
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read training config {path}: {exc}. Give a JSON object of settings "
                              "(python -m core train --help lists them).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a training config is a JSON object of settings, not a {type(data).__name__}.")
        base = cls()
        model = dict(data.pop("model", {}) or {})
        for name in MOVED_LOSS_WEIGHTS.intersection(data):
            # older configs set these at the top level; loss weights now live in "model"
            value = data.pop(name)
            if name in model and model[name] != value:
                raise ConfigError(f"{path}: {name} is set twice ({value} at the top level, {model[name]} in "
                                  f"\"model\"); keep the one in \"model\"")
            model[name] = value
        unknown = set(data) - set(asdict(base))
        if unknown:
            raise ConfigError(f"{path}: unknown training settings {sorted(unknown)}; known: {sorted(asdict(base))}")
        return cls(**{**asdict(base), **data, "model": model})


def settings_help(width: int = 100) -> str:
    """Every training-config key with its default and meaning, for `train --help`."""
    lines = ["training config keys (a JSON object; every key is optional):"]
    for setting in fields(TrainConfig):
        default = setting.default_factory() if callable(setting.default_factory) else setting.default
        text = f"{setting.name} (default {json.dumps(default)}): {setting.metadata['help']}"
        lines.extend(textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)
