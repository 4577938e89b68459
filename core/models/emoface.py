"""EmoFace (../shared/METHODS.md): emotion and content branches fused per vertex by Mesh Attention.

    speech features -> content branch -> content offsets  \\
                    -> emotion branch (+ emotion, intensity) -> emotion offsets -> Mesh Attention -> offsets
                    -> classifier (emotion "from audio")      /

Mesh Attention reduces each branch's frame features to a few channels, concatenates them with
both branches' offsets (down-sampled to a coarse level of the FLAME mesh), the previous frame's
output and a learned per-vertex position embedding, and runs SpiralConv3D layers (spiral
neighbours of the current and previous frame, then one linear layer) to per-vertex fusion
weights, up-sampled back to full resolution. With "fusion": "blend" (EmoFace's) the weights mix the
two branches' offsets; with "expression" they scale the emotion branch's expression (its offsets
for the asked emotion less those for neutral) added to the content branch's articulation.

Self-growing training: each step has a teacher-forced pass (the previous frame is ground truth)
and a pass whose previous frame mixes ground truth with the model's own output, the ground-truth
share decaying on a cosine schedule. Inference refines twice: first from a still previous frame,
then from its own first pass.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..encoders import build_encoder, resample_features
from ..windows import crossfade_into, overlapped_windows
from ..errors import Cancelled, ModelError
from .base import EMOTIONS, FROM_AUDIO, CancelCheck, Conditioning, MotionPrediction, ProgressCallback
from .imitator import alignment_mask, frame_weighted, lip_error_per_frame

DEFAULTS = {
    "architecture": "emoface",
    "fps": 30.0,
    "sample_rate": 16000,
    "n_vertices": 5023,
    "encoder": {"type": "logmel", "n_mels": 80},
    "d_model": 64,
    "n_heads": 4,
    "ffn_dim": 128,
    "n_layers": 1,
    "n_basis": 48,
    "audio_conv_layers": 1,
    "styles": ["default"],
    "window_frames": 120,
    "overlap_frames": 30,
    # Mesh Attention on the coarse level `attention_level` of the mesh pyramid (0 = full mesh)
    "attention_level": 2,
    "attention_channels": 16,
    "attention_layers": 2,
    "position_dim": 8,
    "feature_reduce": 4,
    "spiral_length": 9,
    "weight_velocity": 10.0,
    "weight_lip_contact": 5.0,  # Imitator's lip contact loss on the fused output, as the default model has
    # the same lip-vertex error over every frame: without it the contact loss outweighs the lips' share of
    # the whole-face error, and the cheapest way to close the lips at /p b m/ is to move them less everywhere
    "weight_lip_region": 0.0,
    # the same lip terms on each branch's own output. Mesh Attention mixes the branches about half and
    # half at the lips; a branch trained on the whole-face error alone barely opens the mouth there
    # (the shipped model's emotion branch: 1.8 mm at open vowels against the content branch's 5.5),
    # so the mix opens it less than the content branch alone. Measured (BENCHMARKS.md): the emotion branch
    # then opens wider but the content branch less, and the fused mouth no wider, so it is off
    "branch_lip_losses": False,
    # frames each side a branch frame attends to (0 = the whole window, as the first trained models)
    "branch_band": 0,
    # how Mesh Attention's per-vertex weights combine the branches. "blend": a weighted mean of the two
    # offsets, as EmoFace; at the lips it averages two articulations and the mouth opens about half as
    # wide as the content branch alone (BENCHMARKS.md). "expression": the content branch's articulation
    # plus the weighted expression of the emotion branch (its offsets for the asked emotion less its
    # offsets for neutral), so neutral speech is the content branch's and an emotion only adds to it
    "fusion": "blend",
    "weight_branches": 0.5,
    "weight_emotion_class": 0.1,
    "content_from_neutral": True,
}


FUSIONS = ("blend", "expression")


class SpiralConv3D(nn.Module):
    """Gathers each vertex's features along its spiral in the current and previous frame, then
    one linear layer: (B, T, N, C_in) -> (B, T, N, C_out)."""

    def __init__(self, in_channels: int, out_channels: int, spiral_length: int):
        super().__init__()
        self.linear = nn.Linear(2 * spiral_length * in_channels, out_channels)

    def forward(self, x: torch.Tensor, spirals: torch.Tensor) -> torch.Tensor:
        batch, frames, n, channels = x.shape
        previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)  # the first frame is its own predecessor
        gathered = torch.cat([x[:, :, spirals], previous[:, :, spirals]], dim=-1)  # (B, T, N, k, 2C)
        return self.linear(gathered.reshape(batch, frames, n, -1))


class MeshAttention(nn.Module):
    """Per-vertex, per-frame fusion weights of the two branches.

    The mesh graph (spirals and sparse down/up-sampling to the coarse level) is part of the
    weights, so a model folder works without FLAME files beside it."""

    def __init__(self, d_model: int, channels: int, layers: int, position_dim: int, reduce: int, graph: dict):
        super().__init__()
        for name, tensor in graph.items():  # spirals (N, k), {down,up}_{indices,values,shape}
            self.register_buffer(name, tensor)
        n, spiral_length = graph["spirals"].shape
        self.reduce_content = nn.Linear(d_model, reduce)
        self.reduce_emotion = nn.Linear(d_model, reduce)
        self.position = nn.Parameter(torch.randn(n, position_dim) * 0.1)
        in_channels = 3 * 3 + 2 * reduce + position_dim
        self.convs = nn.ModuleList(SpiralConv3D(in_channels if i == 0 else channels, channels, spiral_length)
                                   for i in range(layers))
        self.out = nn.Linear(channels, 2)
        self._sparse: dict = {}

    def sparse(self, name: str) -> torch.Tensor:
        key = (name, self.spirals.device)
        if key not in self._sparse:
            indices, values = getattr(self, f"{name}_indices"), getattr(self, f"{name}_values")
            shape = tuple(int(v) for v in getattr(self, f"{name}_shape"))
            self._sparse[key] = torch.sparse_coo_tensor(indices, values, shape, check_invariants=True).coalesce()
        return self._sparse[key]

    def forward(self, content: torch.Tensor, emotion: torch.Tensor, previous: torch.Tensor,
                content_features: torch.Tensor, emotion_features: torch.Tensor) -> torch.Tensor:
        """Offsets (B, T, V, 3) and features (B, T, d) -> weights (B, T, V, 2) summing to 1."""
        batch, frames = content.shape[:2]
        down = self.sparse("down")
        coarse = [_apply_sparse(down, o) for o in (content, emotion, previous)]
        n = down.shape[0]
        per_frame = torch.cat([self.reduce_content(content_features), self.reduce_emotion(emotion_features)], -1)
        x = torch.cat(coarse + [per_frame[:, :, None].expand(-1, -1, n, -1),
                                self.position[None, None].expand(batch, frames, -1, -1)], dim=-1)
        for conv in self.convs:
            x = nn.functional.elu(conv(x, self.spirals))
        weights = torch.softmax(self.out(x), dim=-1)  # (B, T, N, 2)
        return _apply_sparse(self.sparse("up"), weights)


def _apply_sparse(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """matrix (M, N) sparse applied over the vertex axis of x (B, T, N, C) -> (B, T, M, C)."""
    batch, frames, n, channels = x.shape
    flat = x.permute(2, 0, 1, 3).reshape(n, -1)
    return torch.sparse.mm(matrix, flat).reshape(-1, batch, frames, channels).permute(1, 2, 0, 3)


def _branch(d: int, heads: int, ffn: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def band_mask(n_frames: int, band: int, device: torch.device) -> torch.Tensor | None:
    """Additive self-attention mask letting frame t see frames t-band .. t+band (None: the whole window).
    Articulation is local in time; a band also makes a frame's output independent of the window length."""
    if band <= 0:
        return None
    return alignment_mask(n_frames, band, band, device)


