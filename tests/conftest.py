"""Shared fixtures: paths to ../shared, a tiny randomly initialised model, audio files made on the fly."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))  # `core` is importable as a top-level package, as `python -m core` uses it

LIBRIVOX_CLIP = "audio/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"  # 2.99 s, 16 kHz
LONGER_CLIP = "audio/librivox/sense_and_sensibility_01_austen_64kb-0870.wav"  # 7.1 s


def shared_path(relative: str) -> Path:
    """A file of ../shared, or a skip that says why (the folder lives beside the checkout, not in it)."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"needs ../shared/{relative} (FLAME meshes and real speech are not in the repository; "
                    "put the shared/ folder beside the checkout)")
    return path


def accelerator_or_skip(device: str) -> None:
    """Skip, saying so, where this machine has no `device` ('cuda' or 'mps')."""
    from core.device import accelerators

    if device not in accelerators():
        pytest.skip(f"no {device} device on this machine")


TINY_CONFIG = {
    "architecture": "imitator",
    "name": "tiny",
    "d_model": 16,
    "n_heads": 2,
    "ffn_dim": 32,
    "mlp_hidden": 16,
    "n_basis": 6,
    "styles": ["alice", "bob"],
    "window_frames": 90,
    "overlap_frames": 20,
}


def make_tiny_model(seed: int = 0, **overrides):
    """An untrained tiny model whose basis moves the face by a few millimetres (zero-init would not move it)."""
    import torch

    from core.models import build_model

    torch.manual_seed(seed)
    model = build_model({**TINY_CONFIG, **overrides})
    torch.nn.init.normal_(model.deformation_basis.weight, std=2e-3)
    torch.nn.init.normal_(model.deformation_basis.bias, std=5e-4)
    return model


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """A weights folder whose 'default' is the tiny model; TALKING_HEAD_WEIGHTS points at it."""
    from core.models import save_model

    folder = tmp_path_factory.mktemp("weights")
    save_model(make_tiny_model(), str(folder / "default"))
    os.environ["TALKING_HEAD_WEIGHTS"] = str(folder)
    return folder


TINY_DIFFUSION = {"architecture": "gldit", "name": "tiny_diffusion", "levels": 2, "graph_channels": [4, 8, 8],
                  "latent_dim": 8, "code_groups": 2, "codebook_size": 32, "n_basis": 8, "d_model": 16, "n_heads": 2, "n_layers": 1,
                  "sampling_steps": 4, "window_frames": 60, "overlap_frames": 16}


@pytest.fixture(scope="session")
def diffusion_model(weights_dir) -> str:
    """An untrained tiny GLDiTalker saved as 'tiny_diffusion' beside the tiny default: its takes differ by seed."""
    import torch

    from core.models import build_model, save_model

    shared_path("flame/FLAME_sample.ply")  # building the mesh pyramid needs FLAME's connectivity
    torch.manual_seed(0)
    model = build_model(TINY_DIFFUSION)
    torch.nn.init.normal_(model.vqvae.basis.weight, std=2e-3)  # untrained bases are zero: make takes visible
    # untrained, the denoiser's output barely depends on its noise, so nearby seeds would pick the
    # same codes; a trained one follows the noise (bench_diffusion measures the diversity)
    torch.nn.init.normal_(model.denoiser.latent_in.weight, std=1.0)
    save_model(model, str(weights_dir / "tiny_diffusion"))
    return "tiny_diffusion"


@pytest.fixture(scope="session")
def flame_mesh() -> tuple[np.ndarray, np.ndarray]:
    from core.mesh_io import read_mesh

    return read_mesh(str(shared_path("flame/FLAME_sample.ply")))


@pytest.fixture(scope="session")
def speech_path() -> Path:
    return shared_path(LIBRIVOX_CLIP)


@pytest.fixture(scope="session")
def audio_files(tmp_path_factory, speech_path) -> dict[str, Path]:
    """Real speech in awkward formats, and broken files, for the bad-input tests."""
    import librosa
    import soundfile

    folder = tmp_path_factory.mktemp("audio")
    speech, _ = librosa.load(str(speech_path), sr=48000, mono=True)
    stereo = np.stack([speech, 0.5 * speech], axis=1)
    files = {
        "speech": speech_path,
        "stereo48k": folder / "stereo_48k.wav",
        "flac": folder / "speech.flac",
        "ogg": folder / "speech.ogg",
        "mp3": folder / "speech.mp3",
        "silent": folder / "silent.wav",
        "corrupt": folder / "corrupt.wav",
        "empty": folder / "empty.wav",
        "missing": folder / "does_not_exist.wav",
    }
    soundfile.write(files["stereo48k"], stereo, 48000)
    soundfile.write(files["flac"], librosa.resample(speech, orig_sr=48000, target_sr=22050), 22050)
    soundfile.write(files["ogg"], speech, 48000, format="OGG", subtype="VORBIS")
    soundfile.write(files["mp3"], librosa.resample(speech, orig_sr=48000, target_sr=44100), 44100, format="MP3")
    soundfile.write(files["silent"], np.zeros(32000, dtype=np.float32), 16000)
    files["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(300))
    files["empty"].write_bytes(b"")
    return files


# The tiny synthetic corpus (3 speakers x 4 sentences, one augmented copy of the training clips):
# generated once per test session and shared by the corpus, training, adaptation and emotion tests.
def make_corpus(folder, speakers=3, sentences=4, seed=0, **options):
    import glob

    from core.corpus.generate import generate_corpus

    heads = sorted(glob.glob(str(shared_path("flame") / "*.ply")))
    eyelids = np.load(shared_path("flame/l_eyelid.npy")) + np.load(shared_path("flame/r_eyelid.npy"))
    return generate_corpus(str(folder), speakers, sentences, seed, heads, eyelids.astype(np.float32), workers=2,
                           progress=lambda m: None, augment_copies=1, **options)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    if shutil.which("festival") is None or shutil.which("sox") is None:
        pytest.skip("needs festival and sox (.ci/run installs them)")
    folder = tmp_path_factory.mktemp("corpus")
    make_corpus(folder)
    return folder
