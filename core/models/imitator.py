"""Imitator's decoder (ICCV 2023): a style-agnostic viseme transformer, a style embedding and a
motion decoder ending in a linear deformation basis.

offsets = mean + MLP(viseme + style) @ basis, so the model's output is exactly a set of shape keys
(the basis) driven by per-frame weights (the coefficients). Two decoding modes share the weights:
"autoregressive" feeds each frame's viseme feature back as the next input (as the paper does);
"parallel" feeds the audio features in directly, decoding a whole window in one pass.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..encoders import build_encoder, resample_features
from ..windows import crossfade_into, overlapped_windows
from ..errors import Cancelled, ModelError
from ..phones import IGNORED, PHONE_CLASSES
from .base import CancelCheck, Conditioning, MotionPrediction, ProgressCallback


def lip_error_per_frame(pred_mm: torch.Tensor, target_mm: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
    """Squared lip-vertex error (B, T, V, 3 in mm; `lips` (B, V) mask), mean over the lips: (B, T)."""
    per_frame = ((pred_mm - target_mm) ** 2).sum(-1)
    return (per_frame * lips[:, None, :]).sum(-1) / lips.sum(-1, keepdim=True)


def frame_weighted(per_frame: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of a (B, T) per-frame error under (B, T) frame weights."""
    return (per_frame * weights).sum() / (weights.sum() + 1e-6)


def lip_contact_loss(pred_mm: torch.Tensor, target_mm: torch.Tensor, lips: torch.Tensor, contact: torch.Tensor
                     ) -> torch.Tensor:
    """Imitator's lip contact loss: the lip-vertex error averaged over the frames around bilabial
    closures (`contact`, B x T weights)."""
    return frame_weighted(lip_error_per_frame(pred_mm, target_mm, lips), contact)


SEAL_FRAMES = 0.8  # contact weight above which a frame is at the closure (the teacher's closest frame +-1)


