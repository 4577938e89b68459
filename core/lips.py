"""The lips of a FLAME-topology head, found from its connectivity: which side of the mouth each
vertex belongs to, the lip-edge vertices where the lips meet, and the seal gap between them.

Sealing is measured as contact, as an animator judges a close-up: the smallest 3D distance
between the upper- and lower-lip edge vertices near the midline, less the same distance on the
template (whose lips rest together). A bilabial is sealed when that excess falls to
`SEALED_MM` or less; a lenient vertical-gap test passes lips still 1.5-2.4 mm apart, a slit
visible in every close-up.

`LipSeal` is the matching control at inference: a field that moves the upper lip down and the
lower lip up, by the amount that brings a frame's edge gap back to rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from .head_frame import MOUTH_LOOP_SIZE, boundary_loops

SEALED_MM = 0.5  # lips within this of their rest contact read as sealed
# lip-edge vertices are looked for this far either side of the mouth's midline (share of its half-width)
MIDLINE_BAND = 0.35


@dataclass
class LipSides:
    """The mouth opening's two halves and every vertex's geodesic distance to each (metres)."""

    upper_loop: np.ndarray
    lower_loop: np.ndarray
    corners: np.ndarray  # (2,) left and right mouth corners on the loop
    d_upper: np.ndarray  # (V,)
    d_lower: np.ndarray  # (V,)
    mouth_centre: np.ndarray  # (3,)
    half_width: float


def edge_graph(vertices: np.ndarray, triangles: np.ndarray):
    """The mesh's edges as a symmetric sparse matrix of lengths."""
    t = np.asarray(triangles)
    edges = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    lengths = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    n = len(vertices)
    graph = coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    return graph.maximum(graph.T)


def lip_sides(template: np.ndarray, triangles: np.ndarray) -> LipSides:
    """Split the mouth opening (FLAME's 32-vertex boundary loop) at its corners into the upper and
    lower lip, and measure geodesic distance from each half over the mesh (eyeballs, separate
    components, are unreachable: capped at 1 m)."""
    v = np.asarray(template, dtype=np.float64)
    loop = next(l for l in boundary_loops(triangles) if len(l) == MOUTH_LOOP_SIZE)
    left, right = int(np.argmin(v[loop, 0])), int(np.argmax(v[loop, 0]))
    a, b = sorted((left, right))
    half1, half2 = loop[a:b + 1], np.concatenate([loop[b:], loop[:a + 1]])
    upper, lower = (half1, half2) if v[half1, 1].mean() > v[half2, 1].mean() else (half2, half1)
    graph = edge_graph(v, triangles)
    return LipSides(
        upper_loop=upper, lower_loop=lower, corners=np.array([loop[left], loop[right]]),
        d_upper=np.minimum(dijkstra(graph, indices=upper, min_only=True), 1.0),
        d_lower=np.minimum(dijkstra(graph, indices=lower, min_only=True), 1.0),
        mouth_centre=v[loop].mean(axis=0), half_width=float((v[loop[right], 0] - v[loop[left], 0]) / 2),
    )


def edge_vertices(template: np.ndarray, sides: LipSides) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower) lip-edge vertex indices near the midline: the vertices of each half of the
    mouth opening's boundary (where the lip surface ends, curled into the mouth) within
    MIDLINE_BAND of the midline. Unlike the lip line in front, whose vertices overlap at rest and
    pass each other as the jaw drops, the two edges only part as the mouth opens."""
    v = np.asarray(template, dtype=np.float64)
    reach = MIDLINE_BAND * sides.half_width
    upper = sides.upper_loop[np.abs(v[sides.upper_loop, 0] - sides.mouth_centre[0]) < reach]
    lower = sides.lower_loop[np.abs(v[sides.lower_loop, 0] - sides.mouth_centre[0]) < reach]
    if not len(upper) or not len(lower):
        raise ValueError("the mouth opening has no vertices near its midline; is this a FLAME-topology head?")
    return upper, lower


def edge_gap(vertices: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """(T,) smallest 3D distance (metres) between any upper and any lower edge vertex, per frame of
    (T, V, 3) positions (or a single (V, 3) frame, giving (1,))."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim == 2:
        vertices = vertices[None]
    pairs = vertices[:, upper][:, :, None] - vertices[:, lower][:, None]
    return np.sqrt((pairs ** 2).sum(-1)).min(axis=(1, 2))


