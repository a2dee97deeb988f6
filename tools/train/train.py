"""Train a tiny CLIP (reference openai/CLIP `CLIP` class) on the synthetic
coloured-shape data of data.py, evaluate zero-shot on held-out (shape, colour)
pairs, and export fp16 safetensors.

    PYTHONPATH=/tmp/pylib /usr/bin/python3 train.py --arch vit
    PYTHONPATH=/tmp/pylib /usr/bin/python3 train.py --arch rn

CLIP_REPO points at the openai/CLIP checkout (default /work/ref); the
reference tokenizer needs ftfy and regex importable.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.environ.get("CLIP_REPO", "/work/ref"))
from clip.clip import _transform  # noqa: E402
from clip.model import CLIP  # noqa: E402
from clip.simple_tokenizer import SimpleTokenizer  # noqa: E402

import data  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "..", "..", "weights")
VOCAB = os.path.join(WEIGHTS, "vocab.txt.gz")
RESOLUTION = 64
CONTEXT_LENGTH = 77
# Canvas sizes the images are rendered at before the reference preprocessing
# scales them to RESOLUTION, so PNGs of any of these sizes look familiar.
CANVAS_SIZES = [64, 96, 128, 160, 224]
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

TEXT = dict(context_length=CONTEXT_LENGTH, transformer_width=64, transformer_heads=1, transformer_layers=2)
CONFIGS = {
    # Heads follow the reference build_model(): width // 64 (ViT, text), width * 32 // 64 (ResNet).
    "vit": dict(embed_dim=64, image_resolution=RESOLUTION, vision_layers=4, vision_width=64,
                vision_patch_size=8, **TEXT),
    "rn": dict(embed_dim=64, image_resolution=RESOLUTION, vision_layers=(1, 1, 1, 1), vision_width=16,
               vision_patch_size=None, **TEXT),
}

# Training defaults per tower. The ViT needs twice the steps: it sits on a
# colour-only plateau for ~800 steps before shape features appear.
ARCH_DEFAULTS = {
    "vit": dict(steps=3000, batch=128, lr=2e-3, warm_frac=0.5),
    "rn": dict(steps=1500, batch=128, lr=2e-3, warm_frac=0.3),
}

COLOUR_PROMPT = "a photo of a {colour} object"
SHAPE_PROMPT = "a photo of a {shape}"
PAIR_PROMPT = "a photo of a {colour} {shape}"


# ---------------------------------------------------------------- tokenizer
class Tokens:
    """Reference SimpleTokenizer on our merges, padded like clip.tokenize."""

    def __init__(self, bpe_path: str = VOCAB, context_length: int = CONTEXT_LENGTH):
        self.tok = SimpleTokenizer(bpe_path=bpe_path)
        self.vocab_size = len(self.tok.encoder)
        self.sot = self.tok.encoder["<|startoftext|>"]
        self.eot = self.tok.encoder["<|endoftext|>"]
        self.context_length = context_length
        self.cache: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        if text not in self.cache:
            ids = [self.sot] + self.tok.encode(text) + [self.eot]
            if len(ids) > self.context_length:
                raise ValueError(f"{text!r} is {len(ids)} tokens, context_length is {self.context_length}")
            self.cache[text] = ids
        return self.cache[text]

    def __call__(self, texts: list[str], length: int | None = None) -> torch.Tensor:
        seqs = [self.ids(t) for t in texts]
        n = length or self.context_length
        out = torch.zeros(len(seqs), n, dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = torch.tensor(s)
        return out


# ---------------------------------------------------------------- images
def geometry(res: int):
    """The PIL part of the reference _transform(res): bicubic resize, centre crop, RGB."""
    return _transform(res).transforms[:3]


def to_input(u8: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> normalised NCHW float, the same ops as the reference ToTensor + Normalize."""
    x = torch.from_numpy(np.array(u8)).permute(0, 3, 1, 2).contiguous().float().div(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def render_set(n: int, pairs, seed: int, res: int, cache_dir: str, unnamed_share: float = 0.0):
    """n rendered samples of `pairs`, after the reference resize/crop (uint8, cached)."""
    key = hashlib.sha256(json.dumps([n, sorted(pairs), seed, res, CANVAS_SIZES, unnamed_share,
                                     data.render_version()]).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"set-{key}.npz")
    if os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return z["images"], [data.Sample(*m[:4], tuple(m[4]) if m[4] else None) for m in meta]
    rng = random.Random(seed)
    geo = geometry(res)
    images = np.empty((n, res, res, 3), dtype=np.uint8)
    samples = []
    for i in range(n):
        s = data.random_sample(pairs, rng, unnamed_share)
        img = data.render(s, rng.choice(CANVAS_SIZES), rng)
        for t in geo:
            img = t(img)
        images[i] = np.asarray(img)
        samples.append(s)
    os.makedirs(cache_dir, exist_ok=True)
    meta = json.dumps([[s.shape, s.colour, s.size, s.position, s.rgb] for s in samples])
    np.savez(path, images=images, meta=np.array(meta))
    return images, samples


# ---------------------------------------------------------------- model
def encode_text_prefix(model: CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text on the first L <= context_length positions only.

    The text mask is causal, so the features at and before the EOT token do
    not depend on the padding after it: this equals encode_text on the padded
    sequence (checked in main) at a fraction of the cost.
    """
    L = tokens.shape[1]
    full = [b.attn_mask for b in model.transformer.resblocks]
    try:
        for b, m in zip(model.transformer.resblocks, full):
            b.attn_mask = m[:L, :L]
        x = model.token_embedding(tokens) + model.positional_embedding[:L]
        x = model.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = model.ln_final(x)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection
    finally:
        for b, m in zip(model.transformer.resblocks, full):
            b.attn_mask = m


def clip_loss(model: CLIP, images: torch.Tensor, tokens: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over the in-batch similarity matrix (CLIP paper, fig. 3).
    `tokens` holds the distinct captions; `inverse` maps each image to its caption."""
    img = F.normalize(model.encode_image(images), dim=-1)
    txt = F.normalize(encode_text_prefix(model, tokens), dim=-1)[inverse]
    logits = model.logit_scale.exp() * img @ txt.t()
    target = torch.arange(len(images))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def text_features(model: CLIP, tok: Tokens, prompts: list[str]) -> torch.Tensor:
    return F.normalize(model.encode_text(tok(prompts)), dim=-1)


@torch.no_grad()
def image_features(model: CLIP, u8: np.ndarray, batch: int = 500) -> torch.Tensor:
    return torch.cat([F.normalize(model.encode_image(to_input(u8[i:i + batch])), dim=-1)
                      for i in range(0, len(u8), batch)])


@torch.no_grad()
def zero_shot(model: CLIP, tok: Tokens, u8: np.ndarray, samples) -> dict:
    was = model.training
    model.eval()
    img = image_features(model, u8)
    res = {}
    tasks = {
        "colour": ([COLOUR_PROMPT.format(colour=c) for c in data.COLOUR_NAMES], [data.COLOUR_NAMES.index(s.colour) for s in samples]),
        "shape": ([SHAPE_PROMPT.format(shape=s) for s in data.SHAPES], [data.SHAPES.index(s.shape) for s in samples]),
        "pair": ([PAIR_PROMPT.format(colour=c, shape=s) for s in data.SHAPES for c in data.COLOUR_NAMES],
                 [data.SHAPES.index(s.shape) * len(data.COLOUR_NAMES) + data.COLOUR_NAMES.index(s.colour) for s in samples]),
    }
    for name, (prompts, truth) in tasks.items():
        pred = (img @ text_features(model, tok, prompts).t()).argmax(dim=-1)
        res[name] = float((pred == torch.tensor(truth)).float().mean())
    model.train(was)
    return res


# ---------------------------------------------------------------- export
def exported_state(model: CLIP) -> dict[str, torch.Tensor]:
    """Reference state_dict keys in fp16; BatchNorm num_batches_tracked dropped
    (an integer step counter that inference never reads)."""
    return {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def save_safetensors(path: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    try:
        from safetensors.torch import save_file
    except ImportError:
        save_file = None
    if save_file is not None:
        save_file(tensors, path, metadata=metadata)
        return
    # By hand: u64 LE header length, JSON header, then the raw tensors.
    header: dict = {"__metadata__": metadata}
    blobs, offset = [], 0
    for k in sorted(tensors):
        b = tensors[k].numpy().astype("<f2").tobytes()
        header[k] = {"dtype": "F16", "shape": list(tensors[k].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_exported(path: str) -> CLIP:
    """Rebuild a CLIP from an exported file the way the reference build_model()
    infers shapes, weights upcast to fp32."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    config = json.loads(header.pop("__metadata__")["clip_config"])
    if isinstance(config["vision_layers"], list):
        config["vision_layers"] = tuple(config["vision_layers"])
    sd = {}
    for k, v in header.items():
        assert v["dtype"] == "F16", (k, v["dtype"])
        a, b = v["data_offsets"]
        sd[k] = torch.from_numpy(np.frombuffer(blob[a:b], dtype="<f2").reshape(v["shape"]).astype(np.float32))
    model = CLIP(**config)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return model.eval()


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--n-train", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--warm-frac", type=float, help="uniform batches phase out over this fraction of the steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="/tmp/clip-ts-train-cache")
    ap.add_argument("--out", default=None, help="default weights/clip-tiny-<arch>.safetensors")
    ap.add_argument("--log", default=None, help="JSON summary, default tools/train/runs/<arch>.json")
    args = ap.parse_args()
    for k, v in ARCH_DEFAULTS[args.arch].items():
        if getattr(args, k) is None:
            setattr(args, k, v)

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    data.data_check()
    tok = Tokens()
    config = dict(CONFIGS[args.arch], vocab_size=tok.vocab_size)
    print(f"tokenizer: vocab {tok.vocab_size}, sot {tok.sot}, eot {tok.eot}", flush=True)

    t0 = time.time()
    train_u8, train_s = render_set(args.n_train, data.TRAIN_PAIRS, args.seed + 1, RESOLUTION, args.cache,
                                   data.UNNAMED_SHARE)
    held_u8, held_s = render_set(2000, data.HELD_OUT_PAIRS, args.seed + 2, RESOLUTION, args.cache)
    seen_u8, seen_s = render_set(1000, data.TRAIN_PAIRS, args.seed + 3, RESOLUTION, args.cache)
    print(f"data: {len(train_s)} train, {len(held_s)} held-out-pair, {len(seen_s)} seen-pair images "
          f"({time.time() - t0:.0f}s)", flush=True)

    # The uint8 cache + to_input must give exactly the reference preprocessing.
    check = data.render(held_s[0], 160, random.Random(5))
    ref = _transform(RESOLUTION)(check)
    mine = check
    for t in geometry(RESOLUTION):
        mine = t(mine)
    assert torch.equal(ref, to_input(np.asarray(mine)[None])[0]), "preprocessing differs from reference _transform"

    model = CLIP(**config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch}: {n_params} parameters, config {config}", flush=True)

    # Prefix text encoding must equal the reference encode_text.
    with torch.no_grad():
        probe = tok(["a photo of a red circle", "a small blue star at the top", "green"])
        L = int(probe.argmax(-1).max()) + 1
        full = model.encode_text(probe)
        short = encode_text_prefix(model, probe[:, :L])
        assert torch.allclose(full, short, atol=1e-5), float((full - short).abs().max())

    # CLIP paper: no weight decay on gains, biases, embeddings-like vectors and the temperature.
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98), eps=1e-6)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * p))

    cap_rng = random.Random(args.seed + 4)
    gen = torch.Generator().manual_seed(args.seed + 5)
    # Batch kinds (see data.CAPTION_MIXES): "uniform" batches are drawn with
    # probability falling linearly from 1 to 0 over the first warm_frac of the
    # steps; otherwise the step cycles through all-one-colour (named, or the
    # unnamed ones together), all-one-shape (named colours only) and mixed.
    by_colour: dict[str, list[int]] = {}
    by_shape: dict[str, list[int]] = {}
    for i, s in enumerate(train_s):
        by_colour.setdefault(s.colour, []).append(i)
        if s.colour:
            by_shape.setdefault(s.shape, []).append(i)
    everything = [torch.arange(len(train_s))]
    pools = {"one_colour": [torch.tensor(by_colour[k]) for k in sorted(by_colour)],
             "one_shape": [torch.tensor(by_shape[k]) for k in sorted(by_shape)],
             "mixed": everything, "uniform": everything}
    cycle = ["one_colour", "one_shape", "mixed"]

    def batch_kind(step: int) -> str:
        p_uniform = max(0.0, 1.0 - step / max(1.0, args.warm_frac * args.steps))
        if float(torch.rand((), generator=gen)) < p_uniform:
            return "uniform"
        return cycle[step % len(cycle)]

    def draw_batch(kind: str) -> np.ndarray:
        pool = pools[kind][int(torch.randint(len(pools[kind]), (1,), generator=gen))]
        return pool[torch.randint(len(pool), (args.batch,), generator=gen)].numpy()

    # The machine is shared and runs get killed now and then: checkpoint every
    # ckpt_every steps with every RNG state, so a rerun of the same command
    # resumes bit-for-bit where it stopped.
    run_key = hashlib.sha256(json.dumps([config, {k: v for k, v in vars(args).items()
                                                  if k not in ("out", "log", "eval_every")},
                                         data.render_version(), open(VOCAB, "rb").read().hex()],
                                        sort_keys=True).encode()).hexdigest()[:16]
    ckpt_path = os.path.join(args.cache, f"ckpt-{args.arch}-{run_key}.pt")
    history: list = []
    start, elapsed = 0, 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        cap_rng.setstate(ck["cap_rng"])
        start, elapsed, history = ck["step"], ck["elapsed"], ck["history"]
        print(f"resumed from {ckpt_path} at step {start}", flush=True)
    t0 = time.time() - elapsed
    for step in range(start, args.steps):
        if step > start and step % args.ckpt_every == 0:
            torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), gen=gen.get_state(),
                            cap_rng=cap_rng.getstate(), step=step, elapsed=time.time() - t0,
                            history=history), ckpt_path + ".tmp")
            os.replace(ckpt_path + ".tmp", ckpt_path)
        kind = batch_kind(step)
        idx = draw_batch(kind)
        images = to_input(train_u8[idx])
        captions = [data.caption(train_s[i], kind, cap_rng) for i in idx]
        distinct = sorted(set(captions))
        where = {c: i for i, c in enumerate(distinct)}
        inverse = torch.tensor([where[c] for c in captions])
        L = max(len(tok.ids(c)) for c in distinct)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = clip_loss(model, images, tok(distinct, L), inverse)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP paper: temperature capped at 100
        if step % 100 == 0 or step == args.steps - 1:
            msg = dict(step=step, kind=kind, loss=round(float(loss), 4), scale=round(float(model.logit_scale.exp()), 2),
                       t=round(time.time() - t0, 1))
            if step % args.eval_every == 0 or step == args.steps - 1:
                msg["held_out"] = zero_shot(model, tok, held_u8[:500], held_s[:500])
                msg["seen"] = zero_shot(model, tok, seen_u8[:500], seen_s[:500])
            history.append(msg)
            print(json.dumps(msg), flush=True)
    train_seconds = time.time() - t0
    if os.path.exists(ckpt_path):
        os.remove(ckpt_path)

    out = args.out or os.path.join(WEIGHTS, f"clip-tiny-{args.arch}.safetensors")
    meta_config = dict(config, vision_layers=list(config["vision_layers"])
                       if isinstance(config["vision_layers"], tuple) else config["vision_layers"])
    save_safetensors(out, exported_state(model), {"format": "pt", "clip_config": json.dumps(meta_config)})

    # Accuracies reported from the exported fp16 weights, run in fp32.
    exported = load_exported(out)
    summary = dict(
        arch=args.arch, config=meta_config, parameters=n_params, args=vars(args),
        train_seconds=round(train_seconds, 1), file=os.path.basename(out), file_bytes=os.path.getsize(out),
        held_out=zero_shot(exported, tok, held_u8, held_s), seen=zero_shot(exported, tok, seen_u8, seen_s),
        logit_scale=float(exported.logit_scale.exp()), prompts=dict(colour=COLOUR_PROMPT, shape=SHAPE_PROMPT, pair=PAIR_PROMPT),
        history=history,
    )
    log = args.log or os.path.join(HERE, "runs", f"{args.arch}.json")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: summary[k] for k in ("arch", "train_seconds", "file_bytes", "held_out", "seen")}), flush=True)


if __name__ == "__main__":
    main()
