"""Software previews of heads: a small z-buffer rasteriser and a PNG writer, no GPU, no bpy.

Used for the contact sheets in the README and for the demo's preview; good enough to judge
mouth shapes, not meant as a renderer.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

INTERIOR_SHADE = 0.08  # brightness of back-facing triangles (the mouth interior), 0..1

VIEWS = {
    "front": np.eye(3),
    # looking at the head's left side: canonical -z becomes screen x
    "side": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
}


def render(vertices: np.ndarray, triangles: np.ndarray, view: str = "front", size: int = 256,
           bounds: tuple[np.ndarray, float] | None = None, crop: float = 1.0,
           colours: np.ndarray | None = None) -> np.ndarray:
    """Grey-shaded orthographic image (size, size) uint8 of a mesh in FLAME's canonical frame, or an
    RGB image (size, size, 3) when `colours` gives each vertex a colour (V, 3) in 0..1.

    `bounds` (centre, half-width) fixes the framing so frames of one clip line up; `crop` < 1 zooms in.
    """
    points = np.asarray(vertices, dtype=np.float64) @ VIEWS[view].T
    if bounds is None:
        centre = (points.max(0) + points.min(0)) / 2
        half = (points.max(0) - points.min(0))[:2].max() / 2 * 1.05
    else:
        centre, half = bounds
    half *= crop
    scale = (size / 2) / half
    xy = np.empty((len(points), 2))
    xy[:, 0] = (points[:, 0] - centre[0]) * scale + size / 2
    xy[:, 1] = size / 2 - (points[:, 1] - centre[1]) * scale
    depth = points[:, 2]

    tri = np.asarray(triangles)
    a, b, c = points[tri[:, 0]], points[tri[:, 1]], points[tri[:, 2]]
    normals = np.cross(b - a, c - a)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    shade = 0.15 + 0.85 * np.clip(np.abs(normals @ light), 0, 1)
    # FLAME's triangles wind outwards, so a triangle facing away from the viewer is the inside of the
    # head seen through the open lips: drawn dark, as a mouth interior, so a slit reads as a dark line
    # and sealed lips as none
    shade = np.where(normals[:, 2] < 0, INTERIOR_SHADE + 0.05 * shade, shade)

    if colours is None:
        return _rasterise(xy, depth, tri, 255 * shade, size, background=40.0).astype(np.uint8)
    faces = np.asarray(colours, dtype=np.float64)[tri].mean(axis=1)  # (F, 3): flat colour per triangle
    channels = [_rasterise(xy, depth, tri, 255 * shade * faces[:, k], size, background=40.0) for k in range(3)]
    return np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)


def texture_colours(obj_path: str, image_path: str) -> np.ndarray:
    """Per-vertex colours (V, 3) in 0..1 of a textured OBJ (FLAME's texture_mesh.obj and its PNG):
    each vertex takes the texture at the UV of its first face corner."""
    from PIL import Image

    uvs, corners = [], {}
    with open(obj_path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("vt "):
                uvs.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("f "):
                for token in line.split()[1:]:
                    parts = token.split("/")
                    if len(parts) > 1 and parts[1]:
                        corners.setdefault(int(parts[0]) - 1, int(parts[1]) - 1)
    texture = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float64) / 255.0
    height, width = texture.shape[:2]
    colours = np.full((max(corners) + 1 if corners else 0, 3), 0.7)
    for vertex, uv in corners.items():
        u, v = uvs[uv]
        colours[vertex] = texture[int(np.clip((1 - v) * (height - 1), 0, height - 1)),
                                  int(np.clip(u * (width - 1), 0, width - 1))]
    return colours


def _rasterise(xy: np.ndarray, depth: np.ndarray, tri: np.ndarray, value: np.ndarray, size: int,
               background: float) -> np.ndarray:
    """Z-buffered flat-shaded triangles, all at once: every triangle's bounding-box pixels are tested
    in batches of triangles of similar size, and each pixel keeps its nearest covering triangle."""
    p = xy[tri]  # (F, 3, 2)
    lo = np.clip(np.floor(p.min(1)).astype(np.int64), 0, size - 1)
    hi = np.clip(np.ceil(p.max(1)).astype(np.int64), 0, size - 1)
    extent = (hi - lo + 1).max(1)
    (ax, ay), (bx, by), (cx, cy) = p[:, 0].T, p[:, 1].T, p[:, 2].T
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    usable = (np.abs(area) > 1e-12) & (p.max(1) >= 0).all(1) & (p.min(1) <= size).all(1)
    pixels, depths, values = [], [], []
    box = 1
    while box <= size:
        batch = np.where(usable & (extent <= box) & (extent > box // 2 if box > 1 else True))[0]
        box_next = box * 2
        if len(batch):
            oy, ox = np.divmod(np.arange(box * box), box)
            gx = lo[batch, 0, None] + ox[None]
            gy = lo[batch, 1, None] + oy[None]
            within = (gx <= hi[batch, 0, None]) & (gy <= hi[batch, 1, None])
            cx_, cy_ = gx + 0.5, gy + 0.5
            A, B, C = (ax[batch, None], ay[batch, None]), (bx[batch, None], by[batch, None]), (cx[batch, None], cy[batch, None])
            w0 = ((B[0] - cx_) * (C[1] - cy_) - (B[1] - cy_) * (C[0] - cx_)) / area[batch, None]
            w1 = ((C[0] - cx_) * (A[1] - cy_) - (C[1] - cy_) * (A[0] - cx_)) / area[batch, None]
            w2 = 1 - w0 - w1
            inside = within & (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
            rows, cols = np.nonzero(inside)
            corner = tri[batch[rows]]
            z = (w0[rows, cols] * depth[corner[:, 0]] + w1[rows, cols] * depth[corner[:, 1]]
                 + w2[rows, cols] * depth[corner[:, 2]])
            pixels.append(gy[rows, cols] * size + gx[rows, cols])
            depths.append(z)
            values.append(value[batch[rows]])
        box = box_next
    image = np.full(size * size, background, dtype=np.float64)
    if pixels:
        pixel, z, shade = np.concatenate(pixels), np.concatenate(depths), np.concatenate(values)
        order = np.lexsort((z, pixel))  # by pixel, nearest (largest z) last
        last = np.r_[pixel[order][1:] != pixel[order][:-1], True]
        image[pixel[order][last]] = shade[order][last]
    return image.reshape(size, size)


def render_clip(frames: np.ndarray, triangles: np.ndarray, size: int, bounds: tuple[np.ndarray, float],
                crop: float = 1.0, colours: np.ndarray | None = None) -> np.ndarray:
    """RGB frames (T, size, size, 3) uint8 of a moving mesh seen front-on with fixed framing: the
    pictures of the test and benchmark videos of speakers whose motion is known."""
    images = [render(f, triangles, "front", size, bounds=bounds, crop=crop, colours=colours) for f in frames]
    return np.stack([np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image for image in images])


def frame_bounds(vertices: np.ndarray, view: str = "front") -> tuple[np.ndarray, float]:
    points = np.asarray(vertices, dtype=np.float64) @ VIEWS[view].T
    centre = (points.max(0) + points.min(0)) / 2
    return centre, (points.max(0) - points.min(0))[:2].max() / 2 * 1.05


def grid(images: list[np.ndarray], columns: int, gap: int = 4) -> np.ndarray:
    """Tile equally sized images into one sheet."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    sheet = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    return sheet


def write_png(path: str, image: np.ndarray) -> None:
    """Write a greyscale (H, W) or RGB (H, W, 3) uint8 image as PNG."""
    from .outputs import atomic_output

    image = np.ascontiguousarray(image, dtype=np.uint8)
    colour = 2 if image.ndim == 3 else 0
    h, w = image.shape[:2]
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with atomic_output(path) as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)))
        handle.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        handle.write(chunk(b"IEND", b""))
