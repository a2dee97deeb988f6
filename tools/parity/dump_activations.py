#!/usr/bin/python3
"""Dump every module's output of the reference CLIP (openai/CLIP's clip/model.py) for `clip-ts parity`.

Loads a checkpoint (safetensors, torch.save state dict, or OpenAI's TorchScript .pt; never downloads),
builds the reference model with its build_model, runs encode_image / encode_text on the given or random
inputs with forward hooks on the modules clip-ts reports, and writes a dump: a directory, or the same files
zipped into an .npz. Format: tools/parity/README.md.

Usage:
  /usr/bin/python3 tools/parity/dump_activations.py --model ViT-B-32.pt --pixels x.npy --tokens t.npy --out dump/
  /usr/bin/python3 tools/parity/dump_activations.py --model w.safetensors --images 2 --texts 3 --out dump.npz
"""

import argparse
import hashlib
import importlib.util
import io
import json
import os
import re
import struct
import sys
import zipfile

import numpy as np
import torch

# Keys OpenAI's .pt archives carry besides the weights; build_model drops them.
CHECKPOINT_EXTRAS = ("input_resolution", "context_length", "vocab_size")
RESBLOCK = re.compile(r"(^|\.)transformer\.resblocks\.\d+$")

SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def import_reference_model():
    """clip.model from CLIP_REPO. If the package's __init__ cannot be imported (it needs ftfy, regex and
    torchvision for the tokenizer and transforms), load clip/model.py alone: it needs only torch."""
    repo = os.environ.get("CLIP_REPO", "/work/ref")
    sys.path.insert(0, repo)
    try:
        from clip import model as ref  # noqa: E402
        return ref
    except ImportError:
        path = os.path.join(repo, "clip", "model.py")
        if not os.path.isfile(path):
            sys.exit(f"dump_activations: CLIP_REPO={repo!r} has no clip/model.py")
        spec = importlib.util.spec_from_file_location("clip_reference_model", path)
        ref = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ref)
        return ref


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for safetensors")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= len(data) - base:
            raise ValueError(f"{path}: tensor {key!r} lies outside the file")
        raw = data[base + start:base + end]
        if info["dtype"] == "BF16":  # numpy has no bfloat16: widen the top 16 bits
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in SAFETENSORS_DTYPES:
            arr = np.frombuffer(raw, dtype=np.dtype(SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor {key!r} has unsupported dtype {info['dtype']}")
        out[key] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def load_checkpoint(path):
    """name → tensor, as the reference clip.load reads a local file (TorchScript first, then a state dict)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < os.path.getsize(path):
        return read_safetensors(path)
    try:
        return torch.jit.load(path, map_location="cpu").state_dict()
    except RuntimeError:
        pass
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code is run
    except TypeError:  # torch < 1.13 has no weights_only
        sd = torch.load(path, map_location="cpu")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        sys.exit(f"dump_activations: {path} holds a {type(sd).__name__}, not a state dict")
    return sd


def build_reference(ref, state_dict):
    if "visual.proj" not in state_dict and "visual.attnpool.positional_embedding" not in state_dict:
        sys.exit("dump_activations: not an OpenAI CLIP state dict (Hugging Face checkpoints: convert the keys first)")
    model = ref.build_model(dict(state_dict)).float()
    # build_model loads into an fp16 model (convert_weights): reload after .float() so that fp32 checkpoints
    # keep every bit. For fp16 checkpoints (OpenAI's) this is what clip.load does on the CPU.
    weights = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items() if k not in CHECKPOINT_EXTRAS}
    model.load_state_dict(weights)
    return model.eval()


def hooked_module_names(model):
    """The modules clip-ts's ForwardHook reports, in forward order (image tower, then text tower)."""
    visual = model.visual
    if hasattr(visual, "attnpool"):  # ModifiedResNet: the stem ends in the top-level avgpool
        names = ["visual.avgpool"]
        for i in range(1, 5):
            layer = getattr(visual, f"layer{i}")
            names += [f"visual.layer{i}.{j}" for j in range(len(layer))] + [f"visual.layer{i}"]
        names.append("visual.attnpool")
    else:
        names = ["visual.conv1", "visual.ln_pre"]
        names += [f"visual.transformer.resblocks.{i}" for i in range(len(visual.transformer.resblocks))]
        names.append("visual.ln_post")
    names += [f"transformer.resblocks.{i}" for i in range(len(model.transformer.resblocks))]
    names.append("ln_final")
    return names


def layout_of(name, shape):
    if RESBLOCK.search(name):
        return "LND"
    return {4: "NCHW", 3: "NLD", 2: "ND"}.get(len(shape), "ND")


def random_tokens(rng, n, context_length, vocab_size):
    """Rows like clip.tokenize's: start-of-text, ids, end-of-text (the row's highest id, where encode_text
    pools), zero padding. OpenAI's vocabulary puts <|startoftext|> and <|endoftext|> last."""
    sot, eot = vocab_size - 2, vocab_size - 1
    tokens = np.zeros((n, context_length), dtype=np.int64)
    lengths = np.linspace(3, context_length, n).round().astype(int) if n > 1 else [min(8, context_length)]
    for row, length in enumerate(lengths):
        tokens[row, 0] = sot
        tokens[row, 1:length - 1] = rng.integers(0, vocab_size - 2, length - 2)
        tokens[row, length - 1] = eot
    return tokens


MATRIX_OPS = {"aten::conv2d", "aten::convolution", "aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::matmul"}


def measure_flops(model, pixels, tokens):
    """FLOPs (2·multiply-accumulates) of the matrix products and convolutions torch's profiler sees for one
    image and one text: an independent check of `clip-ts summary`'s analytic counts. None if unavailable."""
    out = {}
    for key, arr, fn in (("encode_image", pixels, model.encode_image), ("encode_text", tokens, model.encode_text)):
        if arr is None:
            continue
        try:
            with torch.no_grad(), torch.profiler.profile(with_flops=True) as prof:
                fn(torch.from_numpy(arr[:1].astype(np.int64) if key == "encode_text" else arr[:1]))
        except (TypeError, RuntimeError):
            return None
        out[key] = int(sum(e.flops for e in prof.key_averages() if e.key in MATRIX_OPS and e.flops))
    return out


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def manifest_json(manifest):
    """One top-level key per line, one module per line: readable and diffable."""
    def value(v):
        if isinstance(v, list):
            return "[\n" + ",\n".join("  " + json.dumps(x) for x in v) + "\n ]" if v else "[]"
        return json.dumps(v)
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {value(v)}" for k, v in manifest.items()) + "\n}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint: .safetensors, torch.save .pt/.pth, or OpenAI TorchScript .pt")
    ap.add_argument("--pixels", help="float32 .npy [N, 3, R, R], preprocessed (default: random normal)")
    ap.add_argument("--tokens", help="int32/int64 .npy [N, context_length] (default: random rows)")
    ap.add_argument("--images", type=int, default=2, help="random images when --pixels is absent (0: none)")
    ap.add_argument("--texts", type=int, default=2, help="random texts when --tokens is absent (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible bits)")
    ap.add_argument("--plain", action="store_true",
                    help="with an .npz --out: np.savez_compressed arrays only (no manifest; clip-ts infers order and layout)")
    ap.add_argument("--out", required=True, help="a directory, or a file ending in .npz")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    ref = import_reference_model()
    state_dict = load_checkpoint(args.model)
    model = build_reference(ref, state_dict)
    rng = np.random.default_rng(args.seed)

    res = model.visual.input_resolution
    if args.pixels:
        pixels = np.load(args.pixels).astype(np.float32)
    elif args.images > 0:
        pixels = rng.standard_normal((args.images, 3, res, res), dtype=np.float32)
    else:
        pixels = None
    if args.tokens:
        tokens = np.load(args.tokens)
        if tokens.dtype not in (np.int32, np.int64):
            sys.exit(f"dump_activations: --tokens has dtype {tokens.dtype}, expected int32 or int64")
    elif args.texts > 0:
        tokens = random_tokens(rng, args.texts, model.context_length, model.vocab_size)
    else:
        tokens = None
    if pixels is None and tokens is None:
        sys.exit("dump_activations: no inputs (give --pixels/--images or --tokens/--texts)")

    modules = dict(model.named_modules())
    captured = []
    handles = [modules[name].register_forward_hook(lambda _m, _i, out, name=name: captured.append((name, out)))
               for name in hooked_module_names(model)]
    outputs = {}
    with torch.no_grad():
        if pixels is not None:
            outputs["encode_image"] = model.encode_image(torch.from_numpy(pixels))
        if tokens is not None:
            outputs["encode_text"] = model.encode_text(torch.from_numpy(tokens.astype(np.int64)))
        for h in handles:
            h.remove()
        if pixels is not None and tokens is not None:
            outputs["logits_per_image"], outputs["logits_per_text"] = model(torch.from_numpy(pixels), torch.from_numpy(tokens.astype(np.int64)))

    flops = measure_flops(model, pixels, tokens)

    files = {}  # name in the dump → bytes, in write order
    manifest = {
        "format": "clip-ts-activations",
        "version": 1,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "checkpoint": {"file": os.path.basename(args.model), "sha256": hashlib.sha256(open(args.model, "rb").read()).hexdigest()},
        "num_params": sum(p.numel() for p in model.parameters()),
        "flops_one_input": flops,
        "inputs": {},
        "modules": [],
        "outputs": [],
    }
    for key, arr in (("pixels", pixels), ("tokens", tokens)):
        if arr is not None:
            files[f"{key}.npy"] = npy_bytes(arr)
            manifest["inputs"][key] = {"path": f"{key}.npy", "shape": list(arr.shape), "dtype": str(arr.dtype)}
    for name, out in captured:
        arr = out.float().numpy()
        files[f"act/{name}.npy"] = npy_bytes(arr)
        manifest["modules"].append({"name": name, "path": f"act/{name}.npy", "shape": list(arr.shape),
                                    "layout": layout_of(name, arr.shape), "dtype": "float32"})
    for name, t in outputs.items():
        arr = t.float().numpy()
        files[f"{name}.npy"] = npy_bytes(arr)
        manifest["outputs"].append({"name": name, "path": f"{name}.npy", "shape": list(arr.shape)})
    files["model.txt"] = (str(model) + "\n").encode()
    files["manifest.json"] = manifest_json(manifest).encode()

    if args.out.endswith(".npz"):
        if args.plain:
            arrays = {"pixels": pixels, "tokens": tokens, **{n: o.float().numpy() for n, o in captured},
                      **{n: t.float().numpy() for n, t in outputs.items()}}
            np.savez_compressed(args.out, **{k: v for k, v in arrays.items() if v is not None})
        else:
            with zipfile.ZipFile(args.out, "w") as z:
                for name, data in files.items():
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, data)
    else:
        if args.plain:
            sys.exit("dump_activations: --plain needs an .npz --out")
        for name, data in files.items():
            path = os.path.join(args.out, *name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    n_img = 0 if pixels is None else pixels.shape[0]
    n_txt = 0 if tokens is None else tokens.shape[0]
    print(f"{args.out}: {len(captured)} module outputs, {n_img} images, {n_txt} texts", file=sys.stderr)


if __name__ == "__main__":
    main()
