#!/usr/bin/python3
"""Generate golden data for the clip-ts model parity tests.

Runs the reference openai/CLIP model code (never copied here) on CPU and writes
  test/golden/configs/<name>.json  architecture facts for the nine OpenAI models
  test/golden/models/<name>/       two small randomised models: weights in every
                                   supported format, inputs, outputs, activations
See tools/golden/README.md for the layout. Output is byte-for-byte reproducible
with the same torch/numpy build.

Usage: CLIP_REPO=/path/to/openai/CLIP /usr/bin/python3 tools/golden/make_model_goldens.py
"""

import copy
import hashlib
import importlib.util
import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG_DIR = os.path.join(ROOT, "test", "golden", "configs")
MODEL_DIR = os.path.join(ROOT, "test", "golden", "models")


def import_reference():
    """Load clip/model.py as module clip.model, skipping clip/__init__.py, whose import
    chain (clip.py) needs ftfy/regex/torchvision that the model code does not."""
    repo = os.environ.get("CLIP_REPO", "/work/ref")
    path = os.path.join(repo, "clip", "model.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CLIP_REPO={repo!r} has no clip/model.py")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("clip.model", None))
    module.__file__ = path
    sys.modules["clip.model"] = module
    # TorchScript debug info records each traced frame's file name: compile under a
    # path-independent name so the archive does not depend on where CLIP_REPO is.
    exec(compile(source, "clip/model.py", "exec"), module.__dict__)
    return module


ref = import_reference()

# Published hyper-parameters of OpenAI's checkpoints (CLIP paper Tables 19/20; they are
# also what the reference build_model infers from each state dict; heads = width // 64).
OPENAI_CONFIGS = {
    "RN50": (1024, 224, (3, 4, 6, 3), 64, None, 512, 8, 12),
    "RN101": (512, 224, (3, 4, 23, 3), 64, None, 512, 8, 12),
    "RN50x4": (640, 288, (4, 6, 10, 6), 80, None, 640, 10, 12),
    "RN50x16": (768, 384, (6, 8, 18, 8), 96, None, 768, 12, 12),
    "RN50x64": (1024, 448, (3, 15, 36, 10), 128, None, 1024, 16, 12),
    "ViT-B/32": (512, 224, 12, 768, 32, 512, 8, 12),
    "ViT-B/16": (512, 224, 12, 768, 16, 512, 8, 12),
    "ViT-L/14": (768, 224, 24, 1024, 14, 768, 12, 12),
    "ViT-L/14@336px": (768, 336, 24, 1024, 14, 768, 12, 12),
}
EXPECTED_PARAMS = {"ViT-B/32": 151_277_313, "RN50": 102_007_137}

SMALL_CONFIGS = {
    "vit": dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=64,
                vision_patch_size=8, context_length=77, vocab_size=512,
                transformer_width=128, transformer_heads=2, transformer_layers=2),
    "rn": dict(embed_dim=64, image_resolution=64, vision_layers=(1, 2, 1, 1), vision_width=8,
               vision_patch_size=None, context_length=77, vocab_size=512,
               transformer_width=64, transformer_heads=1, transformer_layers=2),
}
SEEDS = {"vit": 1001, "rn": 2002}
# The ResNet goldens skip the two redundant fp32 .pt copies to stay within the size budget.
TORCH_FORMATS = {"vit": True, "rn": False}
TOKEN_LENGTHS = (9, 30, 77)  # including sot and eot; 77 = a row with no padding
N_IMAGES = 2

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.int64: "int64"}
SAFETENSORS_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8")}


def config_args(name):
    embed, res, vlayers, vwidth, patch, twidth, theads, tlayers = OPENAI_CONFIGS[name]
    return dict(embed_dim=embed, image_resolution=res, vision_layers=vlayers, vision_width=vwidth,
                vision_patch_size=patch, context_length=77, vocab_size=49408,
                transformer_width=twidth, transformer_heads=theads, transformer_layers=tlayers)


def vision_heads(cfg):
    # Mirrors the reference constructor: ResNet attnpool and ViT derive heads from width.
    if isinstance(cfg["vision_layers"], (tuple, list)):
        return cfg["vision_width"] * 32 // 64
    return cfg["vision_width"] // 64