class LipContact:
    """Seal measurement on one head: `excess_mm(frames)` is the edge gap beyond the template's."""

    def __init__(self, template: np.ndarray, triangles: np.ndarray, sides: LipSides | None = None):
        self.template = np.asarray(template, dtype=np.float64)
        self.sides = sides or lip_sides(self.template, triangles)
        self.upper, self.lower = edge_vertices(self.template, self.sides)
        self.rest_gap = float(edge_gap(self.template, self.upper, self.lower)[0])

    def excess_mm(self, vertices: np.ndarray) -> np.ndarray:
        """(T,) edge gap over the rest gap in mm: about 0 where the lips seal, negative where they press."""
        return (edge_gap(vertices, self.upper, self.lower) - self.rest_gap) * 1000.0


# The visible lip line (the lip-seal issue's measure): where the lips meet in front, as a close-up
# shows them. FLAME vertex indices, so only for FLAME-topology heads.
LINE_UPPER = np.array([3531, 3547, 3533, 2784, 1668])
LINE_LOWER = np.array([3509, 3513, 3504, 3512, 3506, 2929, 1836])
MOUTH_CORNERS = np.array([2708, 1572])


class LipLine:
    """Seal and opening on the visible lip line: `excess_mm` is the smallest 3D distance between
    the upper- and lower-lip line vertices beyond the template's (1.31 mm on FLAME_sample.ply);
    `aperture` is that over the mouth's corner-to-corner width, per frame."""

    def __init__(self, template: np.ndarray):
        self.template = np.asarray(template, dtype=np.float64)
        self.upper, self.lower, self.corners = LINE_UPPER, LINE_LOWER, MOUTH_CORNERS
        self.rest_gap = float(edge_gap(self.template, self.upper, self.lower)[0])

    def excess_mm(self, vertices: np.ndarray) -> np.ndarray:
        return (edge_gap(vertices, self.upper, self.lower) - self.rest_gap) * 1000.0

    def aperture(self, vertices: np.ndarray) -> np.ndarray:
        vertices = np.asarray(vertices, dtype=np.float64)
        if vertices.ndim == 2:
            vertices = vertices[None]
        width = np.linalg.norm(vertices[:, self.corners[0]] - vertices[:, self.corners[1]], axis=1)
        return self.excess_mm(vertices) / 1000.0 / width


def amount_to_gap(up: np.ndarray, low: np.ndarray, field_up: np.ndarray, field_low: np.ndarray,
                  target_gap: float) -> np.ndarray:
    """(T,) amount `a` of a field (per-vertex direction per unit, `field_up` (U, 3) on the upper
    vertices, `field_low` (L, 3) on the lower) that brings the smallest distance between the upper
    (T, U, 3) and lower (T, L, 3) vertex positions down to `target_gap`: per pair the smallest
    root of |D + a dS| = target, or where no pair can reach it, the closest approach; 0 where the
    gap is already within the target."""
    up, low = np.asarray(up, dtype=np.float64), np.asarray(low, dtype=np.float64)
    d = low[:, None] - up[:, :, None]  # (T, U, L, 3)
    ds = (np.asarray(field_low, dtype=np.float64)[None] - np.asarray(field_up, dtype=np.float64)[:, None])[None]
    qa = (ds ** 2).sum(-1)
    qb = 2 * (d * ds).sum(-1)
    qc = (d ** 2).sum(-1) - target_gap ** 2
    disc = qb ** 2 - 4 * qa * qc
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.where(disc >= 0, (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa), np.inf)
        closest = np.where(qa > 0, -qb / (2 * qa), 0.0)
    root = np.where(root < 0, np.where(qc <= 0, 0.0, np.inf), root)  # already at or inside the target: nothing
    reachable = np.isfinite(root)
    to_target = np.where(reachable, root, np.inf).min(axis=(1, 2))
    approach = closest.reshape(len(d), -1).max(axis=1)  # frames where no pair can reach the target
    return np.maximum(np.where(reachable.any(axis=(1, 2)), to_target, approach), 0.0)


def sealed(excess_mm: list[float] | np.ndarray) -> np.ndarray:
    return np.asarray(excess_mm, dtype=np.float64) <= SEALED_MM


def seal_rate(excess_mm: list[float]) -> float | None:
    """Share of events whose smallest excess gap is sealed (None for no events)."""
    return float(np.mean(sealed(excess_mm))) if len(excess_mm) else None


def upper_side(sides: LipSides) -> np.ndarray:
    """(V,) 1 on the upper lip's side of the mouth, 0 on the lower's, smooth at the corners."""
    return 1 / (1 + np.exp(-(sides.d_lower - sides.d_upper) / 0.002))


