#!/usr/bin/python3
"""Export full-size CLIP models with seeded random weights for `npm run bench`.

For each model (default: RN50 and ViT-B/32) this builds the reference openai/CLIP
module (never copied here) with the real hyper-parameters from
test/golden/configs/<name>.json, randomises it from a fixed seed, and writes into
the cache directory (default $CLIP_TS_BENCH_CACHE or .cache/onnx/, git-ignored; 2 GB in all),
where bench/ looks for them:
  <file>.image.onnx    encode_image, input "image" float32 [N, 3, R, R], batch dynamic
  <file>.text.onnx     encode_text, input "text" int64 [N, 77], batch dynamic
  <file>.safetensors   the same weights, fp32 (int64 for num_batches_tracked), so
                       clip-ts runs exactly what ONNX Runtime runs
  <file>.json          what was exported (seed, torch version, opset, config)
where <file> is the model name with "/" and "@" replaced by "-"; and for `npm run bench:gemm`
  gemm-MxKxN.onnx      y = x @ W for x float32 [M, K] (input "x"), W [K, N] a constant: torch.nn.Linear(K, N,
                       bias=False), the ViT MLP shapes and a cube (--gemm)

Usage (from the project root or anywhere):
  CLIP_REPO=/work/ref /usr/bin/python3 tools/onnx/export_onnx.py [--models RN50,ViT-B/32] [--out DIR] [--seed N] [--opset N]
"""

import argparse
import importlib.util
import json
import os
import struct
import sys
import time

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG_DIR = os.path.join(ROOT, "test", "golden", "configs")


def load_reference_model_module():
    """clip/model.py by file path: the package __init__ imports the tokenizer's
    dependencies (ftfy, regex), which the model code does not need."""
    repo = os.environ.get("CLIP_REPO", "/work/ref")
    sys.path.insert(0, repo)
    path = os.path.join(repo, "clip", "model.py")
    if not os.path.isfile(path):
        raise SystemExit(f"CLIP_REPO={repo!r} has no clip/model.py")
    spec = importlib.util.spec_from_file_location("clip_reference_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def file_stem(name):
    return name.replace("/", "-").replace("@", "-")


def read_config(name):
    with open(os.path.join(CONFIG_DIR, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    if name not in index:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(index)}")
    with open(os.path.join(CONFIG_DIR, index[name]), encoding="utf-8") as f:
        return json.load(f)


def randomise_batch_norms(model, gen):
    """The reference's init leaves running statistics at 0/1 and zeroes every bn3
    weight, which would make each residual branch vanish after folding: give every
    BatchNorm plausible non-trivial statistics so all the arithmetic is exercised."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=gen)
            m.bias.data = 0.1 * torch.randn(c, generator=gen)
            m.running_mean.data = 0.1 * torch.randn(c, generator=gen)
            m.running_var.data = 0.5 + torch.rand(c, generator=gen)


def check_against_config(state_dict, cfg):
    expected = {k: (shape, dtype) for k, shape, dtype, _ in cfg["state_dict"]}
    found = {k: (list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in state_dict.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))[:5]
        extra = sorted(set(found) - set(expected))[:5]
        wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])[:5]
        raise SystemExit(f"{cfg['name']}: state dict differs from the config file: missing {missing}, extra {extra}, wrong {wrong}")


SAFETENSORS_DTYPE = {torch.float32: "F32", torch.int64: "I64"}


def write_safetensors(path, state_dict):
    """u64 LE header length, JSON header {name: {dtype, shape, data_offsets}}, data."""
    header, blobs, offset = {}, [], 0
    for name, t in state_dict.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()  # native order: little-endian on every host this runs on
        header[name] = {"dtype": SAFETENSORS_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # the format pads the header so the data area is 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


class ImageTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, image):
        return self.clip.encode_image(image)


class TextTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, text):
        return self.clip.encode_text(text)


def export(tower, example, input_name, path, opset):
    tmp = path + ".tmp"
    torch.onnx.export(
        tower, (example,), tmp, opset_version=opset, do_constant_folding=True,
        input_names=[input_name], output_names=["features"],
        dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}},
    )
    os.replace(tmp, path)


def export_gemms(shapes, out, seed, opset):
    for m, k, n in shapes:
        torch.manual_seed(seed)
        layer = torch.nn.Linear(k, n, bias=False).eval()
        path = os.path.join(out, f"gemm-{m}x{k}x{n}.onnx")
        tmp = path + ".tmp"
        torch.onnx.export(layer, (torch.randn(m, k),), tmp, opset_version=opset, input_names=["x"], output_names=["y"])
        os.replace(tmp, path)
        print(f"gemm {m}x{k}x{n} -> {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="RN50,ViT-B/32")
    parser.add_argument("--out", default=os.environ.get("CLIP_TS_BENCH_CACHE", os.path.join(ROOT, ".cache", "onnx")))
    parser.add_argument("--seed", type=int, default=20240101)
    parser.add_argument("--opset", type=int, default=14)
    parser.add_argument("--gemm", default="50x768x3072,50x3072x768,1024x1024x1024",
                        help="GEMM shapes MxKxN for bench/gemm.ts (empty: none)")
    args = parser.parse_args()

    ref = load_reference_model_module()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    export_gemms([tuple(int(v) for v in s.split("x")) for s in args.gemm.split(",") if s], args.out, args.seed, args.opset)
    for name in filter(None, args.models.split(",")):
        cfg = read_config(name)
        stem = os.path.join(args.out, file_stem(name))
        t0 = time.time()
        torch.manual_seed(args.seed)
        model = ref.CLIP(**cfg["config"]).float().eval()
        randomise_batch_norms(model, torch.Generator().manual_seed(args.seed + 1))
        sd = model.state_dict()
        check_against_config(sd, cfg)
        write_safetensors(stem + ".safetensors", sd)

        res, ctx = cfg["config"]["image_resolution"], cfg["config"]["context_length"]
        image = torch.randn(2, 3, res, res, generator=torch.Generator().manual_seed(args.seed + 2))
        text = torch.zeros(2, ctx, dtype=torch.int64)
        text[0, :8] = torch.tensor([49406, 320, 1125, 539, 320, 1929, 269, 49407])  # "a photo of a dog."
        text[1, :] = torch.arange(ctx) + 1000
        text[1, -1] = 49407
        with torch.no_grad():
            image_features = model.encode_image(image)
            text_features = model.encode_text(text)
        if not (torch.isfinite(image_features).all() and torch.isfinite(text_features).all()):
            raise SystemExit(f"{name}: the random model produces non-finite features; change --seed")
        export(ImageTower(model), image, "image", stem + ".image.onnx", args.opset)
        export(TextTower(model), text, "text", stem + ".text.onnx", args.opset)

        meta = {
            "name": name, "seed": args.seed, "opset": args.opset, "torch": torch.__version__,
            "config": cfg["config"], "num_params": sum(p.numel() for p in model.parameters()),
            "files": {k: os.path.basename(stem) + ext for k, ext in
                      (("image", ".image.onnx"), ("text", ".text.onnx"), ("weights", ".safetensors"))},
        }
        with open(stem + ".json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
        print(f"{name}: {meta['num_params']:,} parameters -> {stem}.{{image.onnx,text.onnx,safetensors,json}} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
