#!/usr/bin/python3
"""Copy a safetensors checkpoint with one weight changed: a planted bug for trying `clip-ts parity`.

Usage:
  /usr/bin/python3 tools/parity/perturb_checkpoint.py IN.safetensors OUT.safetensors \
      --key visual.transformer.resblocks.1.mlp.c_fc.weight --index 0 --delta 0.5
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_activations import read_safetensors  # noqa: E402

NUMPY_TO_SAFETENSORS = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
                        np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}


def write_safetensors(path, arrays):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for key, arr in arrays.items():
        b = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
        header[key] = {"dtype": NUMPY_TO_SAFETENSORS[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the data area starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", required=True, help="the tensor to change")
    ap.add_argument("--index", type=int, default=0, help="flat index of the element to change")
    ap.add_argument("--delta", type=float, default=0.5, help="added to that element")
    args = ap.parse_args()

    arrays = {k: v.numpy().copy() for k, v in read_safetensors(args.src).items()}
    if args.key not in arrays:
        sys.exit(f"perturb_checkpoint: no tensor {args.key!r} in {args.src}")
    flat = arrays[args.key].reshape(-1)
    if not 0 <= args.index < flat.size:
        sys.exit(f"perturb_checkpoint: index {args.index} outside {args.key} ({flat.size} elements)")
    before = flat[args.index].item()
    flat[args.index] += args.delta
    write_safetensors(args.dst, arrays)
    print(f"{args.dst}: {args.key}[{args.index}] {before:.6g} -> {flat[args.index].item():.6g}", file=sys.stderr)


if __name__ == "__main__":
    main()
