"""Move a synthetic corpus to a training machine in a few MB instead of GB.

    .venv/bin/python tools/corpus_pack.py pack --data corpus/ --out pack/ [--seed 0] [--splits train,val]
    python tools/corpus_pack.py unpack --pack pack/ --out corpus/ --flame FLAME.ply --eyelids L.npy R.npy

The vertex files are 98% of a corpus, and they are a deterministic function of each clip's
metadata, its speaker's template and the corpus seed (core.corpus.generate.motion_from_meta).
So a pack holds the metadata, the templates and the audio (Opus), and `unpack` rebuilds the
VOCASET layout with the same rig. Machines without festival/espeak-ng (a rented GPU, say) can
then train on the corpus. Augmented copies are left out: training augments audio on the fly.
The Opus audio differs slightly from the original wav; motion matches it to well under 0.01 mm
(checked on the first clip when packing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MANIFEST = "pack.json"
REBUILD_TOLERANCE_M = 1e-5


def _originals(data: str, splits: list[str]) -> list[str]:
    with open(os.path.join(data, "splits.json"), encoding="utf-8") as handle:
        listed = json.load(handle)
    subjects = {s for split in splits for s in listed[split]}
    stems = []
    for name in sorted(os.listdir(os.path.join(data, "meta"))):
        stem = name[:-5]
        if stem.rpartition("_")[0] in subjects and not stem.rpartition("_")[2].replace("sentence", "").count("a"):
            stems.append(stem)
    return stems


def _rig(template: np.ndarray, triangles: np.ndarray, eyelids: np.ndarray | None):
    from core.corpus.articulation import FaceRig

    return FaceRig(template, triangles, eyelids)


def rebuild(stem: str, meta: dict, template: np.ndarray, triangles: np.ndarray, eyelids, n_frames: int,
            seed: int, rigs: dict = {}) -> np.ndarray:  # noqa: B006 (a per-process rig cache on purpose)
    from core.corpus.generate import motion_from_meta

    subject = meta["subject"]
    if subject not in rigs:
        rigs.clear()  # clips come sorted by speaker: one rig at a time
        rigs[subject] = _rig(template, triangles, eyelids)
    return motion_from_meta(rigs[subject], meta, n_frames, seed)


def pack(data: str, out: str, seed: int, splits: list[str], flame: str, eyelid_files: list[str]) -> None:
    import soundfile

    from core.mesh_io import read_mesh
    from core.safe_pickle import load_arrays_pickle

    if os.path.exists(out):
        raise SystemExit(f"{out} exists; choose a new folder")
    stems = _originals(data, splits)
    os.makedirs(os.path.join(out, "audio"))
    os.makedirs(os.path.join(out, "meta"))
    templates = load_arrays_pickle(os.path.join(data, "templates.pkl"), "corpus templates")
    triangles = read_mesh(flame)[1]
    eyelids = sum(np.load(p).astype(np.float32) for p in eyelid_files) if eyelid_files else None

    # the seed must reproduce the corpus: check on the first clip before packing anything
    with open(os.path.join(data, "meta", stems[0] + ".json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    truth = np.load(os.path.join(data, "vertices_npy", stems[0] + ".npy")).reshape(-1, 5023, 3)
    rebuilt = rebuild(stems[0], meta, templates[meta["subject"]], triangles, eyelids, len(truth), seed)
    error = float(np.abs(rebuilt - truth).max())
    if error > REBUILD_TOLERANCE_M:
        raise SystemExit(f"motion rebuilt with seed {seed} differs by {error * 1000:.3f} mm: wrong --seed, "
                         "FLAME mesh or eyelids")
    frames = {}
    for i, stem in enumerate(stems, 1):
        audio, rate = soundfile.read(os.path.join(data, "wav", stem + ".wav"), dtype="float32")
        soundfile.write(os.path.join(out, "audio", stem + ".ogg"), audio, rate, format="OGG", subtype="OPUS")
        shutil.copy(os.path.join(data, "meta", stem + ".json"), os.path.join(out, "meta", stem + ".json"))
        frames[stem] = int(np.load(os.path.join(data, "vertices_npy", stem + ".npy"), mmap_mode="r").shape[0])
        if i % 200 == 0:
            print(f"packed {i}/{len(stems)}", file=sys.stderr)
    shutil.copy(os.path.join(data, "templates.pkl"), os.path.join(out, "templates.pkl"))
    shutil.copy(os.path.join(data, "splits.json"), os.path.join(out, "splits.json"))
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as handle:
        json.dump({"seed": seed, "frames": frames, "checked_error_m": error}, handle)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"packed {len(stems)} clips into {out}: {size / 2**20:.1f} MB (rebuild error {error * 1000:.4f} mm)",
          file=sys.stderr)


def _unpack_speaker(job: tuple) -> int:
    import soundfile

    pack_dir, out, stems, template, triangles, eyelids, frames, seed = job
    for stem in stems:
        with open(os.path.join(pack_dir, "meta", stem + ".json"), encoding="utf-8") as handle:
            meta = json.load(handle)
        audio, rate = soundfile.read(os.path.join(pack_dir, "audio", stem + ".ogg"), dtype="float32")
        soundfile.write(os.path.join(out, "wav", stem + ".wav"), audio, rate, subtype="PCM_16")
        vertices = rebuild(stem, meta, template, triangles, eyelids, frames[stem], seed)
        np.save(os.path.join(out, "vertices_npy", stem + ".npy"), vertices.reshape(len(vertices), -1).astype(np.float32))
        shutil.copy(os.path.join(pack_dir, "meta", stem + ".json"), os.path.join(out, "meta", stem + ".json"))
    return len(stems)


def unpack(pack_dir: str, out: str, flame: str, eyelid_files: list[str], workers: int) -> None:
    from core.mesh_io import read_mesh
    from core.safe_pickle import load_arrays_pickle

    with open(os.path.join(pack_dir, MANIFEST), encoding="utf-8") as handle:
        manifest = json.load(handle)
    templates = load_arrays_pickle(os.path.join(pack_dir, "templates.pkl"), "packed templates")
    triangles = read_mesh(flame)[1]
    eyelids = sum(np.load(p).astype(np.float32) for p in eyelid_files) if eyelid_files else None
    for sub in ("wav", "vertices_npy", "meta"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    shutil.copy(os.path.join(pack_dir, "templates.pkl"), os.path.join(out, "templates.pkl"))
    shutil.copy(os.path.join(pack_dir, "splits.json"), os.path.join(out, "splits.json"))
    by_speaker: dict[str, list[str]] = {}
    for stem in sorted(manifest["frames"]):
        by_speaker.setdefault(stem.rpartition("_")[0], []).append(stem)
    jobs = [(pack_dir, out, stems, templates[s], triangles, eyelids, manifest["frames"], int(manifest["seed"]))
            for s, stems in by_speaker.items()]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        done = sum(pool.map(_unpack_speaker, jobs))
    print(f"unpacked {done} clips of {len(jobs)} speakers into {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0, help="the seed the corpus was generated with")
    p.add_argument("--splits", default="train,val")
    u = commands.add_parser("unpack")
    u.add_argument("--pack", required=True)
    u.add_argument("--out", required=True)
    u.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    for command in (p, u):
        command.add_argument("--flame", required=True, help="a FLAME .ply (its triangles)")
        command.add_argument("--eyelids", nargs="*", default=[], help="the eyelid fields the corpus was made with")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.data, args.out, args.seed, args.splits.split(","), args.flame, args.eyelids)
    else:
        unpack(args.pack, args.out, args.flame, args.eyelids, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