def open_clip_style_config(cfg):
    """What the weights cannot tell, written as an open_clip model config (the form clip-ts reads beside weights):
    the reference's CLIP uses QuickGELU, heads of 64 in the vision tower, transformer_heads in the text tower."""
    resnet = isinstance(cfg["vision_layers"], (tuple, list))
    vision = {"image_size": cfg["image_resolution"], "layers": list(cfg["vision_layers"]) if resnet else cfg["vision_layers"],
              "width": cfg["vision_width"], "head_width": 64}
    if not resnet:
        vision["patch_size"] = cfg["vision_patch_size"]
    return {"embed_dim": cfg["embed_dim"], "quick_gelu": True, "vision_cfg": vision,
            "text_cfg": {"context_length": cfg["context_length"], "vocab_size": cfg["vocab_size"],
                         "width": cfg["transformer_width"], "heads": cfg["transformer_heads"],
                         "layers": cfg["transformer_layers"]}}


def json_config(cfg):
    out = dict(cfg)
    if isinstance(out["vision_layers"], tuple):
        out["vision_layers"] = list(out["vision_layers"])
    return out


class _MetaFactories(TorchFunctionMode):
    """Allocate every tensor the constructor creates on the meta device. torch<2 has no
    `with torch.device("meta")`, so factory calls are redirected here instead."""

    FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.randn, torch.rand, torch.full,
                 torch.tensor, torch.arange}

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in self.FACTORIES:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def write_json(path, obj, list_keys=()):
    """Pretty JSON with one row per line for the long lists named in list_keys."""
    parts = []
    for key, value in obj.items():
        if key in list_keys:
            rows = ",\n".join("    " + json.dumps(row) for row in value)
            parts.append(f"  {json.dumps(key)}: [\n{rows}\n  ]")
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value, indent=None)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(parts) + "\n}\n")


def make_configs():
    os.makedirs(CONFIG_DIR, exist_ok=True)
    index = {}
    for name in OPENAI_CONFIGS:
        cfg = config_args(name)
        with _MetaFactories():
            model = ref.CLIP(**cfg)
        fp32 = model.state_dict()
        num_params = sum(p.numel() for p in model.parameters())
        if name in EXPECTED_PARAMS and num_params != EXPECTED_PARAMS[name]:
            raise AssertionError(f"{name}: {num_params} params, expected {EXPECTED_PARAMS[name]}")
        ref.convert_weights(model)
        half = model.state_dict()
        rows = [[k, list(t.shape), DTYPE_NAMES[t.dtype], DTYPE_NAMES[half[k].dtype]]
                for k, t in fp32.items()]
        file_name = name.replace("/", "-").replace("@", "-") + ".json"
        index[name] = file_name
        write_json(os.path.join(CONFIG_DIR, file_name), {
            "name": name,
            "config": json_config(cfg),
            "vision_heads": vision_heads(cfg),
            "checkpoint_extra_keys": {"input_resolution": cfg["image_resolution"],
                                      "context_length": cfg["context_length"],
                                      "vocab_size": cfg["vocab_size"]},
            "num_params": num_params,
            "num_state_dict_entries": len(rows),
            "state_dict": rows,
        }, list_keys=("state_dict",))
        print(f"config {name:16s} params {num_params:>11,d}  entries {len(rows)}")
    write_json(os.path.join(CONFIG_DIR, "index.json"), index)