def _positions(n_frames: int, dim: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(n_frames, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_frames, dim, device=device)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * freq), torch.cos(position * freq)
    return table


class EmoFaceModel(nn.Module):
    style_parameters = ()  # one articulation for every speaker: emotion, not style, conditions it
    emotion_control = True

    def __init__(self, config: dict):
        super().__init__()
        self.config = {**DEFAULTS, **config}
        cfg = self.config
        if cfg["fusion"] not in FUSIONS:
            raise ModelError(f"Unknown emoface \"fusion\" '{cfg['fusion']}': use one of {', '.join(FUSIONS)}.")
        self.name = cfg.get("name", "emoface")
        self.fps = float(cfg["fps"])
        self.sample_rate = int(cfg["sample_rate"])
        self.styles = list(cfg["styles"])
        self.n_vertices = int(cfg["n_vertices"])
        self.encoder = build_encoder(cfg["encoder"])
        d, k = int(cfg["d_model"]), int(cfg["n_basis"])
        self.audio_projection = nn.Linear(self.encoder.feature_dim, d)
        self.audio_context = nn.ModuleList(nn.Conv1d(d, d, 5, padding=2) for _ in range(int(cfg["audio_conv_layers"])))
        self.content_branch = _branch(d, int(cfg["n_heads"]), int(cfg["ffn_dim"]), int(cfg["n_layers"]))
        self.emotion_branch = _branch(d, int(cfg["n_heads"]), int(cfg["ffn_dim"]), int(cfg["n_layers"]))
        self.emotion_embedding = nn.Linear(len(EMOTIONS), d, bias=False)
        self.content_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, k))
        self.emotion_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, k))
        self.content_basis = nn.Linear(k, self.n_vertices * 3)
        self.emotion_basis = nn.Linear(k, self.n_vertices * 3)
        for basis in (self.content_basis, self.emotion_basis):  # start from the template
            nn.init.zeros_(basis.weight)
            nn.init.zeros_(basis.bias)
        self.classifier = nn.Linear(d, len(EMOTIONS) + 1)  # label logits + intensity
        if "graph" in cfg:  # a trained model: the graph comes with the weights
            graph = _graph_placeholder(cfg["graph"], int(cfg["spiral_length"]))
        else:  # a new model: build the graph from FLAME's mesh and record its sizes
            graph = _flame_graph(self.n_vertices, int(cfg["spiral_length"]), int(cfg["attention_level"]))
            self.config["graph"] = {"coarse_vertices": int(graph["spirals"].shape[0]),
                                    "down_nnz": int(graph["down_values"].shape[0]),
                                    "up_nnz": int(graph["up_values"].shape[0])}
        self.mesh_attention = MeshAttention(d, int(cfg["attention_channels"]), int(cfg["attention_layers"]),
                                            int(cfg["position_dim"]), int(cfg["feature_reduce"]), graph)

    # ---- network --------------------------------------------------------------------------------
    def audio_memory(self, features: torch.Tensor) -> torch.Tensor:
        memory = self.audio_projection(features)
        for conv in self.audio_context:
            memory = memory + nn.functional.gelu(conv(memory.transpose(1, 2))).transpose(1, 2)
        return memory + _positions(memory.shape[1], memory.shape[2], memory.device)

    def branches(self, features: torch.Tensor, emotion: torch.Tensor) -> dict:
        """features (B, T, D) at the motion rate, emotion (B, T, 7) one-hot x intensity."""
        memory = self.audio_memory(features)
        band = band_mask(memory.shape[1], int(self.config["branch_band"]), memory.device)
        content_features = self.content_branch(memory, mask=band)
        emotion_features = self.emotion_branch(memory + self.emotion_embedding(emotion), mask=band)
        shape = (*features.shape[:2], self.n_vertices, 3)
        pooled = memory.mean(dim=1)
        emotion_offsets = self.emotion_basis(self.emotion_head(emotion_features)).reshape(shape)
        parts = {
            "content_features": content_features, "emotion_features": emotion_features,
            "content": self.content_basis(self.content_head(content_features)).reshape(shape),
            "emotion": emotion_offsets,
            "class_logits": self.classifier(pooled)[:, : len(EMOTIONS)],
            "intensity": torch.sigmoid(self.classifier(pooled)[:, len(EMOTIONS)]),
        }
        if self.config["fusion"] == "expression":
            if torch.count_nonzero(emotion) == 0:  # neutral throughout: no expression, no second pass
                parts["expression"] = torch.zeros_like(emotion_offsets)
            else:
                neutral = self.emotion_branch(memory, mask=band)
                parts["expression"] = emotion_offsets - self.emotion_basis(self.emotion_head(neutral)).reshape(shape)
        return parts

    def fuse(self, parts: dict, previous: torch.Tensor) -> torch.Tensor:
        weights = self.mesh_attention(parts["content"], parts["emotion"], previous,
                                      parts["content_features"], parts["emotion_features"])
        if self.config["fusion"] == "expression":
            return parts["content"] + weights[..., 1:] * parts["expression"]
        return weights[..., :1] * parts["content"] + weights[..., 1:] * parts["emotion"]

    @staticmethod
    def shifted(offsets: torch.Tensor) -> torch.Tensor:
        """The previous frame of each frame (the first frame sees itself)."""
        return torch.cat([offsets[:, :1], offsets[:, :-1]], dim=1)

    def forward(self, features: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """Inference path: (B, T, D), (B, T, 7) -> offsets (B, T, V, 3), refined twice."""
        parts = self.branches(features, emotion)
        if self.config["fusion"] == "expression" and torch.count_nonzero(emotion) == 0:
            return parts["content"]  # no expression to add: what fusing would give, without Mesh Attention's cost
        first = self.fuse(parts, torch.zeros_like(parts["content"]))
        return self.fuse(parts, self.shifted(first))

    # ---- training -------------------------------------------------------------------------------
    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        cfg = self.config
        target = batch["target_mm"] / 1000.0
        parts = self.branches(batch["features"], batch["emotion"][:, None].expand(-1, target.shape[1], -1))
        teacher = self.fuse(parts, self.shifted(target))
        share = 0.5 * (1 + math.cos(math.pi * min(batch["progress"], 1.0)))  # ground-truth share, 1 -> 0
        mixed_previous = share * target + (1 - share) * teacher.detach()
        grown = self.fuse(parts, self.shifted(mixed_previous))

        def motion_loss(pred: torch.Tensor, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
            p, t = pred * 1000.0, batch["target_mm"]
            velocity = ((p[:, 1:] - p[:, :-1]) - (t[:, 1:] - t[:, :-1])).pow(2).flatten(1).mean(1)
            per_sample = (p - t).pow(2).flatten(1).mean(1) + float(cfg["weight_velocity"]) * velocity
            if sample_weights is None:
                return per_sample.mean()
            return (per_sample * sample_weights).sum() / sample_weights.sum().clamp(min=1.0)

        fused = motion_loss(teacher) + motion_loss(grown)
        # intermediate supervision: the content branch learns articulation from neutral clips only, so
        # neutral speech gets no share of the emotions' average expression through it
        neutral = (batch["emotion"].sum(-1) == 0).float() if cfg["content_from_neutral"] else None
        branches = motion_loss(parts["content"], neutral) + motion_loss(parts["emotion"])
        # without the contact term the lips come near at /p b m/ but rarely meet, on real speech never
        # (BENCHMARKS.md); each output is (prediction, per-clip weights or None)
        lips = batch["lips"].float()
        lip_outputs = [(teacher, None), (grown, None)]
        if cfg["branch_lip_losses"]:
            lip_outputs += [(parts["content"], neutral), (parts["emotion"], None)]
        contact = lip_region = torch.zeros((), device=target.device)
        for pred, clip_weights in lip_outputs:
            error = lip_error_per_frame(pred * 1000.0, batch["target_mm"], lips)
            frames = torch.ones_like(error) if clip_weights is None else clip_weights[:, None].expand_as(error)
            contact = contact + frame_weighted(error, batch["contact"] * frames)
            lip_region = lip_region + frame_weighted(error, frames)
        label = batch["emotion"].argmax(-1)  # all zeros (neutral) gives index 0, which is neutral
        classification = nn.functional.cross_entropy(parts["class_logits"], label) + \
            nn.functional.mse_loss(parts["intensity"], batch["emotion"].sum(-1))
        loss = fused + float(cfg["weight_branches"]) * branches + float(cfg["weight_emotion_class"]) * classification \
            + float(cfg["weight_lip_contact"]) * contact + float(cfg["weight_lip_region"]) * lip_region
        return loss, {"fused": fused.item(), "branches": branches.item(), "class": classification.item(),
                      "lip": contact.item(), "lip_region": lip_region.item(),
                      "gt_share": share}

    # ---- product path ---------------------------------------------------------------------------
    def emotion_track(self, conditioning: Conditioning, features: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(T, 7) per-frame emotion vector; 'from audio' asks the classifier."""
        n_frames = features.shape[1]
        info = {}
        if conditioning.emotion == FROM_AUDIO:
            parts = self.branches(features, torch.zeros(1, n_frames, len(EMOTIONS), device=features.device))
            label = EMOTIONS[int(parts["class_logits"][0].argmax())]
            intensity = float(parts["intensity"][0])
            info = {"emotion_from_audio": label, "intensity_from_audio": round(intensity, 3)}
        else:
            label, intensity = conditioning.emotion, float(conditioning.intensity)
        track = torch.zeros(n_frames, len(EMOTIONS), device=features.device)
        if label != "neutral":
            if conditioning.intensity_curve is not None and conditioning.emotion != FROM_AUDIO:
                curve = torch.as_tensor(np.asarray(conditioning.intensity_curve, dtype=np.float32), device=features.device)
                curve = resample_features(curve[:, None], n_frames)[:, 0].clamp(0, 1)
            else:
                curve = torch.full((n_frames,), intensity, device=features.device)
            track[:, EMOTIONS.index(label)] = curve
        return track, info

    @torch.no_grad()
    def predict(self, audio: np.ndarray, template: np.ndarray, conditioning: Conditioning,
                progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None) -> MotionPrediction:
        conditioning.validate()
        if conditioning.adapted_style is not None:
            raise ModelError(f"Model '{self.name}' does not take adapted styles; pick an Imitator-type model for them.")
        if template.shape != (self.n_vertices, 3):
            raise ModelError(f"Model '{self.name}' animates {self.n_vertices} vertices, the template has {template.shape[0]}.")
        self.eval()
        device = next(self.parameters()).device
        n_frames = max(1, int(round(len(audio) / self.sample_rate * self.fps)))
        report = progress or (lambda fraction, message: None)
        report(0.0, "Encoding speech")
        features = resample_features(self.encoder.encode(audio, device), n_frames).unsqueeze(0)
        track, info = self.emotion_track(conditioning, features)
        window = int(self.config["window_frames"])
        overlap = min(int(self.config["overlap_frames"]), window // 2)
        windows = overlapped_windows(n_frames, window, overlap)
        offsets = torch.zeros(n_frames, self.n_vertices * 3, device=device)
        for i, (start, end) in enumerate(windows):
            if should_cancel and should_cancel():
                raise Cancelled("Generation cancelled; nothing was written.")
            chunk = self(features[:, start:end], track[None, start:end])[0].reshape(end - start, -1)
            crossfade_into(offsets, start, end, chunk, overlap)
            report((i + 1) / len(windows), f"Decoding motion {end}/{n_frames} frames")
        return MotionPrediction(offsets=offsets.reshape(n_frames, self.n_vertices, 3).cpu().numpy(), fps=self.fps,
                                info={"model": self.name, "architecture": "emoface", **info})


def _flame_graph(n_vertices: int, spiral_length: int, level: int) -> dict:
    """Spirals at `level` of FLAME's mesh pyramid and the sparse maps between it and full resolution."""
    from scipy.sparse import identity

    from ..mesh_graph import flame_pyramid, sparse_tensors

    pyramid = flame_pyramid(spiral_length, max(level, 1))
    down, up = identity(n_vertices, format="csr"), identity(n_vertices, format="csr")
    for i in range(level):
        down = pyramid.down[i] @ down
        up = up @ pyramid.up[i]
    return {"spirals": torch.from_numpy(pyramid.levels[level].spirals),
            **sparse_tensors("down", down), **sparse_tensors("up", up)}


def _graph_placeholder(sizes: dict, spiral_length: int) -> dict:
    """Buffers of the right shapes, filled by load_state_dict."""
    n = int(sizes["coarse_vertices"])
    return {"spirals": torch.zeros(n, spiral_length, dtype=torch.int64),
            "down_indices": torch.zeros(2, int(sizes["down_nnz"]), dtype=torch.int64),
            "down_values": torch.zeros(int(sizes["down_nnz"])), "down_shape": torch.zeros(2, dtype=torch.int64),
            "up_indices": torch.zeros(2, int(sizes["up_nnz"]), dtype=torch.int64),
            "up_values": torch.zeros(int(sizes["up_nnz"])), "up_shape": torch.zeros(2, dtype=torch.int64)}
