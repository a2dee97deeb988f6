"""Render examples/*.png from held-out (shape, colour) pairs and record what
the exported PyTorch models say about them (tools/train/eval_expected.json),
for cross-checking clip-ts.

    PYTHONPATH=/tmp/pylib /usr/bin/python3 make_examples.py
"""
from __future__ import annotations

import json
import os
import random

import torch
import torch.nn.functional as F
from PIL import Image

import data
import train

EXAMPLES = os.path.join(train.HERE, "..", "..", "examples")
CANVAS = 224
# One held-out pair per shape, with varied sizes and positions.
PICKS = [
    data.Sample("circle", "green", "large", "center"),
    data.Sample("square", "purple", "large", "left"),
    data.Sample("triangle", "black", "large", "top"),
    data.Sample("star", "blue", "large", "right"),
    data.Sample("cross", "orange", "small", "center"),
    data.Sample("diamond", "red", "large", "bottom"),
    data.Sample("heart", "yellow", "large", "center"),
]
LABELS = [f"{c} {s}" for s, c in data.HELD_OUT_PAIRS]
TEMPLATE = "a photo of a {}"


def main() -> None:
    for s in PICKS:
        assert (s.shape, s.colour) in data.HELD_OUT, s
    os.makedirs(EXAMPLES, exist_ok=True)
    files = {}
    for i, s in enumerate(PICKS):
        name = f"{s.colour}_{s.shape}.png"
        data.render(s, CANVAS, random.Random(1000 + i)).save(os.path.join(EXAMPLES, name))
        files[name] = dict(colour=s.colour, shape=s.shape, size=s.size, position=s.position,
                           label=f"{s.colour} {s.shape}")
    with open(os.path.join(EXAMPLES, "labels.json"), "w") as f:
        json.dump(dict(
            note="Rendered by tools/train/make_examples.py from (shape, colour) pairs held out of training.",
            images=files, labels=LABELS, template=TEMPLATE,
            colours=data.COLOUR_NAMES, shapes=data.SHAPES,
        ), f, indent=1)

    tok = train.Tokens()
    expected = dict(
        note="PyTorch reference CLIP, fp16 safetensors upcast to fp32, run in fp32. Images are the PNG files "
             "through the reference _transform(64). probs = softmax(logit_scale.exp() * cosine) over the labels; "
             "'raw' prompts are the labels as given, 'template' prompts are template.format(label). "
             "image_features / text_features are encode_image / encode_text outputs before normalisation.",
        labels=LABELS, template=TEMPLATE, models={},
    )
    prompts = {"raw": LABELS, "template": [TEMPLATE.format(l) for l in LABELS]}
    for arch in sorted(train.CONFIGS):
        path = os.path.join(train.WEIGHTS, f"clip-tiny-{arch}.safetensors")
        model = train.load_exported(path)
        pre = train._transform(model.visual.input_resolution)
        with torch.no_grad():
            images = torch.stack([pre(Image.open(os.path.join(EXAMPLES, n))) for n in files])
            img = model.encode_image(images)
            scale = model.logit_scale.exp()
            entry = dict(file=os.path.basename(path), logit_scale=float(scale),
                         image_features={n: img[i].tolist() for i, n in enumerate(files)}, prompts={})
            for kind, texts in prompts.items():
                tokens = tok(texts)
                txt = model.encode_text(tokens)
                logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
                probs = logits.softmax(dim=-1)
                entry["prompts"][kind] = dict(
                    texts=texts,
                    tokens=[tok.ids(t) for t in texts],
                    text_features=txt.tolist(),
                    logits={n: logits[i].tolist() for i, n in enumerate(files)},
                    probs={n: probs[i].tolist() for i, n in enumerate(files)},
                    top1={n: LABELS[int(probs[i].argmax())] for i, n in enumerate(files)},
                )
                right = sum(entry["prompts"][kind]["top1"][n] == files[n]["label"] for n in files)
                print(f"{arch} {kind}: {right}/{len(files)} examples right")
        expected["models"][arch] = entry
    with open(os.path.join(train.HERE, "eval_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