def randomise(model, gen):
    """Redraw every parameter and buffer so no layer is an identity or a zero map
    (the reference zero-inits bn3 and leaves BN stats at 0/1), keeping activations O(1)."""

    def normal(t, std, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=gen) * std + mean)

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

    bn_modules = {n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    ln_modules = {n for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for key, t in model.state_dict(keep_vars=True).items():
            t = t.data
            owner, _, leaf = key.rpartition(".")
            if owner in bn_modules:
                if leaf == "weight":
                    uniform(t, 0.5, 1.5)
                elif leaf in ("bias", "running_mean"):
                    normal(t, 0.1)
                elif leaf == "running_var":
                    uniform(t, 0.5, 1.5)
                elif leaf == "num_batches_tracked":
                    t.fill_(int(torch.randint(1, 10000, (), generator=gen)))
                else:
                    raise KeyError(key)
            elif owner in ln_modules:
                if leaf == "weight":
                    uniform(t, 0.5, 1.5)
                else:
                    normal(t, 0.1)
            elif key == "logit_scale":
                t.fill_(math.log(1 / 0.07) + float(torch.randn((), generator=gen)) * 0.1)
            elif key.endswith("class_embedding") or key == "token_embedding.weight":
                normal(t, 1.0)
            elif key.endswith("positional_embedding"):
                normal(t, 0.5)
            elif key in ("visual.proj", "text_projection"):
                normal(t, t.shape[0] ** -0.5)  # [in, out]: used as x @ proj
            elif t.dim() >= 2:
                # [out, in, ...]. Eval-mode BN uses the fixed random stats, so nothing
                # renormalises: He scaling (2/fan_in) made the ResNet stream grow ~2x per block.
                normal(t, t[0].numel() ** -0.5)
            elif t.dim() == 1:
                normal(t, 0.1)
            else:
                raise KeyError(f"no rule for {key} {tuple(t.shape)}")


def make_tokens(rng, cfg):
    vocab = cfg["vocab_size"]
    sot, eot = vocab - 2, vocab - 1
    tokens = np.zeros((len(TOKEN_LENGTHS), cfg["context_length"]), dtype=np.int64)
    for row, length in enumerate(TOKEN_LENGTHS):
        tokens[row, 0] = sot
        # ids below sot so the eot stays the row's unique argmax (the reference pools there)
        tokens[row, 1:length - 1] = rng.integers(0, vocab - 2, size=length - 2)
        tokens[row, length - 1] = eot
    return tokens


def activation_modules(model):
    """Names of the hooked modules and the layout of their outputs, in construction order."""
    names = []
    visual = model.visual
    if isinstance(visual, ref.ModifiedResNet):
        # The stem is a local function; its last op is the top-level avgpool.
        names.append(("visual.avgpool", "NCHW"))
        for i in range(1, 5):
            layer = getattr(visual, f"layer{i}")
            names += [(f"visual.layer{i}.{j}", "NCHW") for j in range(len(layer))]
            names.append((f"visual.layer{i}", "NCHW"))
        names.append(("visual.attnpool", "ND"))
    else:
        names += [("visual.conv1", "NCHW"), ("visual.ln_pre", "NLD")]
        names += [(f"visual.transformer.resblocks.{i}", "LND")
                  for i in range(len(visual.transformer.resblocks))]
        names.append(("visual.ln_post", "ND"))
    names += [(f"transformer.resblocks.{i}", "LND") for i in range(len(model.transformer.resblocks))]
    names.append(("ln_final", "NLD"))
    return names


def capture_activations(model, pixels, tokens):
    modules = dict(model.named_modules())
    layouts = dict(activation_modules(model))
    captured = []
    handles = []
    for name in layouts:
        def hook(_module, _inputs, output, name=name):
            captured.append((name, output.detach().clone()))
        handles.append(modules[name].register_forward_hook(hook))
    try:
        model(pixels, tokens)
    finally:
        for h in handles:
            h.remove()
    fired = [n for n, _ in captured]
    if sorted(fired) != sorted(layouts) or len(set(fired)) != len(fired):
        raise AssertionError(f"hooks fired {fired}, expected each of {list(layouts)} once")
    return [(name, layouts[name], out) for name, out in captured]


def run_outputs(model, pixels, tokens):
    with torch.no_grad():
        image = model.encode_image(pixels)
        text = model.encode_text(tokens)
        per_image, per_text = model(pixels, tokens)
    return {"encode_image": image, "encode_text": text,
            "logits_per_image": per_image, "logits_per_text": per_text}


def write_safetensors(path, state_dict):
    """Write the safetensors format (8-byte LE header length, JSON header, raw LE data);
    written by hand because the `safetensors` package is not in Debian."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for key, t in state_dict.items():
        st_dtype, np_dtype = SAFETENSORS_DTYPES[t.dtype]
        data = t.detach().contiguous().numpy().astype(np_dtype, copy=False).tobytes()
        header[key] = {"dtype": st_dtype, "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # pad so the data section is 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    header.pop("__metadata__")
    np_dtypes = {st: npd for st, npd in SAFETENSORS_DTYPES.values()}
    out = {}
    for key, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(buf[8 + n + begin:8 + n + end], dtype=np_dtypes[info["dtype"]])
        out[key] = arr.reshape(info["shape"])
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_npy(out_dir, rel, array, files):
    path = os.path.join(out_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = np.ascontiguousarray(array)
    np.save(path, array)
    files.append({"path": rel, "shape": list(array.shape), "dtype": str(array.dtype),
                  "sha256": sha256(path)})


def make_small_model(name):
    cfg = SMALL_CONFIGS[name]
    seed = SEEDS[name]
    out_dir = os.path.join(MODEL_DIR, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    torch.manual_seed(seed)
    model = ref.CLIP(**cfg)  # fp32; build_model would convert to fp16
    randomise(model, torch.Generator().manual_seed(seed))
    model.eval()

    rng = np.random.default_rng(seed)
    res = cfg["image_resolution"]
    pixels_np = rng.standard_normal((N_IMAGES, 3, res, res), dtype=np.float32)
    tokens_np = make_tokens(rng, cfg)
    pixels, tokens = torch.from_numpy(pixels_np), torch.from_numpy(tokens_np)

    files = []
    weights = []
    state_dict = model.state_dict()
    write_safetensors(os.path.join(out_dir, "weights.safetensors"), state_dict)
    back = read_safetensors(os.path.join(out_dir, "weights.safetensors"))
    for key, t in state_dict.items():
        if not np.array_equal(back[key], t.numpy()):
            raise AssertionError(f"safetensors round trip differs at {key}")
    weights.append({"path": "weights.safetensors", "format": "safetensors", "dtype": "float32"})

    if TORCH_FORMATS[name]:
        torch.save(state_dict, os.path.join(out_dir, "weights_state_dict.pt"))
        weights.append({"path": "weights_state_dict.pt", "format": "torch_state_dict",
                        "dtype": "float32"})
        with torch.no_grad():
            traced = torch.jit.trace(model, (pixels, tokens))
        torch.jit.save(traced, os.path.join(out_dir, "weights_torchscript.pt"))
        weights.append({"path": "weights_torchscript.pt", "format": "torchscript",
                        "dtype": "float32"})

    half_model = copy.deepcopy(model)
    ref.convert_weights(half_model)
    half_sd = half_model.state_dict()
    torch.save(half_sd, os.path.join(out_dir, "weights_fp16.pt"))
    weights.append({"path": "weights_fp16.pt", "format": "torch_state_dict", "dtype": "mixed",
                    "float16_keys": [k for k, t in half_sd.items() if t.dtype == torch.float16]})

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(open_clip_style_config(cfg), f, indent=2)
        f.write("\n")

    save_npy(out_dir, "pixels.npy", pixels_np, files)
    save_npy(out_dir, "tokens.npy", tokens_np, files)

    for key, value in run_outputs(model, pixels, tokens).items():
        save_npy(out_dir, f"{key}.npy", value.numpy(), files)

    with torch.no_grad():
        acts = capture_activations(model, pixels, tokens)
    modules = []
    stds = []
    for mod_name, layout, out in acts:
        rel = f"act/{mod_name}.npy"
        save_npy(out_dir, rel, out.numpy(), files)
        modules.append({"name": mod_name, "path": rel, "shape": list(out.shape), "layout": layout})
        stds.append((mod_name, float(out.std()), float(out.abs().max())))

    # fp16 weights loaded into a fresh fp32 model: the values are rounded, the arithmetic is fp32.
    upcast = ref.CLIP(**cfg)
    upcast.load_state_dict(torch.load(os.path.join(out_dir, "weights_fp16.pt")))
    upcast.eval()
    fp16_out = run_outputs(upcast, pixels, tokens)
    for key in ("encode_image", "encode_text", "logits_per_image"):
        save_npy(out_dir, f"fp16/{key}.npy", fp16_out[key].numpy(), files)

    for entry in weights:
        entry["sha256"] = sha256(os.path.join(out_dir, entry["path"]))
    sot, eot = cfg["vocab_size"] - 2, cfg["vocab_size"] - 1
    write_json(os.path.join(out_dir, "manifest.json"), {
        "name": name,
        "config": json_config(cfg),
        "vision_heads": vision_heads(cfg),
        "seed": seed,
        "num_params": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "tokens": {"sot": sot, "eot": eot, "lengths": list(TOKEN_LENGTHS)},
        "weights": weights,
        "state_dict": [[k, list(t.shape), DTYPE_NAMES[t.dtype]] for k, t in state_dict.items()],
        "files": files,
        "modules": modules,
    }, list_keys=("weights", "state_dict", "files", "modules"))

    print(f"\nmodel {name}: {sum(p.numel() for p in model.parameters()):,d} params")
    for mod_name, std, amax in stds:
        print(f"  {mod_name:34s} std {std:8.4f}  max|x| {amax:8.3f}")
    for key, value in run_outputs(model, pixels, tokens).items():
        diff = float((fp16_out[key] - value).abs().max())
        print(f"  {key:34s} std {float(value.std()):8.4f}  fp16-upcast max diff {diff:.2e}")


def main():
    torch.set_num_threads(1)  # one thread: reductions always run in the same order
    torch.set_default_dtype(torch.float32)
    print(f"torch {torch.__version__}  numpy {np.__version__}  reference {ref.__file__}")
    make_configs()
    for name in SMALL_CONFIGS:
        make_small_model(name)


if __name__ == "__main__":
    main()
