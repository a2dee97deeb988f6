"""Render held-out (shape, colour) samples as PNG files, for measuring the embedded models' zero-shot accuracy
with clip-ts itself (scripts/eval-embedded.mjs). Same renderer and canvas sizes as training; pairs never trained on.

    /usr/bin/python3 tools/train/render_heldout.py /tmp/heldout [n]
"""
from __future__ import annotations

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

CANVAS_SIZES = [64, 96, 128, 160, 224]  # as train.py


def main() -> None:
    out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400
    os.makedirs(out, exist_ok=True)
    rng = random.Random(12345)
    samples = []
    for i in range(n):
        s = data.random_sample(data.HELD_OUT_PAIRS, rng)
        name = f"{i:04d}.png"
        data.render(s, rng.choice(CANVAS_SIZES), rng).save(os.path.join(out, name))
        samples.append(dict(file=name, shape=s.shape, colour=s.colour))
    with open(os.path.join(out, "labels.json"), "w") as f:
        json.dump(dict(colours=data.COLOUR_NAMES, shapes=data.SHAPES, samples=samples), f)


if __name__ == "__main__":
    main()
