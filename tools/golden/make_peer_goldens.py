#!/usr/bin/env python3
"""Writes test/golden/peers/<case>/: tiny CLIP checkpoints saved by the real peers (Hugging Face
transformers CLIPModel and open_clip), with fixed inputs and the peers' own float32 outputs.

Run with the venv that has transformers 5.18 + open_clip 3.3 + torch 2.14 (see README.md):
    /root/.cache/hfvenv/bin/python tools/golden/make_peer_goldens.py
Nothing is downloaded: every model is built from a config with seeded random weights.
"""
import hashlib
import json
import math
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import open_clip  # noqa: E402
import safetensors  # noqa: E402
import safetensors.torch  # noqa: E402
import transformers  # noqa: E402
from open_clip.push_to_hf_hub import save_config_for_hf  # noqa: E402
from transformers import CLIPConfig, CLIPModel  # noqa: E402

transformers.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "golden" / "peers"
CONTEXT = 77
VOCAB = 256  # tiny vocab (token_embedding 49408 rows would not fit the size budget); tokens are synthetic ids
SOT, EOT = VOCAB - 2, VOCAB - 1
VERSIONS = {
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "open_clip": open_clip.__version__,
    "safetensors": safetensors.__version__,
    "numpy": np.__version__,
}


# ---------------------------------------------------------------- weights and inputs

