"""Pick a model's lip-seal gate on aligned recordings it was not trained on.

    python -m core tune-seal --model runs/m --speech ../data/asterisk_heldout --out runs/m_tuned

The gate (core.lips.SealGate) decides where the seal acts from the model's own phone posteriors
and lip gap, so it belongs to the model: a model whose phonetic head is surer, or whose lips come
nearer, wants other thresholds. Each recording is predicted once; every gate on the grid is then
applied to that prediction (as core.pipeline applies it), and the rule is the one the shipped
gates were picked by: the most bilabials sealed with at most `max_tongue_stops` of tongue stops
sealed. The new model folder is the old one with "seal_gate" in its config.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from dataclasses import asdict

import numpy as np

from .errors import OutputError
from .lips import LipContact, LipSeal, SealGate, seal_rate
from .outputs import folder_in_place

# thresholds tried: the posterior ramp's start (its end 0.2 above), and the gap ramp's end (its start 2 mm below)
P_LOW_GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
GAP_HIGH_GRID = (2.5, 3.0, 4.0, 5.0, 6.0)


def gate_grid() -> list[SealGate]:
    return [SealGate(p_low=p, p_high=p + 0.2, gap_low_mm=g - 2.0, gap_high_mm=g)
            for p, g in itertools.product(P_LOW_GRID, GAP_HIGH_GRID)]


def score_gates(model, recordings: list[tuple[str, str]], template: np.ndarray, triangles: np.ndarray,
                gates: list[SealGate], strength: float = 1.0, log=print) -> list[dict]:
    """For each gate: bilabials and tongue stops sealed over the recordings ((wav, .phone.json) pairs)."""
    from .audio import load_audio
    from .evaluate import SealTally, read_phone_alignment
    from .models import Conditioning
    from .pipeline import apply_lip_seal, predict_motion

    contact = LipContact(template, triangles)
    seal = LipSeal(template, triangles)
    tallies = [SealTally() for _ in gates]
    for done, (wav, alignment) in enumerate(recordings, 1):
        phones = read_phone_alignment(alignment)
        prediction = predict_motion(model, load_audio(wav), template, triangles, Conditioning(lip_seal=0.0))
        if prediction.phone_probabilities is None:
            raise OutputError("This model has no phonetic head, so it has no seal gate to tune.")
        for gate, tally in zip(gates, tallies):
            seal.gate = gate
            offsets = apply_lip_seal(prediction, template, seal, strength).vertex_offsets()
            tally.add(contact.excess_mm(template + offsets), phones)
        if done % 20 == 0 or done == len(recordings):
            log(f"{done}/{len(recordings)} recordings")
    return [{"gate": asdict(g), "bilabials": len(t.bilabials), "sealed": seal_rate(t.bilabials),
             "tongue_stops_sealed": seal_rate(t.tongue_stops)} for g, t in zip(gates, tallies)]


def pick_gate(scores: list[dict], max_tongue_stops: float) -> dict:
    """The most seals within the tongue-stop limit (ties: fewer tongue stops sealed)."""
    allowed = [s for s in scores if (s["tongue_stops_sealed"] or 0.0) <= max_tongue_stops]
    if not allowed:
        raise OutputError(f"No gate on the grid keeps tongue stops sealed at or under {max_tongue_stops:.0%}; "
                          "raise --max-tongue-stops, or improve the model's phonetic head (fit-phones).")
    return max(allowed, key=lambda s: (s["sealed"] or 0.0, -(s["tongue_stops_sealed"] or 0.0)))


def _share(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def main_tune_seal(args) -> int:
    from .device import pick_device
    from .flame import load_flame_mesh
    from .models import CONFIG_FILE, TRAINING_RECORD, load_model, read_training_record, resolve_model_dir
    from .phone_fit import aligned_recordings

    if os.path.exists(args.out):
        raise OutputError(f"{args.out} exists; choose a new --out folder for the tuned model.")
    if not 0.0 <= args.max_tongue_stops <= 1.0:
        raise OutputError(f"--max-tongue-stops is a share, from 0 to 1, got {args.max_tongue_stops}.")
    recordings = aligned_recordings(args.speech)
    source = resolve_model_dir(args.model)
    model = load_model(source, pick_device(args.device))
    template, triangles = load_flame_mesh(args.template)
    scores = score_gates(model, recordings, template, triangles, gate_grid(),
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    for s in scores:  # the whole grid first, so a refusal still shows how near each gate came
        print(f"p {s['gate']['p_low']:.2f}-{s['gate']['p_high']:.2f}  gap {s['gate']['gap_low_mm']:g}-"
              f"{s['gate']['gap_high_mm']:g} mm: sealed {_share(s['sealed'])}, tongue stops {_share(s['tongue_stops_sealed'])}",
              file=sys.stderr)
    best = pick_gate(scores, args.max_tongue_stops)
    record = read_training_record(source)
    record["seal_gate"] = {"speech": [os.path.abspath(f) for f in args.speech], "recordings": len(recordings),
                           "max_tongue_stops": args.max_tongue_stops, "picked": best, "grid": scores}
    with folder_in_place(args.out) as partial:
        shutil.copytree(source, partial)
        config_path = os.path.join(partial, CONFIG_FILE)
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
        config["seal_gate"] = best["gate"]
        with open(config_path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
        with open(os.path.join(partial, TRAINING_RECORD), "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)
    print(f"wrote {args.out}: seal gate p {best['gate']['p_low']:.2f}-{best['gate']['p_high']:.2f}, gap "
          f"{best['gate']['gap_low_mm']:g}-{best['gate']['gap_high_mm']:g} mm: {_share(best['sealed'])} of "
          f"{best['bilabials']} bilabials sealed, {_share(best['tongue_stops_sealed'])} of tongue stops", file=sys.stderr)
    return 0
