#!/usr/bin/env python3
"""Writes tools/golden/open_clip_configs.json: every model config open_clip ships (open_clip/model_configs/*.json),
verbatim, plus a few values derived the way open_clip's model.py derives them (heads, activation, LayerNorm eps)
and the keys that take a config away from a plain OpenAI-style CLIP.

    /root/.cache/hfvenv/bin/python tools/golden/dump_open_clip_configs.py
"""
import hashlib
import json
from pathlib import Path

import open_clip

OUT = Path(__file__).resolve().parent / "open_clip_configs.json"
CFG_DIR = Path(open_clip.__file__).resolve().parent / "model_configs"

# keys a plain OpenAI-style CLIP config uses; anything else changes the computation or the architecture
PLAIN_TOP = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"}
PLAIN_VISION = {"image_size", "layers", "width", "head_width", "patch_size", "mlp_ratio"}
PLAIN_TEXT = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}


def derive(cfg):
    v, t = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    act = "quick_gelu" if cfg.get("quick_gelu", False) else "gelu"
    d = {"activation": act}
    if v.get("timm_model_name"):
        d["vision"] = {"kind": "timm", "timm_model_name": v["timm_model_name"],
                       "note": "timm towers use their own activation regardless of quick_gelu"}
    elif isinstance(v.get("layers"), list):
        hw = v.get("head_width", 64)
        d["vision"] = {"kind": "modified_resnet", "attnpool_heads": v["width"] * 32 // hw, "head_width": hw}
    else:
        hw = v.get("head_width", 64)
        d["vision"] = {"kind": "vit", "heads": v["width"] // hw, "head_width": hw,
                       "mlp_width": int(v["width"] * v.get("mlp_ratio", 4.0)),
                       "ln_eps": (v.get("norm_kwargs") or {}).get("eps", 1e-5),
                       "activation": act if v.get("act_kwargs") is None else {"base": act, "kwargs": v["act_kwargs"]}}
    if t.get("hf_model_name"):
        d["text"] = {"kind": "hf", "hf_model_name": t["hf_model_name"]}
    else:
        d["text"] = {"kind": "transformer", "heads": t.get("heads"),
                     "head_width": t["width"] // t["heads"] if t.get("heads") else None,
                     "mlp_width": int(t["width"] * t.get("mlp_ratio", 4.0)) if "width" in t else None,
                     "ln_eps": (t.get("norm_kwargs") or {}).get("eps", 1e-5),
                     "pool_type": t.get("pool_type", "argmax"),
                     "activation": act if t.get("act_kwargs") is None else {"base": act, "kwargs": t["act_kwargs"]}}
    extra = {}
    extra.update({k: cfg[k] for k in cfg if k not in PLAIN_TOP})
    extra.update({"vision_cfg." + k: v[k] for k in v if k not in PLAIN_VISION})
    extra.update({"text_cfg." + k: t[k] for k in t if k not in PLAIN_TEXT})
    d["non_plain_keys"] = extra
    d["plain_clip"] = not extra
    return d


def main():
    models = {}
    for f in sorted(CFG_DIR.glob("*.json")):
        raw = f.read_bytes()
        cfg = json.loads(raw)
        models[f.stem] = {"file": f.name, "sha256": hashlib.sha256(raw).hexdigest(), "config": cfg,
                          "derived": derive(cfg)}
    listed = open_clip.list_models()
    assert sorted(listed) == sorted(models), set(listed) ^ set(models)
    doc = {
        "open_clip_version": open_clip.__version__,
        "source": "open_clip/model_configs/*.json as shipped in open_clip_torch " + open_clip.__version__,
        "derived_rules": {
            "activation": "quick_gelu true -> QuickGELU x*sigmoid(1.702x) in both towers, else exact nn.GELU (erf); "
                          "act_kwargs are passed to that class",
            "vit_heads": "vision width // head_width (head_width default 64)",
            "modified_resnet_attnpool_heads": "width * 32 // head_width (head_width default 64)",
            "text_heads": "text_cfg.heads",
            "ln_eps": "norm_kwargs.eps if present, else torch's LayerNorm default 1e-5",
            "plain_clip": "true when the config uses only the keys of a plain OpenAI-style CLIP (top: embed_dim, "
                          "vision_cfg, text_cfg, quick_gelu; vision: image_size, layers, width, head_width, "
                          "patch_size, mlp_ratio; text: context_length, vocab_size, width, heads, layers, mlp_ratio)",
        },
        "list_models": listed,
        "models": models,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    plain = [k for k, m in models.items() if m["derived"]["plain_clip"]]
    print(f"{len(models)} configs, {len(plain)} plain CLIP: {' '.join(plain)}")


if __name__ == "__main__":
    main()
