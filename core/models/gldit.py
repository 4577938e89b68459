"""GLDiTalker (../shared/METHODS.md): a graph-enhanced quantised motion space and a latent
diffusion transformer, for several different takes of the same line, all in sync.

Stage 1, motion VQ-VAE: each frame's offsets go through spiral convolutions on a pyramid of the
FLAME mesh (full, 1/4, 1/16, 1/64 of the vertices; features pooled from every level), a temporal
convolution halves the rate, each latent frame is split into factors quantised to a shared
codebook, and a decoder brings it back to the motion rate and to per-vertex offsets through a
linear basis.

Stage 2, latent diffusion: a transformer denoises the latent sequence conditioned on the speech
features (pooled to the latent rate), the speaker's style and the diffusion step. Sampling is
DDIM with few steps and classifier-free guidance on the audio; the seed decides the take. Long
audio: the starting noise is drawn once for the whole take from the seed, so overlapping windows
share it and their cross-faded joins do not show.

Training runs stage 1 for the first `vq_share` of the steps, then stage 2 on the frozen stage 1,
each with its own warm-up and cosine decay of the learning rate.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..encoders import build_encoder, resample_features
from ..windows import crossfade_into, overlapped_windows
from ..errors import Cancelled, ModelError
from .base import CancelCheck, Conditioning, MotionPrediction, ProgressCallback
from ..mesh_graph import flame_pyramid, placeholder_tensors, pyramid_tensors
from .emoface import _apply_sparse
from .imitator import lip_contact_loss

DEFAULTS = {
    "architecture": "gldit",
    "fps": 30.0,
    "sample_rate": 16000,
    "n_vertices": 5023,
    "encoder": {"type": "logmel", "n_mels": 80},
    "styles": ["default"],
    "levels": 3,  # mesh pyramid levels below full resolution
    "spiral_length": 9,
    "graph_channels": [8, 16, 16, 16],  # per level, full resolution first
    "latent_dim": 32,
    "codebook_size": 256,
    # each latent frame is split into this many factors, each quantised with the shared codebook
    # (as CodeTalker does): one code per frame could not tell the mouth states apart
    "code_groups": 8,
    "n_basis": 64,
    "d_model": 96,
    "n_heads": 4,
    "n_layers": 2,
    "diffusion_steps": 1000,
    "sampling_steps": 10,
    "guidance": 1.5,  # classifier-free guidance strength on the audio (1 = none)
    "vq_share": 0.5,
    "window_frames": 120,
    "overlap_frames": 30,
    "weight_velocity": 10.0,
    "weight_lips": 5.0,
    "weight_lip_contact": 5.0,
    "commitment": 0.25,
    # stage 2: velocity of the predicted clean latents against the true ones (GLDiTalker's second loss)
    "weight_latent_velocity": 0.0,
    # stage 2: the lip losses of stage 1 (lip-vertex error x weight_lips, contact x weight_lip_contact)
    # on the motion decoded from the denoiser's clean-latent prediction, through the frozen decoder:
    # a latent error says nothing of which parts of it open the lips
    "weight_motion": 0.0,
}


class SpiralLayer(nn.Module):
    """One spiral convolution on a single frame's vertices (the 3D version sees no previous frame)."""

    def __init__(self, in_channels: int, out_channels: int, spiral_length: int):
        super().__init__()
        self.linear = nn.Linear(spiral_length * in_channels, out_channels)

    def forward(self, x: torch.Tensor, spirals: torch.Tensor) -> torch.Tensor:
        batch, n, _ = x.shape
        return self.linear(x[:, spirals].reshape(batch, n, -1))


