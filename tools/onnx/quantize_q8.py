#!/usr/bin/python3
"""Dynamically quantized ("q8") copies of the bench's ONNX exports, the peer of clip-ts's int8 path.

transformers.js ships CLIP as a q8 ONNX model: onnxruntime's quantize_dynamic, which rewrites every MatMul whose
second operand is a constant weight into
    DynamicQuantizeLinear(x) -> (x_q uint8, x_scale, x_zero_point)     activations, per tensor, at run time
    MatMulInteger(x_q, w_q, x_zero_point, w_zero_point) -> int32
    Cast(float) * (x_scale * w_scale)
with the weight quantized once per tensor (uint8 when the graph has a Conv, as transformers.js picks for
onnxruntime-web, else int8). The onnxruntime Python package is not installable here, so this script builds the
same graph pattern with the `onnx` package (Debian python3-onnx) and numpy. Convolutions stay float (ORT-web has
no ConvInteger for int8 weights). Gemm nodes with a constant B are rewritten the same way, their bias added after.

Usage: /usr/bin/python3 tools/onnx/quantize_q8.py [DIR]   (default $CLIP_TS_BENCH_CACHE or .cache/onnx/)
writes <file>.image.q8.onnx and <file>.text.q8.onnx next to each <file>.{image,text}.onnx
"""

import glob
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def quantize_weight(w, unsigned):
    """Per-tensor quantization of a constant: uint8 asymmetric over [min(w, 0), max(w, 0)], or int8 symmetric."""
    w = w.astype(np.float32)
    if unsigned:
        lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
        scale = (hi - lo) / 255.0 or 1.0
        zero = int(np.clip(round(-lo / scale), 0, 255))
        q = np.clip(np.rint(w / scale) + zero, 0, 255).astype(np.uint8)
        return q, np.float32(scale), np.uint8(zero)
    m = float(np.abs(w).max())
    scale = m / 127.0 or 1.0
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, np.float32(scale), np.int8(0)


def quantize(model):
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    unsigned = any(n.op_type == "Conv" for n in graph.node)
    nodes, added, count = [], [], 0
    for node in graph.node:
        weight_name = None
        if node.op_type == "MatMul" and node.input[1] in inits:
            weight_name = node.input[1]
            w = numpy_helper.to_array(inits[weight_name])
            bias = None
        elif node.op_type == "Gemm" and node.input[1] in inits:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                nodes.append(node)
                continue
            weight_name = node.input[1]
            w = numpy_helper.to_array(inits[weight_name])
            if attrs.get("transB", 0):
                w = w.T
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if weight_name is None or w.ndim != 2:
            nodes.append(node)
            continue
        count += 1
        p = f"q8_{count}"
        q, scale, zero = quantize_weight(w, unsigned)
        added += [
            numpy_helper.from_array(q, p + "_w"),
            numpy_helper.from_array(np.array(scale, dtype=np.float32), p + "_w_scale"),
            numpy_helper.from_array(np.array(zero), p + "_w_zero"),
        ]
        x = node.input[0]
        out = node.output[0]
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [p + "_xq", p + "_x_scale", p + "_x_zero"], name=p + "_dql"),
            helper.make_node("MatMulInteger", [p + "_xq", p + "_w", p + "_x_zero", p + "_w_zero"], [p + "_acc"], name=p + "_mmi"),
            helper.make_node("Cast", [p + "_acc"], [p + "_accf"], to=TensorProto.FLOAT, name=p + "_cast"),
            helper.make_node("Mul", [p + "_x_scale", p + "_w_scale"], [p + "_scale"], name=p + "_scale"),
            helper.make_node("Mul", [p + "_accf", p + "_scale"], [out if bias is None else p + "_y"], name=p + "_mul"),
        ]
        if bias is not None:
            nodes.append(helper.make_node("Add", [p + "_y", bias], [out], name=p + "_bias"))
    used = {i for n in nodes for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    return count, unsigned


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CLIP_TS_BENCH_CACHE", os.path.join(ROOT, ".cache", "onnx"))
    files = sorted(f for f in glob.glob(os.path.join(out_dir, "*.onnx")) if f.endswith((".image.onnx", ".text.onnx")))
    if not files:
        sys.exit(f"no <model>.image.onnx / .text.onnx in {out_dir}: run tools/onnx/export_onnx.py first")
    for path in files:
        model = onnx.load(path)
        count, unsigned = quantize(model)
        onnx.checker.check_model(model)
        dst = path[: -len(".onnx")] + ".q8.onnx"
        tmp = dst + ".tmp"
        onnx.save(model, tmp)
        os.replace(tmp, dst)
        print(f"{os.path.basename(path)}: {count} matmuls -> {'uint8' if unsigned else 'int8'} weights, {os.path.getsize(dst) / 2**20:.0f} MiB -> {dst}")


if __name__ == "__main__":
    main()