def lip_weights(sides: LipSides) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower) (V,) weights: 1 on each lip up to 15 mm from the mouth opening, fading out
    over the next ~12 mm (the corpus rig's lip regions, and the seal's)."""
    side_up = upper_side(sides)
    return (side_up * np.exp(-np.square(np.maximum(sides.d_upper - 0.015, 0) / 0.012)),
            (1 - side_up) * np.exp(-np.square(np.maximum(sides.d_lower - 0.015, 0) / 0.012)))


# ---- the lip seal at inference -------------------------------------------------------------------

@dataclass(frozen=True)
class SealGate:
    """When the seal acts: where the phonetic head hears /p b m/ (its summed posterior between
    `p_low` and `p_high` ramps the seal in) and the lips are already nearly together (an edge gap
    over rest between `gap_low_mm` and `gap_high_mm` ramps it out), so a tongue stop's open lips
    and an open vowel are left alone. The heard evidence is spread over `spread_frames` either side
    (the head's peak and the lips' closest frame can sit a frame apart) and eased with a Gaussian
    of `ease_frames`, so the lips move into the seal instead of snapping."""

    # chosen for default_v4 on held-out Asterisk prompts (tools/real_speech.py; a speaker not in
    # ../shared/audio): the most seals with tongue stops sealed at most 10% (BENCHMARKS "Lip seal");
    # default_v5 keeps it. A model's config may carry its own ("seal_gate", python -m core tune-seal)
    p_low: float = 0.2
    p_high: float = 0.4
    gap_low_mm: float = 2.0
    gap_high_mm: float = 4.0
    spread_frames: int = 2
    ease_frames: float = 1.0


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


MAX_SEAL_M = 0.008  # never pull the lips more than this: beyond it the gate is shut anyway


class LipSeal:
    """A field that closes the lips (upper lip down, lower lip up, half each, fading over the lip
    regions) and, per frame, how much of it brings the edge gap back to rest."""

    def __init__(self, template: np.ndarray, triangles: np.ndarray, gate: SealGate | None = None):
        self.contact = LipContact(template, triangles)
        self.gate = gate or SealGate()
        w_upper, w_lower = lip_weights(self.contact.sides)
        self.field = np.zeros((len(self.contact.template), 3), dtype=np.float32)
        self.field[:, 1] = 0.5 * (w_lower - w_upper)  # one metre of amount closes the edges by one metre
        self.edges = np.concatenate([self.contact.upper, self.contact.lower])

    def needed(self, edge_positions: np.ndarray) -> np.ndarray:
        """(T,) amount (metres) of `field` that brings each frame's edge gap back to the rest gap,
        from (T, len(edges), 3) positions of the edge vertices: per edge pair the smallest root of
        |D + a dS| = rest, or where a pair cannot reach it, its closest approach."""
        n_up = len(self.contact.upper)
        return np.clip(amount_to_gap(edge_positions[:, :n_up], edge_positions[:, n_up:], self.field[self.contact.upper],
                                     self.field[self.contact.lower], self.contact.rest_gap), 0.0, MAX_SEAL_M)

    def weights(self, excess_mm: np.ndarray, bilabial_probability: np.ndarray) -> np.ndarray:
        """(T,) share of the needed amount applied, 0..1 (SealGate)."""
        from scipy.ndimage import gaussian_filter1d, maximum_filter1d

        g = self.gate
        heard = maximum_filter1d(np.asarray(bilabial_probability, dtype=np.float64), 2 * g.spread_frames + 1, mode="nearest")
        heard = smoothstep((heard - g.p_low) / (g.p_high - g.p_low))
        if g.ease_frames > 0:
            heard = gaussian_filter1d(heard, g.ease_frames, mode="nearest")
        near = smoothstep((g.gap_high_mm - np.asarray(excess_mm)) / (g.gap_high_mm - g.gap_low_mm))
        return np.clip(heard * near, 0.0, 1.0)

    def amounts(self, edge_positions: np.ndarray, bilabial_probability: np.ndarray, strength: float) -> np.ndarray:
        """(T,) metres of `field` to add per frame, for (T, len(edges), 3) edge positions."""
        n_up = len(self.contact.upper)
        excess = (edge_gap(edge_positions, np.arange(n_up), np.arange(n_up, len(self.edges))) - self.contact.rest_gap) * 1000.0
        return (float(strength) * self.weights(excess, bilabial_probability) * self.needed(edge_positions)).astype(np.float32)
