#!/usr/bin/env python3
"""Full-size (ViT-B/32) peer checkpoints for a local check of clip-ts; NOT committed (~600 MB each).

    /root/.cache/hfvenv/bin/python tools/golden/check_full_size.py [OUT_DIR]      (default /tmp/fullsize)

Writes, with seeded random float32 weights (nothing is downloaded):
  OUT/open_clip_ViT-B-32/   open_clip.create_model('ViT-B-32') (exact GELU): model.safetensors, model_cfg.json,
                            hf/open_clip_config.json + hf/open_clip_model.safetensors
  OUT/hf_clip-vit-base-patch32/  transformers CLIPModel with the openai/clip-vit-base-patch32 config values
                            (written out below): save_pretrained -> config.json + model.safetensors
each with pixels.npy [2,3,224,224], tokens.npy [2,77] (open_clip's tokenizer, real BPE ids), image_features.npy,
text_features.npy (float32, not normalised) and manifest.json.
"""
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_peer_goldens as g  # noqa: E402  (randomise, hashing, versions)
import open_clip  # noqa: E402
import safetensors.torch  # noqa: E402
import transformers  # noqa: E402
from open_clip.push_to_hf_hub import save_config_for_hf  # noqa: E402
from transformers import CLIPConfig, CLIPModel  # noqa: E402

PROMPTS = ["a photo of a cat", "a diagram of a dog sitting on a red chair"]

# openai/clip-vit-base-patch32 config.json values (facts, typed out: no download)
HF_VIT_B32 = {
    "architectures": ["CLIPModel"],
    "model_type": "clip",
    "projection_dim": 512,
    "logit_scale_init_value": 2.6592,
    "initializer_factor": 1.0,
    "text_config": {
        "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
        "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05, "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0,
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "projection_dim": 512,
    },
    "vision_config": {
        "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
        "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
        "attention_dropout": 0.0, "initializer_range": 0.02, "initializer_factor": 1.0, "projection_dim": 512,
        "num_channels": 3,
    },
}


def write_io(d, pixels, tokens, img, txt):
    np.save(d / "pixels.npy", pixels)
    np.save(d / "tokens.npy", tokens)
    np.save(d / "image_features.npy", img)
    np.save(d / "text_features.npy", txt)


def manifest(d, **kw):
    files = [{"path": p.relative_to(d).as_posix(), "bytes": p.stat().st_size, "sha256": g.sha256(p)}
             for p in sorted(d.rglob("*")) if p.is_file() and p.name != "manifest.json"]
    (d / "manifest.json").write_text(json.dumps({**kw, "versions": g.VERSIONS, "prompts": PROMPTS,
                                                 "files": files}, indent=2) + "\n")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fullsize")
    out.mkdir(parents=True, exist_ok=True)
    pixels = g.make_pixels(3001, 224)
    tokens = open_clip.tokenize(PROMPTS).numpy().astype(np.int64)  # [2, 77]: 49406 ... 49407 0 ...

    # open_clip ViT-B-32, exact GELU (its default)
    d = out / "open_clip_ViT-B-32"
    shutil.rmtree(d, ignore_errors=True)
    (d / "hf").mkdir(parents=True)
    cfg = open_clip.get_model_config("ViT-B-32")
    m = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    g.randomise(m, 3002, openclip=True)
    img, txt = g.oc_features(m, pixels, tokens)
    sd = m.state_dict()
    safetensors.torch.save_file(sd, d / "model.safetensors")
    safetensors.torch.save_file(sd, d / "hf" / "open_clip_model.safetensors")
    save_config_for_hf(m, d / "hf" / "open_clip_config.json", model_config=cfg)
    (d / "model_cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
    back = open_clip.create_model("local-dir:" + str(d / "hf")).eval()
    bimg, btxt = g.oc_features(back, pixels, tokens)
    assert g.maxdiff(img, bimg) == 0 and g.maxdiff(txt, btxt) == 0
    write_io(d, pixels, tokens, img, txt)
    manifest(d, case="open_clip_ViT-B-32", peer="open_clip", expect=g.oc_expect(cfg, m),
             weights=["model.safetensors (+ model_cfg.json)", "hf/ (open_clip_config.json + open_clip_model.safetensors)"],
             reference="encode_image / encode_text, normalize=False, float32")
    del m, back, sd
    print("wrote", d)

    # transformers CLIPModel, openai/clip-vit-base-patch32 config (quick_gelu, legacy eos_token_id 2 -> argmax pooling)
    d = out / "hf_clip-vit-base-patch32"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    m = CLIPModel(CLIPConfig.from_dict(json.loads(json.dumps(HF_VIT_B32)))).eval()
    g.randomise(m, 3003, openclip=False)
    img, txt = g.hf_features(m, pixels, tokens)
    m.save_pretrained(d)
    back = CLIPModel.from_pretrained(d).float().eval()
    bimg, btxt = g.hf_features(back, pixels, tokens)
    assert g.maxdiff(img, bimg) == 0 and g.maxdiff(txt, btxt) == 0
    write_io(d, pixels, tokens, img, txt)
    manifest(d, case="hf_clip-vit-base-patch32", peer="transformers",
             expect=g.hf_expect(json.loads((d / "config.json").read_text())),
             weights=["config.json + model.safetensors (save_pretrained)"],
             reference="get_image_features / get_text_features .pooler_output, float32")
    print("wrote", d)


if __name__ == "__main__":
    main()