def randomise(model, seed, openclip):
    """Redraws every parameter/buffer so nothing is an identity (LayerNorm weights != 1, biases != 0).
    numpy's generator, so the values do not depend on the torch version."""
    rng = np.random.default_rng(seed)
    sd = model.state_dict()
    new = {}
    for name, t in sd.items():
        shape = tuple(t.shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            new[name] = torch.tensor(int(rng.integers(1, 1000)), dtype=t.dtype)
            continue
        if name == "logit_scale":
            v = math.log(1 / 0.07) + rng.normal(0, 0.1, shape)
        elif leaf == "running_mean":
            v = rng.normal(0, 0.1, shape)
        elif leaf == "running_var":
            v = rng.uniform(0.5, 1.5, shape)
        elif "token_embedding" in name or "class_embedding" in name:
            v = rng.normal(0, 1, shape)
        elif "position" in name and "embedding" in name:
            v = rng.normal(0, 0.5, shape)
        elif len(shape) <= 1:
            v = rng.normal(0, 0.1, shape) if leaf == "bias" else rng.uniform(0.5, 1.5, shape)
        else:
            # open_clip's visual.proj / text_projection are used as x @ W: fan-in is the first dim
            fan_in = shape[0] if openclip and name in ("visual.proj", "text_projection") else int(np.prod(shape[1:]))
            v = rng.normal(0, 1 / math.sqrt(fan_in), shape)
        new[name] = torch.from_numpy(np.asarray(v, dtype=np.float32)).reshape(shape)
    model.load_state_dict(new, strict=True)
    return model


def make_pixels(seed, res):
    return np.random.default_rng(seed).standard_normal((2, 3, res, res)).astype(np.float32)


def make_tokens(seed, rows, lo=1, hi=SOT):
    """rows: list of dicts {len, sot, eot, pad, extra:[(pos, id)]}; ids in [lo, hi)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(rows), CONTEXT), dtype=np.int64)
    for i, r in enumerate(rows):
        n = r["len"]
        out[i, :] = r.get("pad", 0)
        out[i, 0] = r["sot"]
        out[i, 1:n - 1] = rng.integers(lo, hi, n - 2)
        for pos, tid in r.get("extra", []):
            out[i, pos] = tid
        out[i, n - 1] = r["eot"]
    return out


def sha256(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def save_npy(d, name, arr):
    np.save(d / name, arr)


def finish(d, manifest):
    roles = manifest.pop("_roles")
    files = []
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            rel = p.relative_to(d).as_posix()
            entry = {"path": rel, "bytes": p.stat().st_size, "sha256": sha256(p), "role": roles.get(rel, "weights")}
            if p.suffix == ".npy":
                a = np.load(p)
                entry.update(shape=list(a.shape), dtype=str(a.dtype))
            files.append(entry)
    manifest["files"] = files
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def fresh(case):
    d = OUT / case
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


IO_ROLES = {
    "pixels.npy": "input", "tokens.npy": "input",
    "image_features.npy": "output", "text_features.npy": "output",
}


# ---------------------------------------------------------------- Hugging Face transformers

def hf_config(vision, text, projection_dim):
    return CLIPConfig(text_config=dict(text), vision_config=dict(vision), projection_dim=projection_dim)


def hf_model(cfg_dict, state_dict=None, seed=None):
    m = CLIPModel(CLIPConfig.from_dict(cfg_dict))
    m.eval()
    if seed is not None:
        randomise(m, seed, openclip=False)
    if state_dict is not None:
        m.load_state_dict(state_dict, strict=True)
    return m


@torch.no_grad()
def hf_features(m, pixels, tokens):
    # transformers 5.x: get_*_features return BaseModelOutputWithPooling; pooler_output is the projected embedding
    img = m.get_image_features(pixel_values=torch.from_numpy(pixels)).pooler_output
    txt = m.get_text_features(input_ids=torch.from_numpy(tokens)).pooler_output
    return img.float().numpy(), txt.float().numpy()


def hf_cfg_dict(m):
    return m.config.to_dict()


def tower_expect_hf(c, text):
    heads = c["num_attention_heads"]
    e = {
        "layers": c["num_hidden_layers"], "width": c["hidden_size"], "heads": heads,
        "head_width": c["hidden_size"] // heads, "mlp_width": c["intermediate_size"],
        "activation": c["hidden_act"], "ln_eps": c["layer_norm_eps"],
    }
    if text:
        e.update(vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"])
        eos = c["eos_token_id"]
        e["pool"] = ({"type": "argmax", "why": "text_config.eos_token_id == 2 (legacy config): HF pools at argmax(input_ids)"}
                     if eos == 2 else
                     {"type": "eos", "eos_token_id": eos, "why": "HF pools at the first position where input_ids == eos_token_id"})
    return e


def hf_expect(cfg):
    v, t = cfg["vision_config"], cfg["text_config"]
    return {
        "arch": "vit", "embed_dim": cfg["projection_dim"], "image_resolution": v["image_size"],
        "patch_size": v["patch_size"], "vision": tower_expect_hf(v, False), "text": tower_expect_hf(t, True),
    }


def hf_case(case, vision, text, projection_dim, seed, tokens_rows, save, note=None, refusal=None, tweak=None,
            sensitivity=None, token_range=(1, SOT)):
    d = fresh(case)
    cfg = hf_config(vision, text, projection_dim)
    m = CLIPModel(cfg).eval()
    randomise(m, seed, openclip=False)
    if tweak:
        tweak(m)
    roles = {"config.json": "config"}
    manifest = {
        "case": case, "kind": "refusal" if refusal else "golden", "peer": "transformers",
        "peer_version": transformers.__version__, "versions": VERSIONS, "seed": seed,
        "model_class": "transformers.CLIPModel",
        "vocab_note": f"vocab_size {VOCAB} (not 49408): tokens.npy holds synthetic ids, not the OpenAI tokenizer's",
    }
    weights = save(m, d)
    manifest["weights"] = weights
    cfg_dict = json.loads((d / "config.json").read_text())
    manifest["expect"] = hf_expect(cfg_dict)
    if refusal:
        manifest["refusal"] = refusal
        manifest["notes"] = note or []
        manifest["_roles"] = roles
        finish(d, manifest)
        return
    res = vision["image_size"]
    pixels = make_pixels(seed + 1, res)
    tokens = make_tokens(seed + 2, tokens_rows, *token_range)
    ref = weights.pop("_reference_model", None) or m
    img, txt = hf_features(ref, pixels, tokens)
    # the saved files, loaded back by transformers itself, must give the same numbers
    back = weights.pop("_reload")(d)
    bimg, btxt = hf_features(back, pixels, tokens)
    assert maxdiff(img, bimg) == 0 and maxdiff(txt, btxt) == 0, (case, maxdiff(img, bimg), maxdiff(txt, btxt))
    save_npy(d, "pixels.npy", pixels)
    save_npy(d, "tokens.npy", tokens)
    save_npy(d, "image_features.npy", img)
    save_npy(d, "text_features.npy", txt)
    roles.update(IO_ROLES)
    manifest["tokens"] = describe_tokens(tokens_rows)
    manifest["reference"] = weights.pop("_reference_note", "float32 CLIPModel, eval(), no_grad; "
                                        "image_features = get_image_features(pixel_values).pooler_output, "
                                        "text_features = get_text_features(input_ids).pooler_output (projected, not normalised)")
    manifest["logit_scale"] = float(ref.logit_scale.item())
    sens = {}
    for label, change in (sensitivity or {}).items():
        c2 = json.loads(json.dumps(cfg_dict))
        change(c2)
        alt = hf_model(c2, state_dict=ref.state_dict())
        aimg, atxt = hf_features(alt, pixels, tokens)
        sens[label] = {"image_max_abs_diff": maxdiff(img, aimg), "text_max_abs_diff": maxdiff(txt, atxt)}
    if sens:
        manifest["sensitivity"] = {
            "what": "max |golden - output| when the config is changed as named (same weights): how far a loader "
                    "that gets this hyper-parameter wrong lands from the golden", **sens}
    manifest["notes"] = note or []
    manifest["_roles"] = roles
    finish(d, manifest)


def describe_tokens(rows):
    return {"rows": [{"length": r["len"], "sot": r["sot"], "eot": r["eot"], "pad": r.get("pad", 0),
                      **({"extra": [{"pos": p, "id": i} for p, i in r["extra"]]} if r.get("extra") else {})}
                     for r in rows],
            "shape": [len(rows), CONTEXT], "dtype": "int64"}


def save_hf_folder(**kw):
    def save(m, d):
        m.save_pretrained(d, **kw)
        files = sorted(p.name for p in d.iterdir() if p.name != "config.json")
        return {"format": "hf_sharded_safetensors" if "max_shard_size" in kw else "hf_safetensors",
                "files": files, "dtype": str(m.dtype).replace("torch.", ""),
                "_reload": lambda dd: CLIPModel.from_pretrained(dd).float().eval()}
    return save


def save_hf_bin(m, d):
    m.config.save_pretrained(d)
    torch.save(m.state_dict(), d / "pytorch_model.bin")
    return {"format": "torch_state_dict", "files": ["pytorch_model.bin"], "dtype": "float32",
            "how": "torch.save(model.state_dict()) next to model.config.save_pretrained()",
            "_reload": lambda dd: CLIPModel.from_pretrained(dd).float().eval()}


def save_hf_fp16(m, d):
    m.half().save_pretrained(d)
    back = CLIPModel.from_pretrained(d)
    loaded_dtype = str(back.dtype)
    ref = back.float().eval()
    m.float()
    return {"format": "hf_safetensors", "files": ["model.safetensors"], "dtype": "float16",
            "from_pretrained_default_dtype": loaded_dtype,
            "_reference_model": ref,
            "_reference_note": "float32 CLIPModel holding the fp16 weights upcast to float32 "
                               "(CLIPModel.from_pretrained(folder).float()), float32 arithmetic; "
                               "features = get_*_features(...).pooler_output",
            "_reload": lambda dd: CLIPModel.from_pretrained(dd).float().eval()}


def save_hf_refusal(m, d):
    m.save_pretrained(d)
    return {"format": "hf_safetensors", "files": ["model.safetensors"], "dtype": "float32"}


def tiny_tower(width, heads, layers, mlp, act, eps=1e-5, **extra):
    return dict(hidden_size=width, num_attention_heads=heads, num_hidden_layers=layers, intermediate_size=mlp,
                hidden_act=act, layer_norm_eps=eps, **extra)


def text_tower(width, heads, layers, mlp, act, eps=1e-5, eos=EOT, bos=SOT, pad=0):
    return tiny_tower(width, heads, layers, mlp, act, eps, vocab_size=VOCAB, max_position_embeddings=CONTEXT,
                      eos_token_id=eos, bos_token_id=bos, pad_token_id=pad)


def vision_tower(width, heads, layers, mlp, act, eps=1e-5, image=32, patch=8):
    return tiny_tower(width, heads, layers, mlp, act, eps, image_size=image, patch_size=patch, num_channels=3)


def set_act(tower, act):
    def f(c):
        c[tower]["hidden_act"] = act
    return f


def set_both_act(act):
    def f(c):
        c["vision_config"]["hidden_act"] = act
        c["text_config"]["hidden_act"] = act
    return f


def hf_cases():
    rows_std = [dict(len=9, sot=SOT, eot=EOT, pad=0), dict(len=20, sot=SOT, eot=EOT, pad=EOT)]
    pad_note = ("tokens row 1 is padded with the eos id (what HF's CLIPTokenizer does with padding='max_length', "
                "its pad token being <|endoftext|>): pooling must take the FIRST eos, not the last")

    # 1. quick_gelu, head dim 64, legacy text eos_token_id 2 (as in openai/clip-vit-*'s config.json) -> argmax pooling
    hf_case("hf_quickgelu_h64",
            vision_tower(64, 1, 2, 128, "quick_gelu"),
            text_tower(64, 1, 2, 128, "quick_gelu", eos=2, bos=0, pad=1),
            projection_dim=48, seed=1001, tokens_rows=rows_std, save=save_hf_folder(),
            sensitivity={"activation_gelu_instead_of_quick_gelu": set_both_act("gelu")},
            note=["text_config.eos_token_id = 2, bos 0, pad 1 as in the openai/clip-vit-* config.json files: "
                  "transformers then pools the text at argmax(input_ids) (the legacy path), ignoring eos_token_id",
                  "intermediate_size 128 = 2 x hidden: the MLP width is not 4 x width",
                  "projection_dim 48; the sub-configs' own projection_dim (512, a default) is unused by CLIPModel",
                  pad_note])

    # 2. exact gelu, head dim 32 in vision (64/2), eps 1e-6 in vision, eos id below an "added" token id
    def shrink_vision_embeddings(m):
        # tiny pre-LayerNorm input (std ~1e-3) so eps 1e-6 vs 1e-5 shows in the output
        emb = m.vision_model.embeddings
        with torch.no_grad():
            emb.patch_embedding.weight.mul_(1e-3)
            emb.class_embedding.mul_(1e-3)
            emb.position_embedding.weight.mul_(1e-3)

    eos2, bos2 = VOCAB - 2, VOCAB - 3
    rows_eos = [dict(len=12, sot=bos2, eot=eos2, pad=0, extra=[(5, VOCAB - 1)]),
                dict(len=20, sot=bos2, eot=eos2, pad=eos2)]
    hf_case("hf_gelu_h32",
            vision_tower(64, 2, 2, 128, "gelu", eps=1e-6),
            text_tower(32, 1, 2, 128, "gelu", eos=eos2, bos=bos2, pad=0),
            projection_dim=32, seed=1002, tokens_rows=rows_eos, save=save_hf_folder(), tweak=shrink_vision_embeddings,
            token_range=(1, bos2),
            sensitivity={
                "activation_quick_gelu_instead_of_gelu": set_both_act("quick_gelu"),
                "vision_ln_eps_1e-5_instead_of_1e-6": lambda c: c["vision_config"].__setitem__("layer_norm_eps", 1e-5),
                "text_pool_argmax_instead_of_eos": lambda c: c["text_config"].__setitem__("eos_token_id", 2),
            },
            note=["vision 2 heads of 32 (hidden 64); text 1 head of 32 (hidden 32): heads differ per tower",
                  "vision_config.layer_norm_eps = 1e-6 (text 1e-5). The vision embeddings (patch, class, position) "
                  "are scaled by 1e-3 after the random draw so the pre-LayerNorm input is tiny and eps matters",
                  f"text eos_token_id {eos2} (bos {bos2}); row 0 holds id {VOCAB - 1} (think: an added token) at "
                  "position 5, before the eos at 11: argmax pooling would pick position 5, HF pools at the eos",
                  pad_note])

    # 3. same kind (gelu, head dim 32) as a plain torch.save'd state dict
    hf_case("hf_gelu_bin",
            vision_tower(32, 1, 2, 128, "gelu"), text_tower(32, 1, 2, 128, "gelu"),
            projection_dim=32, seed=1003, tokens_rows=rows_std, save=save_hf_bin,
            sensitivity={"activation_quick_gelu_instead_of_gelu": set_both_act("quick_gelu")},
            note=["pytorch_model.bin = torch.save(model.state_dict()) (zip archive); config.json by config.save_pretrained",
                  "transformers >= 4.31 does not save the position_ids buffers; older pytorch_model.bin files hold "
                  "text_model.embeddings.position_ids / vision_model.embeddings.position_ids (int64) too", pad_note])

    # 4. sharded safetensors with an index
    hf_case("hf_sharded",
            vision_tower(32, 1, 2, 128, "quick_gelu"), text_tower(32, 1, 2, 128, "quick_gelu"),
            projection_dim=32, seed=1004, tokens_rows=rows_std, save=save_hf_folder(max_shard_size="100KB"),
            note=["save_pretrained(max_shard_size='100KB'): model-0000K-of-0000N.safetensors + "
                  "model.safetensors.index.json ({metadata:{total_parameters,total_size}, weight_map:{key: file}})",
                  pad_note])

    # 5. fp16 safetensors
    hf_case("hf_fp16",
            vision_tower(64, 2, 2, 256, "quick_gelu"), text_tower(32, 1, 2, 128, "quick_gelu"),
            projection_dim=32, seed=1005, tokens_rows=rows_std, save=save_hf_fp16,
            note=["model.half().save_pretrained(): every tensor F16 (logit_scale too), config.json dtype float16",
                  "reference outputs: the float32 model holding the fp16-rounded weights (loaded back, .float()), "
                  "float32 arithmetic",
                  "transformers 5.x from_pretrained keeps the checkpoint dtype by default (dtype='auto'): see "
                  "weights.from_pretrained_default_dtype", pad_note])

    # 6. refusal: tanh-approximated gelu in the text tower only
    hf_case("hf_gelu_new",
            vision_tower(32, 1, 1, 128, "quick_gelu"), text_tower(32, 1, 1, 128, "gelu_new"),
            projection_dim=32, seed=1006, tokens_rows=rows_std, save=save_hf_refusal,
            refusal={"reason": "text_config.hidden_act is 'gelu_new' (tanh approximation of GELU), which clip-ts "
                               "does not implement (it supports 'quick_gelu' and exact 'gelu')",
                     "tower": "text", "hidden_act": "gelu_new"},
            note=["only the TEXT tower uses gelu_new (vision is quick_gelu): a loader must check both towers",
                  "no inputs/outputs: the loader must refuse before computing anything"])


# ---------------------------------------------------------------- open_clip

def oc_register(name, cfg):
    open_clip.factory._MODEL_CONFIGS[name] = json.loads(json.dumps(cfg))


def oc_model(name, cfg, seed=None):
    oc_register(name, cfg)
    m = open_clip.create_model(name, pretrained=None)
    m.eval()
    if seed is not None:
        randomise(m, seed, openclip=True)
    return m


@torch.no_grad()
def oc_features(m, pixels, tokens):
    img = m.encode_image(torch.from_numpy(pixels), normalize=False)
    txt = m.encode_text(torch.from_numpy(tokens), normalize=False)
    return img.numpy(), txt.numpy()


def oc_expect(cfg, model):
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    act = "quick_gelu" if cfg.get("quick_gelu", False) else "gelu"
    hw = v.get("head_width", 64)
    if isinstance(v["layers"], (list, tuple)):
        vision = {"layers": list(v["layers"]), "width": v["width"], "attnpool_heads": v["width"] * 32 // hw,
                  "head_width": hw, "why": "open_clip: ModifiedResNet heads = width*32 // head_width "
                                          "(head_width from the config, default 64)"}
        arch, patch = "rn", None
    else:
        heads = v["width"] // hw
        vision = {"layers": v["layers"], "width": v["width"], "heads": heads, "head_width": hw,
                  "mlp_width": int(v["width"] * v.get("mlp_ratio", 4.0)), "activation": act,
                  "ln_eps": (v.get("norm_kwargs") or {}).get("eps", 1e-5),
                  "why": "open_clip: heads = width // head_width (head_width default 64)"}
        arch, patch = "vit", v["patch_size"]
    text = {"layers": t["layers"], "width": t["width"], "heads": t["heads"], "head_width": t["width"] // t["heads"],
            "mlp_width": int(t["width"] * t.get("mlp_ratio", 4.0)), "activation": act,
            "ln_eps": (t.get("norm_kwargs") or {}).get("eps", 1e-5), "vocab_size": t["vocab_size"],
            "context_length": t["context_length"],
            "pool": {"type": t.get("pool_type", "argmax"), "why": "open_clip text_cfg.pool_type default 'argmax'"}}
    return {"arch": arch, "embed_dim": cfg["embed_dim"], "image_resolution": v["image_size"], "patch_size": patch,
            "vision": vision, "text": text, "quick_gelu": cfg.get("quick_gelu", False)}


def oc_case(case, cfg, seed, saves, note=None, sensitivity=True):
    d = fresh(case)
    name = "peers-" + case
    m = oc_model(name, cfg, seed)
    res = cfg["vision_cfg"]["image_size"]
    pixels = make_pixels(seed + 1, res)
    rows = [dict(len=9, sot=SOT, eot=EOT), dict(len=CONTEXT, sot=SOT, eot=EOT)]
    tokens = make_tokens(seed + 2, rows)
    img, txt = oc_features(m, pixels, tokens)
    roles = {}
    weights = []
    for save in saves:
        w = save(m, d, name, cfg)
        roles.update(w.pop("_roles", {}))
        loader = w.pop("_load")
        back = loader(d)
        bimg, btxt = oc_features(back, pixels, tokens)
        assert maxdiff(img, bimg) == 0 and maxdiff(txt, btxt) == 0, (case, w)
        weights.append(w)
    (d / "model_cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
    roles["model_cfg.json"] = "config"
    save_npy(d, "pixels.npy", pixels)
    save_npy(d, "tokens.npy", tokens)
    save_npy(d, "image_features.npy", img)
    save_npy(d, "text_features.npy", txt)
    roles.update(IO_ROLES)
    manifest = {
        "case": case, "kind": "golden", "peer": "open_clip", "peer_version": open_clip.__version__,
        "versions": VERSIONS, "seed": seed,
        "model_class": "open_clip.CLIP via open_clip.create_model(name, pretrained=None) with model_cfg.json "
                       "registered in open_clip.factory._MODEL_CONFIGS",
        "vocab_note": f"vocab_size {VOCAB} (not 49408): tokens.npy holds synthetic ids (sot {SOT}, eot {EOT}), "
                      "not the OpenAI tokenizer's",
        "model_cfg": cfg,
        "weights": weights,
        "expect": oc_expect(cfg, m),
        "tokens": describe_tokens(rows),
        "reference": "float32 open_clip CLIP, eval(), no_grad; image_features = encode_image(pixels, normalize=False), "
                     "text_features = encode_text(tokens, normalize=False)",
        "logit_scale": float(m.logit_scale.item()),
        "state_dict": [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in m.state_dict().items()],
    }
    if sensitivity and not isinstance(cfg["vision_cfg"]["layers"], list):
        c2 = json.loads(json.dumps(cfg))
        c2["quick_gelu"] = not cfg.get("quick_gelu", False)
        alt = oc_model(name + "-alt", c2)
        alt.load_state_dict(m.state_dict())
        aimg, atxt = oc_features(alt, pixels, tokens)
        manifest["sensitivity"] = {
            "what": "max |golden - output| with quick_gelu flipped (same weights)",
            "quick_gelu_flipped": {"image_max_abs_diff": maxdiff(img, aimg), "text_max_abs_diff": maxdiff(txt, atxt)}}
    elif sensitivity:
        c2 = json.loads(json.dumps(cfg))
        c2["quick_gelu"] = not cfg.get("quick_gelu", False)
        alt = oc_model(name + "-alt", c2)
        alt.load_state_dict(m.state_dict())
        _, atxt = oc_features(alt, pixels, tokens)
        manifest["sensitivity"] = {
            "what": "max |golden - output| with quick_gelu flipped (same weights; only the text tower has a GELU)",
            "quick_gelu_flipped": {"text_max_abs_diff": maxdiff(txt, atxt)}}
    manifest["notes"] = note or []
    manifest["_roles"] = roles
    finish(d, manifest)


def oc_save_pt(m, d, name, cfg):
    torch.save(m.state_dict(), d / "model.pt")
    return {"format": "torch_state_dict", "files": ["model.pt"], "dtype": "float32",
            "how": "torch.save(model.state_dict())",
            "_load": lambda dd: open_clip.create_model(name, pretrained=str(dd / "model.pt")).eval()}


def oc_save_st(m, d, name, cfg):
    safetensors.torch.save_file(m.state_dict(), d / "model.safetensors")
    return {"format": "safetensors", "files": ["model.safetensors"], "dtype": "float32",
            "how": "safetensors.torch.save_file(model.state_dict())",
            "_load": lambda dd: open_clip.create_model(name, pretrained=str(dd / "model.safetensors")).eval()}


def oc_save_hf_folder(kind):
    def save(m, d, name, cfg):
        f = d / "hf"
        f.mkdir()
        # open_clip.push_to_hf_hub.save_for_hf writes these two names; its tokenizer files need the HF hub, skipped
        if kind == "safetensors":
            safetensors.torch.save_file(m.state_dict(), f / "open_clip_model.safetensors")
            wfile = "hf/open_clip_model.safetensors"
        else:
            torch.save(m.state_dict(), f / "open_clip_pytorch_model.bin")
            wfile = "hf/open_clip_pytorch_model.bin"
        save_config_for_hf(m, f / "open_clip_config.json", model_config=cfg)
        return {"format": "open_clip_hf_folder", "folder": "hf", "files": [wfile, "hf/open_clip_config.json"],
                "dtype": "float32",
                "how": "the layout of open_clip.push_to_hf_hub.save_for_hf: open_clip_config.json "
                       "({model_cfg, preprocess_cfg} by save_config_for_hf) + " + wfile.split("/")[1] +
                       " (tokenizer files omitted: they need the HF hub)",
                "_roles": {"hf/open_clip_config.json": "config"},
                "_load": lambda dd: open_clip.create_model("local-dir:" + str(dd / "hf")).eval()}
    return save


def oc_save_train(m, d, name, cfg):
    # open_clip's training script: {"epoch", "name", "state_dict" (DDP: "module." keys), "optimizer"}
    params = dict(m.named_parameters())
    gain_or_bias = [p for n, p in params.items() if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n]
    rest = [p for n, p in params.items() if not (p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n)]
    opt = torch.optim.AdamW([{"params": gain_or_bias, "weight_decay": 0.0}, {"params": rest, "weight_decay": 0.2}],
                            lr=0.0, betas=(0.9, 0.98), eps=1e-6)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.logit_scale.grad = torch.ones_like(m.logit_scale)
    opt.step()  # lr 0: gives the optimizer a (small) state without changing any weight
    m.logit_scale.grad = None
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    ckpt = {"epoch": 1, "name": "peers-train-ckpt",
            "state_dict": {"module." + k: v for k, v in m.state_dict().items()},
            "optimizer": opt.state_dict()}
    torch.save(ckpt, d / "epoch_1.pt")
    return {"format": "open_clip_train_checkpoint", "files": ["epoch_1.pt"], "dtype": "float32",
            "key_prefix": "module.", "state_dict_key": "state_dict",
            "top_level_keys": sorted(ckpt.keys()),
            "how": "torch.save({'epoch': 1, 'name': ..., 'state_dict': {'module.'+k: v}, 'optimizer': "
                   "AdamW.state_dict()}) as open_clip's training loop writes it (with DDP)",
            "_load": lambda dd: open_clip.create_model(name, pretrained=str(dd / "epoch_1.pt")).eval()}


def oc_vit_cfg(quick_gelu):
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8, "mlp_ratio": 2.0},
        "text_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB, "width": 32, "heads": 1, "layers": 2},
    }
    if quick_gelu:
        cfg["quick_gelu"] = True
    return cfg


def oc_cases():
    common = ["open_clip ViT state-dict keys are OpenAI's (conv1, class_embedding, positional_embedding, ln_pre, "
              "transformer.resblocks.N.{ln_1,attn.in_proj_weight,attn.in_proj_bias,attn.out_proj,ln_2,mlp.c_fc,"
              "mlp.c_proj}, ln_post, proj, token_embedding, ln_final, text_projection, logit_scale)",
              "attn_mask is a non-persistent buffer: not in the state dict",
              "model_cfg.json = the open_clip model config dict used (what a {config} override would pass)"]
    oc_case("oc_vit_gelu", oc_vit_cfg(False), seed=2001,
            saves=[oc_save_pt, oc_save_st, oc_save_hf_folder("safetensors")],
            note=common + ["quick_gelu absent from the config: open_clip uses exact nn.GELU",
                           "vision head_width 32 -> 2 heads of 32; text 1 head of width 32",
                           "vision mlp_ratio 2.0 (MLP width 128); text mlp_ratio 4 (default, MLP width 128)"])
    oc_case("oc_vit_quickgelu", oc_vit_cfg(True), seed=2002,
            saves=[oc_save_hf_folder("bin")],
            note=common + ["quick_gelu: true in model_cfg (and in hf/open_clip_config.json's model_cfg)"])
    rn_cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 4, "patch_size": None},
        "text_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB, "width": 32, "heads": 2, "layers": 2},
    }
    oc_case("oc_rn_gelu", rn_cfg, seed=2003, saves=[oc_save_st],
            note=["ModifiedResNet vision like open_clip's RN50 config (no quick_gelu key -> text tower uses exact GELU; "
                  "the ResNet itself uses ReLU)",
                  "vision width 4 (stem 2->2->4 channels, stage outputs 16/32/64/128 channels), image 64 -> 2x2 grid; "
                  "attnpool heads = 4*32//64 = 2 (open_clip: width*32//head_width, head_width default 64)",
                  "state-dict keys as OpenAI's ModifiedResNet (conv1..3, bn1..3, layerK.J.*, attnpool.{positional_embedding,"
                  "q_proj,k_proj,v_proj,c_proj}); BatchNorm num_batches_tracked are int64 0-d tensors",
                  "text: width 32 with 2 heads of 16 (width // 64 would give 0 heads: read heads from the config)"])
    oc_case("oc_train_ckpt", oc_vit_cfg(False), seed=2004, saves=[oc_save_train],
            note=["training checkpoint: the weights are under 'state_dict' with every key prefixed 'module.' (DDP); "
                  "'optimizer' holds AdamW param_groups (lr, betas, eps, weight_decay, params = integer ids) and a "
                  "state for logit_scale only (step, exp_avg, exp_avg_sq tensors)",
                  "open_clip's own loader (factory.load_state_dict) takes checkpoint['state_dict'] and strips 'module.' "
                  "when the first key starts with 'module'",
                  "same config as oc_vit_gelu (model_cfg.json), different weights"])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    if not only or any(c.startswith("hf") for c in only):
        hf_cases()
    if not only or any(c.startswith("oc") for c in only):
        oc_cases()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    for d in sorted(OUT.iterdir()):
        if d.is_dir():
            print(f"{d.name:20s} {sum(p.stat().st_size for p in d.rglob('*') if p.is_file()):>9,d} bytes")
    print(f"{'total':20s} {total:>9,d} bytes")


if __name__ == "__main__":
    main()