class MotionVQVAE(nn.Module):
    def __init__(self, cfg: dict, graph: dict):
        super().__init__()
        self.levels = int(cfg["levels"])
        for name, tensor in graph.items():
            self.register_buffer(name, tensor)
        channels = list(cfg["graph_channels"])
        k = int(cfg["spiral_length"])
        self.spiral_layers = nn.ModuleList(
            SpiralLayer(3 if i == 0 else channels[i - 1], channels[i], k) for i in range(self.levels + 1))
        # finer levels are mean-pooled; the coarsest level is kept whole, because pooling it too
        # averaged the mouth away (the first trained model could not close the lips)
        coarse_vertices = int(graph[f"spirals_{self.levels}"].shape[0])
        d = int(cfg["latent_dim"])
        self.groups = int(cfg["code_groups"])
        if self.groups < 1 or d % self.groups or d // self.groups < 2:
            raise ModelError(f"latent_dim {d} must split into code_groups {self.groups} of at least 2 channels each.")
        self.to_latent = nn.Linear(sum(channels[:-1]) + coarse_vertices * channels[self.levels], d)
        self.temporal_down = nn.Conv1d(d, d, kernel_size=4, stride=2, padding=1)
        # centres each channel over the data: the raw features are dominated by a part that does not
        # depend on the motion, so every frame's factors pointed the same way and took the same code
        self.centre = nn.BatchNorm1d(d)
        self.codebook = nn.Embedding(int(cfg["codebook_size"]), d // self.groups)
        # recent use of each code (training only): codes left unused move onto encoder outputs
        self.register_buffer("code_usage", torch.zeros(int(cfg["codebook_size"])), persistent=False)
        nn.init.uniform_(self.codebook.weight, -1.0 / int(cfg["codebook_size"]), 1.0 / int(cfg["codebook_size"]))
        self.temporal_up = nn.ConvTranspose1d(d, d, kernel_size=4, stride=2, padding=1)
        self.decoder = nn.Sequential(nn.Linear(d, 128), nn.GELU(), nn.Linear(128, int(cfg["n_basis"])))
        self.basis = nn.Linear(int(cfg["n_basis"]), int(cfg["n_vertices"]) * 3)
        nn.init.zeros_(self.basis.weight)  # start from the template, as the other models do
        nn.init.zeros_(self.basis.bias)
        self._sparse: dict = {}

    def _matrix(self, name: str) -> torch.Tensor:
        key = (name, self.spirals_0.device)
        if key not in self._sparse:
            shape = tuple(int(v) for v in getattr(self, f"{name}_shape"))
            self._sparse[key] = torch.sparse_coo_tensor(getattr(self, f"{name}_indices"), getattr(self, f"{name}_values"),
                                                        shape, check_invariants=True).coalesce()
        return self._sparse[key]

    def encode(self, offsets: torch.Tensor) -> torch.Tensor:
        """(B, T, V, 3) metres -> continuous latents (B, T/2, d): spiral pyramid features, pooled per level."""
        batch, frames = offsets.shape[:2]
        x = offsets.reshape(batch * frames, -1, 3) * 1000.0  # millimetres: mouth motion of a few units
        pooled = []
        for level, layer in enumerate(self.spiral_layers):
            x = nn.functional.elu(layer(x, getattr(self, f"spirals_{level}")))
            if level < self.levels:
                pooled.append(x.mean(dim=1))
                x = _apply_sparse(self._matrix(f"down_{level}"), x[None])[0]
            else:
                pooled.append(x.reshape(batch * frames, -1))
        latent = self.to_latent(torch.cat(pooled, dim=-1)).reshape(batch, frames, -1)
        # unit-length factors and codes (as in ViT-VQGAN): the straight-through gradient cannot push
        # the encoder's output away from the codebook without bound, which it did unnormalised
        return self._unit_factors(self.centre(self.temporal_down(latent.transpose(1, 2))).transpose(1, 2))

    def _unit_factors(self, latent: torch.Tensor) -> torch.Tensor:
        factors = latent.reshape(*latent.shape[:-1], self.groups, -1)
        return nn.functional.normalize(factors, dim=-1).reshape(latent.shape)

    def quantise(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantised with straight-through gradients, codebook loss, code indices (..., groups));
        any latent scale is accepted: each factor's code is the one of highest cosine similarity."""
        latent = self._unit_factors(latent)
        codes = nn.functional.normalize(self.codebook.weight, dim=-1)
        factors = latent.reshape(-1, codes.shape[1])
        indices = (factors @ codes.T).argmax(dim=1)
        quantised = codes[indices].reshape(latent.shape)
        loss = (quantised - latent.detach()).pow(2).mean()
        return latent + (quantised - latent).detach(), loss, indices.reshape(*latent.shape[:-1], self.groups)

    @torch.no_grad()
    def restart_dead_codes(self, latent: torch.Tensor, indices: torch.Tensor) -> None:
        """Codes unused for about a hundred steps jump to random factors of this batch (as in
        Jukebox); without it the untrained encoder's near-identical outputs all took a dozen codes
        of 512 and the decoder could not learn the mouth."""
        self.code_usage.mul_(0.99).add_(torch.bincount(indices.reshape(-1), minlength=len(self.code_usage)), alpha=0.01)
        dead = torch.nonzero(self.code_usage < 0.02).flatten()
        if len(dead):
            factors = self._unit_factors(latent).reshape(-1, self.codebook.weight.shape[1])
            picks = torch.randint(len(factors), (len(dead),), device=factors.device)
            # through .data: this step's loss holds the codebook for backward, and dead codes were
            # not picked, so their gradient is zero whatever their values
            self.codebook.weight.data[dead] = factors[picks] + 0.01 * torch.randn_like(factors[picks])
            self.code_usage[dead] = 0.1  # time to be picked before it counts as dead again

    def decode_coefficients(self, latent: torch.Tensor, n_frames: int) -> torch.Tensor:
        up = self.temporal_up(latent.transpose(1, 2)).transpose(1, 2)
        if up.shape[1] < n_frames:
            up = torch.cat([up, up[:, -1:].expand(-1, n_frames - up.shape[1], -1)], dim=1)
        return self.decoder(up[:, :n_frames])

    def decode(self, latent: torch.Tensor, n_frames: int) -> torch.Tensor:
        coefficients = self.decode_coefficients(latent, n_frames)
        return self.basis(coefficients).reshape(*coefficients.shape[:2], -1, 3)


def _lip_losses(pred_mm: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(lip-vertex squared error over all frames, Imitator's contact loss around bilabials), mm^2."""
    target, lips = batch["target_mm"], batch["lips"].float()
    weights = lips[:, None, :, None]
    lip = ((pred_mm - target).pow(2) * weights).sum() / (weights.sum() * 3 * target.shape[1] + 1e-6)
    return lip, lip_contact_loss(pred_mm, target, lips, batch["contact"])


def _step_embedding(steps: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=steps.device, dtype=torch.float32) / half)
    angles = steps.float()[:, None] * freq[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class LatentDenoiser(nn.Module):
    """Predicts the clean latent sequence from a noisy one, the audio, the style and the step."""

    def __init__(self, cfg: dict, audio_dim: int, n_styles: int):
        super().__init__()
        d, latent = int(cfg["d_model"]), int(cfg["latent_dim"])
        self.d = d
        self.latent_in = nn.Linear(latent, d)
        self.audio_in = nn.Linear(audio_dim, d)
        self.null_audio = nn.Parameter(torch.zeros(d))  # the unconditional branch of guidance
        self.style = nn.Linear(n_styles, d, bias=False)
        self.step = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        layer = nn.TransformerEncoderLayer(d, int(cfg["n_heads"]), 2 * d, dropout=0.0, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, int(cfg["n_layers"]))
        self.out = nn.Linear(d, latent)

    def forward(self, noisy: torch.Tensor, audio: torch.Tensor | None, style: torch.Tensor, steps: torch.Tensor,
                keep_audio: torch.Tensor | None = None) -> torch.Tensor:
        """`audio` None is the unconditional branch; `keep_audio` (B, 1, 1) of 0/1 drops it per sample."""
        batch, frames, _ = noisy.shape
        if audio is None:
            condition = self.null_audio.expand(batch, frames, -1)
        elif keep_audio is None:
            condition = self.audio_in(audio)
        else:
            condition = self.audio_in(audio) * keep_audio + self.null_audio * (1 - keep_audio)
        x = self.latent_in(noisy) + condition + self.style(style)[:, None] + self.step(_step_embedding(steps, self.d))[:, None]
        position = torch.arange(frames, device=noisy.device)
        x = x + _step_embedding(position, self.d)[None]
        return self.out(self.transformer(x))


class GLDiTalkerModel(nn.Module):
    style_parameters = ("denoiser.style.weight",)
    emotion_control = False

    def __init__(self, config: dict):
        super().__init__()
        self.config = {**DEFAULTS, **config}
        cfg = self.config
        self.name = cfg.get("name", "gldit")
        self.fps = float(cfg["fps"])
        self.sample_rate = int(cfg["sample_rate"])
        self.styles = list(cfg["styles"])
        self.n_vertices = int(cfg["n_vertices"])
        self.encoder = build_encoder(cfg["encoder"])
        if "graph" in cfg:  # a trained model: its mesh graph comes with the weights
            graph = placeholder_tensors(cfg["graph"])
        else:
            graph = pyramid_tensors(flame_pyramid(int(cfg["spiral_length"]), int(cfg["levels"])), int(cfg["levels"]))
            self.config["graph"] = {name: list(t.shape) for name, t in graph.items()}
        self.vqvae = MotionVQVAE(cfg, graph)
        self.denoiser = LatentDenoiser(cfg, self.encoder.feature_dim, len(self.styles))
        steps = int(cfg["diffusion_steps"])
        # cosine noise schedule (Nichol & Dhariwal 2021): alpha_bar(t) for t = 0..steps
        t = torch.linspace(0, 1, steps + 1)
        alpha_bar = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        self.register_buffer("alpha_bar", (alpha_bar / alpha_bar[0]).clamp(1e-5, 1.0), persistent=False)
        # diffusion runs on unit-length factors scaled to about unit variance per channel
        self.latent_scale = math.sqrt(self.vqvae.codebook.weight.shape[1])

    @property
    def training_stage_starts(self) -> tuple[float, ...]:
        """Where in a run the second stage (the denoiser) starts: the trainer restarts its learning-rate
        schedule there."""
        return (float(self.config["vq_share"]),)

    def audio_latent_rate(self, features: torch.Tensor, n_latent: int) -> torch.Tensor:
        return resample_features(features[0], n_latent).unsqueeze(0) if features.shape[0] == 1 else \
            torch.stack([resample_features(f, n_latent) for f in features])

    # ---- training -------------------------------------------------------------------------------
    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg = self.config
        target = batch["target_mm"] / 1000.0
        n_frames = target.shape[1]
        if batch["progress"] < float(cfg["vq_share"]):  # stage 1: the motion VQ-VAE
            latent = self.vqvae.encode(target)
            quantised, codebook_loss, indices = self.vqvae.quantise(latent)
            pred = self.vqvae.decode(quantised, n_frames) * 1000.0
            t = batch["target_mm"]
            rec = (pred - t).pow(2).mean()
            velocity = ((pred[:, 1:] - pred[:, :-1]) - (t[:, 1:] - t[:, :-1])).pow(2).mean()
            lip, contact = _lip_losses(pred, batch)
            commitment = (latent - quantised.detach()).pow(2).mean()
            codes_used = float(torch.unique(indices).numel())  # a collapsing codebook shows here
            if self.training:
                self.vqvae.restart_dead_codes(latent, indices)
            loss = rec + float(cfg["weight_velocity"]) * velocity + float(cfg["weight_lips"]) * lip + \
                float(cfg["weight_lip_contact"]) * contact + codebook_loss + float(cfg["commitment"]) * commitment
            return loss, {"stage": 1, "rec": rec.item(), "vel": velocity.item(), "lip": lip.item(),
                          "contact": contact.item(), "vq": codebook_loss.item(), "codes": codes_used}
        self.vqvae.eval()  # frozen, with the channel statistics sampling will use
        self.vqvae.requires_grad_(False)  # the motion loss reaches the denoiser through it, not into it
        with torch.no_grad():  # stage 2: denoise latents of the frozen VQ-VAE
            clean = self.vqvae.quantise(self.vqvae.encode(target))[0] * self.latent_scale
        audio = self.audio_latent_rate(batch["features"], clean.shape[1])
        # classifier-free guidance: in training, sometimes learn without the audio
        keep = (torch.rand(audio.shape[0], 1, 1, device=audio.device) > 0.1).float() if self.training else None
        steps = torch.randint(1, int(cfg["diffusion_steps"]) + 1, (clean.shape[0],), device=audio.device)
        alpha = self.alpha_bar[steps][:, None, None]
        noisy = alpha.sqrt() * clean + (1 - alpha).sqrt() * torch.randn_like(clean)
        predicted = self.denoiser(noisy, audio, batch["style"], steps, keep)
        denoise = (predicted - clean).pow(2).mean()
        loss, parts = denoise, {"stage": 2, "denoise": denoise.item()}
        if float(cfg["weight_latent_velocity"]):
            velocity = ((predicted[:, 1:] - predicted[:, :-1]) - (clean[:, 1:] - clean[:, :-1])).pow(2).mean()
            loss = loss + float(cfg["weight_latent_velocity"]) * velocity
            parts["latent_vel"] = velocity.item()
        if float(cfg["weight_motion"]):
            lip, contact = _lip_losses(self.vqvae.decode(predicted / self.latent_scale, n_frames) * 1000.0, batch)
            loss = loss + float(cfg["weight_motion"]) * (float(cfg["weight_lips"]) * lip
                                                         + float(cfg["weight_lip_contact"]) * contact)
            parts.update(lip=lip.item(), contact=contact.item())
        return loss, parts

    # ---- sampling -------------------------------------------------------------------------------
    def sample_latents(self, audio: torch.Tensor, style: torch.Tensor, noise: torch.Tensor,
                       guidance: float | None = None) -> torch.Tensor:
        """DDIM (eta 0) from `noise` (1, T', d) with classifier-free guidance on the audio (None: the
        config's strength)."""
        cfg = self.config
        total, count = int(cfg["diffusion_steps"]), int(cfg["sampling_steps"])
        schedule = torch.linspace(total, 0, count + 1).round().long()
        x = noise
        guidance = float(cfg["guidance"] if guidance is None else guidance)
        for current, following in zip(schedule[:-1].tolist(), schedule[1:].tolist()):
            steps = torch.full((x.shape[0],), current, dtype=torch.long, device=x.device)
            clean = self.denoiser(x, audio, style, steps)
            if guidance != 1.0:
                unconditional = self.denoiser(x, None, style, steps)
                clean = unconditional + guidance * (clean - unconditional)
            a_t, a_next = self.alpha_bar[current], self.alpha_bar[following] if following > 0 else x.new_tensor(1.0)
            eps = (x - a_t.sqrt() * clean) / (1 - a_t).sqrt().clamp(min=1e-6)
            x = a_next.sqrt() * clean + (1 - a_next).sqrt() * eps
        return x

    @torch.no_grad()
    def predict(self, audio: np.ndarray, template: np.ndarray, conditioning: Conditioning,
                progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None) -> MotionPrediction:
        conditioning.validate()
        if conditioning.emotion != "neutral":
            raise ModelError(f"Model '{self.name}' has no emotion control; set the emotion to neutral or pick an emotion model.")
        if conditioning.adapted_style is not None:
            raise ModelError(f"Model '{self.name}' does not take adapted styles; pick an Imitator-type model for them.")
        if template.shape != (self.n_vertices, 3):
            raise ModelError(f"Model '{self.name}' animates {self.n_vertices} vertices, the template has {template.shape[0]}.")
        self.eval()
        device = next(self.parameters()).device
        n_frames = max(2, int(round(len(audio) / self.sample_rate * self.fps)))
        report = progress or (lambda fraction, message: None)
        report(0.0, "Encoding speech")
        features = resample_features(self.encoder.encode(audio, device), n_frames).unsqueeze(0)
        if conditioning.style is None:
            style = torch.full((1, len(self.styles)), 1.0 / len(self.styles), device=device)
        elif conditioning.style in self.styles:
            style = torch.zeros(1, len(self.styles), device=device)
            style[0, self.styles.index(conditioning.style)] = 1.0
        else:
            raise ModelError(f"Model '{self.name}' has no speaking style '{conditioning.style}'. "
                             f"Known styles: {', '.join(self.styles)}.")
        n_latent = (n_frames + 1) // 2
        audio_latent = self.audio_latent_rate(features, n_latent)
        guidance = float(self.config["guidance"] if conditioning.guidance is None else conditioning.guidance)
        generator = torch.Generator().manual_seed(int(conditioning.seed))
        noise = torch.randn(1, n_latent, int(self.config["latent_dim"]), generator=generator).to(device)
        window = max(8, int(self.config["window_frames"]) // 2)
        overlap = min(int(self.config["overlap_frames"]) // 2, window // 2)
        latents = torch.zeros(n_latent, int(self.config["latent_dim"]), device=device)
        windows = overlapped_windows(n_latent, window, overlap)
        for i, (start, end) in enumerate(windows):
            if should_cancel and should_cancel():
                raise Cancelled("Generation cancelled; nothing was written.")
            chunk = self.sample_latents(audio_latent[:, start:end], style, noise[:, start:end], guidance)[0]
            crossfade_into(latents, start, end, chunk, overlap)
            report((i + 1) / len(windows), f"Sampling take (seed {conditioning.seed}) {end}/{n_latent}")
        quantised, _, _ = self.vqvae.quantise(latents[None])
        coefficients = self.vqvae.decode_coefficients(quantised, n_frames)[0]
        basis = self.vqvae.basis.weight.T.reshape(-1, self.n_vertices, 3)
        mean = self.vqvae.basis.bias.reshape(self.n_vertices, 3)
        return MotionPrediction(offsets=None, fps=self.fps, basis=basis.cpu().numpy().astype(np.float32),
                                coefficients=coefficients.cpu().numpy().astype(np.float32),
                                mean=mean.cpu().numpy().astype(np.float32),
                                info={"model": self.name, "architecture": "gldit", "seed": int(conditioning.seed),
                                      "guidance": guidance})
