"""Render the held-out (shape, colour) images that train.py evaluates on as PNG files, for measuring the embedded
models' zero-shot accuracy with clip-ts itself (scripts/eval-embedded.mjs): the same draws as train.py's
render_set(2000, HELD_OUT_PAIRS, seed + 2), kept at their canvas size (clip-ts does the resize and crop), so both
measure the same 2000 images.

    /usr/bin/python3 tools/train/render_heldout.py /tmp/heldout [n] [seed]
"""
from __future__ import annotations

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

CANVAS_SIZES = [64, 96, 128, 160, 224]  # train.CANVAS_SIZES (not imported: that would need torch)
HELD_OUT_SEED = 2  # train.py: args.seed (0) + 2


def main() -> None:
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else HELD_OUT_SEED
    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        s = data.random_sample(data.HELD_OUT_PAIRS, rng)
        name = f"{i:04d}.png"
        data.render(s, rng.choice(CANVAS_SIZES), rng).save(os.path.join(out, name))
        samples.append(dict(file=name, shape=s.shape, colour=s.colour))
    with open(os.path.join(out, "labels.json"), "w") as f:
        json.dump(dict(colours=data.COLOUR_NAMES, shapes=data.SHAPES, seed=seed, samples=samples), f)


if __name__ == "__main__":
    main()
