"""Average the weights of several fine-tunes of one model into one model (a "model soup").

    python -m core average-models --models runs/a/model runs/b/model runs/c/model --out runs/soup/model

Fine-tunes of one start that differ only in their seed land near each other, and their weight
average behaves like their ensemble at the cost of one model: on the recorded-speech fine-tune the
three seeds sealed 88-95% of real bilabials, their average sits between them with less luck in it
(BENCHMARKS "Lip seal"). The models must share their config (sizes, encoder, styles) and their
weights' names and shapes. A meta-learned adaptation start belongs to the weights it was learned
on, so none is copied: learn one for the average with `train` (`"init"` the average, `"steps": 0`,
`"meta"` as usual).
"""

from __future__ import annotations

import json
import os
import shutil

from .errors import OutputError
from .outputs import folder_in_place

# config keys that name or describe a run rather than the network: they may differ between the models
RUN_KEYS = ("name", "seal_gate", "lip_seal")


def _network_config(folder: str) -> dict:
    from .models import read_model_config

    return {k: v for k, v in read_model_config(folder).items() if k not in RUN_KEYS}


def average_models(sources: list[str], out: str) -> dict:
    """Write the weight average of `sources` (model names or folders) to the new folder `out`;
    returns the record written into its training.json under "averaged"."""
    import torch
    from safetensors.torch import load_file, save_file

    from .models import TRAINING_RECORD, WEIGHTS_FILE, read_training_record, resolve_model_dir

    if len(sources) < 2:
        raise OutputError("Give at least two models to average (--models A B ...).")
    if os.path.exists(out):
        raise OutputError(f"{out} exists; choose a new --out folder for the averaged model.")
    folders = [resolve_model_dir(s) for s in sources]
    if len(set(map(os.path.realpath, folders))) < len(folders):
        raise OutputError("The same model is named twice; average different fine-tunes.")
    first = _network_config(folders[0])
    for folder in folders[1:]:
        other = _network_config(folder)
        differing = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
        if differing:
            raise OutputError(f"{folder} is not the same network as {folders[0]} (config differs in {differing}); "
                              "only fine-tunes of one model, trained with the same settings, can be averaged.")
    states = [load_file(os.path.join(f, WEIGHTS_FILE)) for f in folders]
    for folder, state in zip(folders[1:], states[1:]):
        if state.keys() != states[0].keys() or any(state[k].shape != states[0][k].shape for k in state):
            raise OutputError(f"{folder}'s weights do not match {folders[0]}'s names and shapes; "
                              "only fine-tunes of one model can be averaged.")
    averaged = {}
    for key, first_value in states[0].items():
        if first_value.is_floating_point():
            averaged[key] = (sum(s[key].double() for s in states) / len(states)).to(first_value.dtype)
        elif all(torch.equal(s[key], first_value) for s in states):
            averaged[key] = first_value
        else:
            raise OutputError(f"Weight {key} is a count or an index that differs between the models; they cannot be averaged.")
    trainings = [read_training_record(f) for f in folders]
    record = {"models": [os.path.abspath(f) for f in folders],
              "trainings": [{k: t.get(k) for k in ("data", "config", "history")} for t in trainings if t]}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with folder_in_place(out) as partial:
        os.makedirs(partial)
        shutil.copy2(os.path.join(folders[0], "config.json"), os.path.join(partial, "config.json"))
        save_file({k: v.contiguous() for k, v in averaged.items()}, os.path.join(partial, WEIGHTS_FILE))
        with open(os.path.join(partial, TRAINING_RECORD), "w", encoding="utf-8") as handle:
            json.dump({"averaged": record}, handle, indent=1)
    return record
