"""Synthetic "coloured shape" data set for the tiny demo CLIPs.

Every image is one coloured shape (size, position, small rotation, colour
jitter) on a muted solid / gradient / noisy background, with a caption drawn
from templates. A fixed set of (shape, colour) pairs is never used for
training; those pairs are the held-out zero-shot evaluation set.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "star", "cross", "diamond", "heart"]
COLOURS = {
    "red": (215, 30, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (240, 215, 35),
    "purple": (135, 45, 175),
    "orange": (245, 135, 25),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
COLOUR_NAMES = list(COLOURS)
SIZES = ["small", "large"]
POSITIONS = ["left", "right", "top", "bottom", "center"]
POSITION_PHRASE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}

# 10 of the 56 pairs (18%): every shape and every colour loses one or two
# partners, so each word is still trained with most of the others.
HELD_OUT = {(SHAPES[i], COLOUR_NAMES[(3 * i + 1) % 8]) for i in range(7)} | {
    ("circle", "purple"),
    ("square", "orange"),
    ("star", "white"),
}
TRAIN_PAIRS = [(s, c) for s in SHAPES for c in COLOUR_NAMES if (s, c) not in HELD_OUT]
HELD_OUT_PAIRS = sorted(HELD_OUT, key=lambda p: (SHAPES.index(p[0]), COLOUR_NAMES.index(p[1])))

# Templates by what they name. Zero-shot evaluation uses the first one of
# each group ("a photo of a ..."), as a CLIP user would.
FULL_TEMPLATES = [
    "a photo of a {colour} {shape}",
    "a {colour} {shape}",
    "{colour} {shape}",
    "a {size} {colour} {shape}",
    "a {colour} {shape} {where}",
    "a {size} {colour} {shape} {where}",
    "a picture of a {size} {colour} {shape}",
    "a photo of a {colour} {shape} {where}",
]
COLOUR_TEMPLATES = [
    "a photo of a {colour} object",
    "a {colour} object",
    "a {colour} shape",
    "something {colour}",
    "{colour}",
]
SHAPE_TEMPLATES = [
    "a photo of a {shape}",
    "a {shape}",
    "a {shape} shape",
    "a {size} {shape}",
    "a {shape} {where}",
    "{shape}",
]
# Training batches come in kinds (train.py schedules them), each with its own
# caption mix. In a batch of one colour, colour words carry no information, so
# captions naming only the shape cannot pick up a colour bias; likewise for
# colour-only captions in a batch of one shape. In "uniform" batches they can:
# "a circle" learns "never purple" from the held-out holes and purple circles
# get called hearts. But that bias is also what first pulls the shape words
# apart, so training starts uniform (the ViT sits for hundreds of steps on a
# colour-only plateau without it) and moves to the unbiased kinds.
CAPTION_MIXES = {
    "uniform": ((FULL_TEMPLATES, 0.5), (COLOUR_TEMPLATES, 0.1), (SHAPE_TEMPLATES, 0.4)),
    # Only captions without the batch's shared word: a colour word in a batch
    # of one colour would match every image and fight the colour alignment.
    "one_colour": ((SHAPE_TEMPLATES, 1.0),),
    "one_shape": ((COLOUR_TEMPLATES, 1.0),),
    "mixed": ((FULL_TEMPLATES, 1.0),),
}
# Share of training images whose shape is in an unnamed colour.
UNNAMED_SHARE = 0.4
# Pink, brown, grey, cyan, olive, tan, wine, lavender: each over 100 (RGB
# distance) from every named colour, checked in data_check(); jittered by at
# most 10 per channel.
UNNAMED = [(250, 150, 190), (120, 70, 30), (150, 150, 150), (40, 210, 230),
           (128, 128, 0), (200, 165, 115), (110, 10, 60), (180, 160, 235)]


@dataclass(frozen=True)
class Sample:
    shape: str
    colour: str  # a COLOURS name, or "" for an unnamed colour given by rgb
    size: str
    position: str
    rgb: tuple[int, int, int] | None = None


def all_captions(s: Sample) -> list[str]:
    """Every caption the templates can give this sample (BPE corpus)."""
    fields = dict(shape=s.shape, colour=s.colour, size=s.size, where=POSITION_PHRASE[s.position])
    groups = [FULL_TEMPLATES, COLOUR_TEMPLATES, SHAPE_TEMPLATES] if s.colour else [SHAPE_TEMPLATES]
    return [t.format(**fields) for group in groups for t in group]


def caption(s: Sample, mix: str, rng: random.Random) -> str:
    """A caption for `s` drawn from CAPTION_MIXES[mix]; unnamed colours only
    ever get shape captions."""
    fields = dict(shape=s.shape, colour=s.colour, size=s.size, where=POSITION_PHRASE[s.position])
    if not s.colour:
        return rng.choice(SHAPE_TEMPLATES).format(**fields)
    r = rng.random()
    for group, p in CAPTION_MIXES[mix]:
        if r < p:
            break
        r -= p
    return rng.choice(group).format(**fields)


def unnamed_colour(rng: random.Random) -> tuple[int, int, int]:
    """A jittered colour from UNNAMED (never named in captions).

    Shapes in these colours, captioned by shape only, teach colour-free shape
    features without showing any held-out pair in (or near) its colour.
    """
    base = rng.choice(UNNAMED)
    return tuple(min(255, max(0, v + rng.randint(-10, 10))) for v in base)


def _shape_polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a) + 0.15) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "star":
        pts = [
            ((1.0 if k % 2 == 0 else 0.42) * math.cos(-math.pi / 2 + k * math.pi / 5),
             (1.0 if k % 2 == 0 else 0.42) * math.sin(-math.pi / 2 + k * math.pi / 5) + 0.08)
            for k in range(10)
        ]
    elif shape == "cross":
        w = 0.3
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1),
               (-w, w), (-1, w), (-1, -w), (-w, -w)]
    elif shape == "diamond":
        # Narrower than a square turned 45 degrees, so the two stay distinct.
        pts = [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)]
    elif shape == "heart":
        pts = []
        for k in range(48):
            t = 2 * math.pi * k / 48
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((x / 17, -y / 17 + 0.05))
    else:
        raise ValueError(f"no polygon for shape {shape!r}")
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def _background(size: int, avoid: np.ndarray, rng: random.Random, nrng: np.random.Generator) -> np.ndarray:
    """Muted background whose colours all stay far from the object colour."""
    def muted() -> np.ndarray:
        for _ in range(1000):
            grey = rng.uniform(20, 235)
            sat = rng.uniform(0.0, 0.45)
            c = np.array([grey * (1 - sat) + rng.uniform(0, 255) * sat for _ in range(3)])
            if np.linalg.norm(c - avoid) > 150:
                return c
        raise RuntimeError("no background colour far enough from the object colour")

    kind = rng.choice(["solid", "gradient", "noise", "gradient_noise"])
    a = muted()
    if kind in ("gradient", "gradient_noise"):
        b = muted()
        theta = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = np.clip((xs - 0.5) * math.cos(theta) + (ys - 0.5) * math.sin(theta) + 0.5, 0, 1)
        img = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    else:
        img = np.broadcast_to(a, (size, size, 3)).astype(np.float64)
    if kind in ("noise", "gradient_noise"):
        img = img + nrng.normal(0, rng.uniform(4, 14), size=(size, size, 1 if rng.random() < 0.5 else 3))
    return np.clip(img, 0, 255)


def render(s: Sample, size: int, rng: random.Random) -> Image.Image:
    """One RGB image of `s` on a size x size canvas."""
    nrng = np.random.default_rng(rng.getrandbits(64))
    if s.colour:
        base = np.array(COLOURS[s.colour], dtype=np.float64)
        colour = np.clip(base + np.array([rng.uniform(-18, 18) for _ in range(3)]), 0, 255)
    else:
        colour = np.array(s.rgb, dtype=np.float64)
    bg = _background(size, colour, rng, nrng)

    frac = rng.uniform(0.15, 0.19) if s.size == "small" else rng.uniform(0.26, 0.32)
    r = frac * size
    margin = 0.04 * size
    lo, hi = r + margin, size - r - margin
    mid = size / 2
    off = 0.27 * size
    cx = {"left": mid - off, "right": mid + off}.get(s.position, mid)
    cy = {"top": mid - off, "bottom": mid + off}.get(s.position, mid)
    cx = min(max(cx + rng.uniform(-0.04, 0.04) * size, lo), hi)
    cy = min(max(cy + rng.uniform(-0.04, 0.04) * size, lo), hi)

    # Draw the mask supersampled, then box-filter down: anti-aliased edges.
    ss = 4
    mask = Image.new("L", (size * ss, size * ss), 0)
    d = ImageDraw.Draw(mask)
    if s.shape == "circle":
        d.ellipse([(cx - r) * ss, (cy - r) * ss, (cx + r) * ss, (cy + r) * ss], fill=255)
    else:
        angle = math.radians(rng.uniform(-12, 12))
        d.polygon([(x * ss, y * ss) for x, y in _shape_polygon(s.shape, cx, cy, r, angle)], fill=255)
    alpha = np.asarray(mask.resize((size, size), Image.BOX), dtype=np.float64)[..., None] / 255.0
    img = bg * (1 - alpha) + colour[None, None, :] * alpha
    return Image.fromarray(np.round(img).astype(np.uint8), "RGB")


def render_version() -> str:
    """Digest of everything that decides pixels, for on-disk image caches."""
    src = "".join(inspect.getsource(f) for f in (_shape_polygon, _background, render, random_sample, unnamed_colour))
    return hashlib.sha256((src + repr((COLOURS, SHAPES, SIZES, POSITIONS, UNNAMED))).encode()).hexdigest()[:16]


def random_sample(pairs: list[tuple[str, str]], rng: random.Random, unnamed_share: float = 0.0) -> Sample:
    if rng.random() < unnamed_share:
        return Sample(rng.choice(SHAPES), "", rng.choice(SIZES), rng.choice(POSITIONS), unnamed_colour(rng))
    shape, colour = rng.choice(pairs)
    return Sample(shape, colour, rng.choice(SIZES), rng.choice(POSITIONS))


def data_check() -> None:
    for u in UNNAMED:
        near = min(COLOURS, key=lambda n: math.dist(u, COLOURS[n]))
        if math.dist(u, COLOURS[near]) <= 100:
            raise ValueError(f"unnamed colour {u} is too close to {near}")
    for shape, colour in HELD_OUT:
        if shape not in SHAPES or colour not in COLOURS:
            raise ValueError(f"held-out pair {(shape, colour)} is not in the vocabulary")