def lip_seal_loss(pred_mm: torch.Tensor, batch: dict) -> torch.Tensor:
    """The seal term: at bilabial closure frames, how far each upper-lip edge vertex is from the
    lower edge beyond its distance at rest (squared, mm, averaged along the edge). The contact loss
    asks the lips to be near the teacher's; this asks them to touch, so a model a millimetre short of
    the teacher is not let off. Every edge vertex counts, not only the closest pair: with the
    smallest distance alone a model learns to pinch one corner shut and keep the middle open."""
    n_frames = pred_mm.shape[1]

    def edge_positions(index: torch.Tensor, rest_mm: torch.Tensor) -> torch.Tensor:  # (B, T, E, 3)
        moved = torch.gather(pred_mm, 2, index[:, None, :, None].expand(-1, n_frames, -1, 3))
        return rest_mm[:, None] + moved

    def nearest_lower(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:  # (..., U)
        return torch.sqrt(((upper[..., :, None, :] - lower[..., None, :, :]) ** 2).sum(-1) + 1e-6).amin(-1)

    upper = edge_positions(batch["edge_upper"], batch["edge_upper_rest_mm"])
    lower = edge_positions(batch["edge_lower"], batch["edge_lower_rest_mm"])
    at_rest = nearest_lower(batch["edge_upper_rest_mm"], batch["edge_lower_rest_mm"])  # (B, U)
    excess = torch.relu(nearest_lower(upper, lower) - at_rest[:, None])
    closure = (batch["contact"] > SEAL_FRAMES).to(pred_mm.dtype)
    return frame_weighted((excess ** 2).mean(-1), closure)


DEFAULTS = {
    "architecture": "imitator",
    "fps": 30.0,
    "sample_rate": 16000,
    "n_vertices": 5023,
    "encoder": {"type": "logmel", "n_mels": 80},
    "d_model": 64,
    "n_heads": 4,
    "ffn_dim": 128,
    "n_layers": 1,
    "mlp_hidden": 128,
    "n_basis": 64,
    "styles": ["default"],
    "mode": "parallel",
    # frames each side of the aligned audio frame a motion frame may attend to (0 = diagonal, as Imitator)
    "align_lookback": 0,
    "align_lookahead": 0,
    # 1-D convolutions (kernel 5) over the audio features before the decoder: the local acoustic context
    # that wav2vec features carry and plain log-mel frames lack; 0 = Imitator's linear projection
    "audio_conv_layers": 0,
    # training loss weights (Imitator's): velocity, and lip contact at bilabial closures
    "weight_velocity": 10.0,
    "weight_lip_contact": 5.0,
    # the seal term (lip_seal_loss): edge gap over rest at bilabial closures; 0 = off
    "weight_lip_seal": 0.0,
    # phonetic auxiliary loss: a linear head recognises the phone spoken at each frame from the
    # style-agnostic viseme features (cross-entropy, this weight); 0 = off and no head. It asks the
    # features to carry what was said rather than how a training voice sounds
    "weight_phone": 0.0,
    # speaker adversary (domain-adversarial training, Ganin & Lempitsky 2015): a linear head guesses
    # the training speaker from each frame's viseme features, and the reversed gradient, scaled by
    # this weight, pushes the features to hide the voice; 0 = off and no head. Aimed at real voices,
    # which the decoder otherwise reads through the 22 synthetic ones it knows
    "weight_speaker_adversary": 0.0,
    # dropout while training, on the projected audio features and inside the viseme transformer: a
    # regulariser against reading the few synthetic voices' fine detail; 0 = off (inference never drops)
    "dropout": 0.0,
    # long audio is decoded in windows (frames at the motion rate) that overlap and cross-fade
    "window_frames": 600,
    "overlap_frames": 60,
}


class ReverseGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -scale (the speaker adversary's reversal)."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def sinusoidal_encoding(n_frames: int, dim: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(n_frames, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_frames, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


def alignment_mask(n_frames: int, lookback: int, lookahead: int, device: torch.device) -> torch.Tensor:
    """Additive cross-attention mask: motion frame t sees audio frames t-lookback .. t+lookahead."""
    idx = torch.arange(n_frames, device=device)
    offset = idx.unsqueeze(0) - idx.unsqueeze(1)  # audio index minus motion index
    allowed = (offset >= -lookback) & (offset <= lookahead)
    return torch.zeros(n_frames, n_frames, device=device).masked_fill(~allowed, float("-inf"))


class ImitatorModel(nn.Module):
    """Speech features -> viseme features -> style -> basis coefficients -> FLAME offsets."""

    style_parameters = ("style_embedding.weight",)
    emotion_control = False
    # training-only weights: a fine-tune may add them (they start fresh) or drop them
    optional_parameters = ("phone_head.", "speaker_head.")

    def __init__(self, config: dict):
        super().__init__()
        self.config = {**DEFAULTS, **config}
        cfg = self.config
        self.name = cfg.get("name", "imitator")
        self.fps = float(cfg["fps"])
        self.sample_rate = int(cfg["sample_rate"])
        self.styles = list(cfg["styles"])
        self.n_vertices = int(cfg["n_vertices"])
        self.encoder = build_encoder(cfg["encoder"])
        d = int(cfg["d_model"])

        self.audio_projection = nn.Linear(self.encoder.feature_dim, d)
        self.audio_context = nn.ModuleList(
            nn.Conv1d(d, d, kernel_size=5, padding=2) for _ in range(int(cfg["audio_conv_layers"])))
        self.feature_dropout = nn.Dropout(float(cfg["dropout"]))
        layer = nn.TransformerDecoderLayer(d, int(cfg["n_heads"]), int(cfg["ffn_dim"]), dropout=float(cfg["dropout"]),
                                           batch_first=True)
        self.viseme_decoder = nn.TransformerDecoder(layer, int(cfg["n_layers"]))
        self.feedback = nn.Linear(d, d)  # autoregressive mode: previous viseme feature -> next input
        self.style_embedding = nn.Linear(len(self.styles), d, bias=False)
        self.motion_mlp = nn.Sequential(
            nn.Linear(d, int(cfg["mlp_hidden"])), nn.GELU(), nn.Linear(int(cfg["mlp_hidden"]), int(cfg["n_basis"]))
        )
        self.deformation_basis = nn.Linear(int(cfg["n_basis"]), self.n_vertices * 3)
        # zero-initialised as in the paper: training starts from the template
        nn.init.zeros_(self.deformation_basis.weight)
        nn.init.zeros_(self.deformation_basis.bias)
        if float(cfg["weight_phone"]) > 0:
            self.phone_head = nn.Linear(d, len(PHONE_CLASSES))
        if float(cfg["weight_speaker_adversary"]) > 0:
            self.speaker_head = nn.Linear(d, len(self.styles))

    # ---- pieces -------------------------------------------------------------------------------
    def style_vector(self, style: str | None, device: torch.device) -> torch.Tensor:
        """One-hot of a known style; None gives the average of all training styles."""
        if style is None:
            onehot = torch.full((len(self.styles),), 1.0 / len(self.styles), device=device)
        elif style in self.styles:
            onehot = torch.zeros(len(self.styles), device=device)
            onehot[self.styles.index(style)] = 1.0
        else:
            raise ModelError(
                f"Model '{self.name}' has no speaking style '{style}'. Known styles: {', '.join(self.styles)}."
            )
        return self.style_embedding(onehot)

    def viseme_features(self, audio_features: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """(B, T, D_audio) at the motion rate -> (B, T, d) style-agnostic viseme features."""
        mode = mode or self.config["mode"]
        batch, n_frames, _ = audio_features.shape
        device = audio_features.device
        memory = self.audio_projection(audio_features)
        for conv in self.audio_context:  # residual, so an untrained stack starts as the identity-ish path
            memory = memory + torch.nn.functional.gelu(conv(memory.transpose(1, 2))).transpose(1, 2)
        memory = self.feature_dropout(memory)
        positions = sinusoidal_encoding(n_frames, memory.shape[-1], device)
        causal = nn.Transformer.generate_square_subsequent_mask(n_frames, device=device)
        align = alignment_mask(n_frames, int(self.config["align_lookback"]), int(self.config["align_lookahead"]), device)
        if mode == "parallel":
            return self.viseme_decoder(memory + positions, memory, tgt_mask=causal, memory_mask=align)
        if mode != "autoregressive":
            raise ModelError(f"Unknown decoding mode '{mode}'; use 'parallel' or 'autoregressive'.")
        inputs = torch.zeros(batch, 1, memory.shape[-1], device=device)  # start token
        for t in range(n_frames):
            out = self.viseme_decoder(
                inputs + positions[: t + 1], memory, tgt_mask=causal[: t + 1, : t + 1], memory_mask=align[: t + 1]
            )
            inputs = torch.cat([inputs, self.feedback(out[:, -1:])], dim=1)
        return out

    def adapted_parts(self, conditioning: Conditioning, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(style vector, basis weight (V*3, K)) for the conditioning: a training style, or an
        adapted style file's embedding and low-rank update of the basis."""
        weight = self.deformation_basis.weight
        style = conditioning.adapted_style
        if style is None:
            return self.style_vector(conditioning.style, device), weight
        from ..styles import check_style_fits

        check_style_fits(style, self)
        vector = torch.from_numpy(np.asarray(style.tensors["style"], dtype=np.float32)).to(device)
        if "basis_lora_a" in style.tensors:
            lora_a = torch.from_numpy(np.asarray(style.tensors["basis_lora_a"], dtype=np.float32)).to(device)
            lora_b = torch.from_numpy(np.asarray(style.tensors["basis_lora_b"], dtype=np.float32)).to(device)
            weight = weight + lora_b @ lora_a
        if "basis_delta" in style.tensors:  # a full-basis fine-tune (a measurement baseline)
            weight = weight + torch.from_numpy(np.asarray(style.tensors["basis_delta"], dtype=np.float32)).to(device)
        return vector, weight

    def coefficients(self, visemes: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.motion_mlp(visemes + style)

    def offsets_from_coefficients(self, coefficients: torch.Tensor) -> torch.Tensor:
        return self.deformation_basis(coefficients).reshape(*coefficients.shape[:-1], self.n_vertices, 3)

    def forward(self, audio_features: torch.Tensor, style_onehot: torch.Tensor, mode: str | None = None) -> torch.Tensor:
        """Training path: (B, T, D_audio) features at the motion rate and (B, n_styles) -> (B, T, V, 3)."""
        visemes = self.viseme_features(audio_features, mode)
        style = self.style_embedding(style_onehot).unsqueeze(1)
        return self.offsets_from_coefficients(self.coefficients(visemes, style))

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Imitator's losses: vertex MSE, velocity and lip contact at bilabial closures (mm), plus the
        phonetic auxiliary loss when the config weights it."""
        cfg = self.config
        visemes = self.viseme_features(batch["features"])
        style = self.style_embedding(batch["style"]).unsqueeze(1)
        pred = self.offsets_from_coefficients(self.coefficients(visemes, style)) * 1000.0
        target, lips, contact = batch["target_mm"], batch["lips"], batch["contact"]
        loss_rec = torch.mean((pred - target) ** 2)
        loss_vel = torch.mean(((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])) ** 2)
        loss_lip = lip_contact_loss(pred, target, lips, contact)
        loss = loss_rec + float(cfg["weight_velocity"]) * loss_vel + float(cfg["weight_lip_contact"]) * loss_lip
        parts = {"rec": loss_rec.item(), "vel": loss_vel.item(), "lip": loss_lip.item()}
        if float(cfg.get("weight_lip_seal", 0.0)) > 0 and "edge_upper" in batch:
            loss_seal = lip_seal_loss(pred, batch)
            loss = loss + float(cfg["weight_lip_seal"]) * loss_seal
            parts["seal"] = loss_seal.item()
        phones = batch.get("phones")
        if hasattr(self, "phone_head") and phones is not None and (phones != IGNORED).any():
            logits = self.phone_head(visemes)
            loss_phone = nn.functional.cross_entropy(logits.flatten(0, 1), phones.flatten(), ignore_index=IGNORED)
            loss = loss + float(cfg["weight_phone"]) * loss_phone
            parts["phone"] = loss_phone.item()
        if hasattr(self, "speaker_head"):
            hidden = ReverseGradient.apply(visemes, float(cfg["weight_speaker_adversary"]))
            logits = self.speaker_head(hidden)
            speaker = batch["style"].argmax(-1, keepdim=True).expand(-1, logits.shape[1])
            # the head minimises this; the reversal makes the viseme features maximise it
            loss_speaker = nn.functional.cross_entropy(logits.flatten(0, 1), speaker.flatten())
            loss = loss + loss_speaker
            parts["speaker"] = loss_speaker.item()
            parts["speaker_acc"] = (logits.argmax(-1) == speaker).float().mean().item()
        return loss, parts

    # ---- product path ------------------------------------------------------------------------
    def speech_features(self, audio: np.ndarray, device: torch.device) -> torch.Tensor:
        """(1, T, D_audio) encoder features at the motion rate for 16 kHz `audio`."""
        n_frames = max(1, int(round(len(audio) / self.sample_rate * self.fps)))
        return resample_features(self.encoder.encode(audio, device), n_frames).unsqueeze(0)

    def decoding_windows(self, n_frames: int) -> list[tuple[int, int]]:
        """The overlapping (start, end) frame windows long audio is decoded in."""
        window = int(self.config["window_frames"])
        return overlapped_windows(n_frames, window, min(int(self.config["overlap_frames"]), window // 2))

    @torch.no_grad()
    def predict(
        self,
        audio: np.ndarray,
        template: np.ndarray,
        conditioning: Conditioning,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> MotionPrediction:
        conditioning.validate()
        if conditioning.emotion != "neutral":
            raise ModelError(
                f"Model '{self.name}' has no emotion control; set the emotion to neutral or pick an emotion model."
            )
        if template.shape != (self.n_vertices, 3):
            raise ModelError(f"Model '{self.name}' animates {self.n_vertices} vertices, the template has {template.shape[0]}.")
        self.eval()
        device = next(self.parameters()).device
        report = progress or (lambda fraction, message: None)
        report(0.0, "Encoding speech")
        features = self.speech_features(audio, device)
        n_frames = features.shape[1]
        style, basis_weight = self.adapted_parts(conditioning, device)

        windows = self.decoding_windows(n_frames)
        overlap = min(int(self.config["overlap_frames"]), int(self.config["window_frames"]) // 2)
        coefficients = torch.zeros(n_frames, int(self.config["n_basis"]), device=device)
        # the phonetic head's posteriors, when trained with one: what the lip seal is driven by
        phone_head = getattr(self, "phone_head", None)
        phones = torch.zeros(n_frames, phone_head.out_features, device=device) if phone_head is not None else None
        for i, (start, end) in enumerate(windows):
            if should_cancel and should_cancel():
                raise Cancelled("Generation cancelled; nothing was written.")
            visemes = self.viseme_features(features[:, start:end])
            crossfade_into(coefficients, start, end, self.coefficients(visemes, style)[0], overlap)
            if phones is not None:
                crossfade_into(phones, start, end, torch.softmax(phone_head(visemes[0]), dim=-1), overlap)
            report((i + 1) / len(windows), f"Decoding motion {end}/{n_frames} frames")

        basis = basis_weight.T.reshape(-1, self.n_vertices, 3)
        mean = self.deformation_basis.bias.reshape(self.n_vertices, 3)
        return MotionPrediction(
            offsets=None,  # the basis says it all; MotionPrediction.vertex_offsets() derives them
            fps=self.fps,
            basis=basis.cpu().numpy().astype(np.float32),
            coefficients=coefficients.cpu().numpy().astype(np.float32),
            mean=mean.cpu().numpy().astype(np.float32),
            phone_probabilities=None if phones is None else phones.cpu().numpy().astype(np.float32),
            info={"model": self.name, "architecture": "imitator", "mode": self.config["mode"]},
        )
