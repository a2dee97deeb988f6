"""NaN / Inf semantics of the reference's ops, from PyTorch itself: average pooling, softmax attention, layer
norm and the ResNet's attention pool, each on inputs holding NaN, +Inf or -Inf. Writes test/golden/nan/ops.json,
which test/kernels.test.ts runs through both backends: NaN and +-Inf must land where PyTorch puts them; finite
values agree to rounding (PyTorch sums in other orders).

    /usr/bin/python3 tools/golden/make_nan_goldens.py

Non-finite floats are written as the strings "NaN", "Infinity", "-Infinity" (JSON has no such numbers).
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)
NAN, INF = float("nan"), float("inf")
OUT = pathlib.Path(__file__).resolve().parents[2] / "test" / "golden" / "nan" / "ops.json"


def enc(t):
    def one(v):
        v = float(v)
        return "NaN" if math.isnan(v) else ("Infinity" if v == INF else ("-Infinity" if v == -INF else v))
    return {"shape": list(t.shape), "data": [one(v) for v in t.detach().reshape(-1).tolist()]}


def rnd(*shape, scale=1.0, salt=0):
    g = torch.Generator().manual_seed(sum(shape) * 7919 + len(shape) + salt)
    return (torch.rand(*shape, generator=g) * 2 - 1) * scale


cases = []

# AvgPool2d(k): a NaN, +Inf and -Inf in one window, a lone +Inf, a plane of +Inf
x = rnd(1, 3, 4, 4)
x[0, 0, 1, 2] = NAN
x[0, 1, 0, 0], x[0, 1, 0, 1] = INF, -INF
x[0, 1, 3, 3] = INF
x[0, 2] = INF
for k in (2, 3):
    cases.append({"op": "avgPool2d", "name": f"k={k}", "x": enc(x), "k": k, "out": enc(F.avg_pool2d(x, k))})

# LayerNorm over the last dimension: rows with NaN, +-Inf, all +Inf, and a variance that overflows f32 (PyTorch
# gives rstd 0, so y = bias, for this row; some other overflowing rows give NaN in PyTorch, an artefact of its
# Welford merge order, and are left out)
rows = [
    [0.5, -1.0, 2.0, 0.25, -0.75, 1.5],
    [NAN, 1, 2, 3, 4, 5],
    [INF, 1, 2, 3, 4, 5],
    [-INF, 1, 2, 3, 4, 5],
    [INF, -INF, 1, 2, 3, 4],
    [INF] * 6,
    [1.5e19, 1.5e19, 1.5e19, -1.5e19, -1.5e19, -1.5e19],
    [3e38, 3e38, 3e38, 3e38, 3e38, 3e38],
]
x = torch.tensor(rows, dtype=torch.float32)
w, b = rnd(6) + 1, rnd(6)
cases.append({"op": "layerNorm", "name": "rows", "x": enc(x), "weight": enc(w), "bias": enc(b), "eps": 1e-5,
              "out": enc(F.layer_norm(x, (6,), w, b, 1e-5))})


def attention(q, k, v, heads):
    """What the reference's nn.MultiheadAttention does after its projections (torch 1.13: q scaled first)."""
    B, Lq, D = q.shape
    hd = D // heads
    split = lambda t: t.reshape(B, t.shape[1], heads, hd).transpose(1, 2)
    p = torch.softmax((split(q) / math.sqrt(hd)) @ split(k).transpose(-2, -1), dim=-1)
    return (p @ split(v)).transpose(1, 2).reshape(B, Lq, D)


# q [1, 2, 6], k and v [1, 4, 6], 2 heads of 3 (head 1 = channels 3..5)
def qkv():
    return rnd(1, 2, 6), rnd(1, 4, 6, salt=1), rnd(1, 4, 6, salt=2)


variants = {}
q, k, v = qkv()
variants["finite"] = (q, k, v)
q, k, v = qkv(); k[0, 2, 1] = NAN
variants["NaN in a key: that head's rows are NaN"] = (q, k, v)
q, k, v = qkv(); q[0, 0, 4], q[0, 1, 4] = 1.0, -1.0; k[0, 1, 4] = INF
variants["+Inf key: score +Inf (row NaN: Inf - Inf) or -Inf (weight 0)"] = (q, k, v)
q, k, v = qkv(); v[0, 3, 0] = NAN; v[0, 2, 5] = INF
variants["NaN and +Inf in values"] = (q, k, v)
q, k, v = qkv(); q[0, 0, 0:3] = torch.tensor([1.0, 0.5, 0.25]); q[0, 1, 0:3] = -q[0, 0, 0:3]; k[0, :, 0:3] = -INF
variants["every score -Inf or +Inf: NaN"] = (q, k, v)
q, k, v = qkv(); q[0, :, 3:6] = torch.tensor([1.0, 0.5, 0.25]); k[0, 0, 3:6] = -INF
variants["one score -Inf: weight 0"] = (q, k, v)
for name, (q, k, v) in variants.items():
    cases.append({"op": "attention", "name": name, "q": enc(q), "k": enc(k), "v": enc(v), "heads": 2,
                  "out": enc(attention(q, k, v, 2))})

# The ResNet's attention pool (model.py's AttentionPool2d: the spatial mean as an extra token, positional
# embedding, one multi-head attention queried by the mean token), on [1, 8, 2, 2] with a NaN pixel or all +Inf
C, S, heads, out_dim = 8, 2, 2, 6
params = {
    "positional_embedding": rnd(S * S + 1, C) / C ** 0.5,
    "k_proj.weight": rnd(C, C), "k_proj.bias": rnd(C), "q_proj.weight": rnd(C + 1, C)[1:], "q_proj.bias": rnd(C + 1)[1:],
    "v_proj.weight": rnd(C + 2, C)[2:], "v_proj.bias": rnd(C + 2)[2:], "c_proj.weight": rnd(out_dim, C),
    "c_proj.bias": rnd(out_dim),
}


def attnpool(x):
    t = x.flatten(start_dim=2).permute(2, 0, 1)  # NCHW -> (HW)NC
    t = torch.cat([t.mean(dim=0, keepdim=True), t], dim=0)
    t = t + params["positional_embedding"][:, None, :]
    out, _ = F.multi_head_attention_forward(
        query=t[:1], key=t, value=t, embed_dim_to_check=C, num_heads=heads,
        q_proj_weight=params["q_proj.weight"], k_proj_weight=params["k_proj.weight"], v_proj_weight=params["v_proj.weight"],
        in_proj_weight=None, in_proj_bias=torch.cat([params["q_proj.bias"], params["k_proj.bias"], params["v_proj.bias"]]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0, out_proj_weight=params["c_proj.weight"],
        out_proj_bias=params["c_proj.bias"], use_separate_proj_weight=True, training=False, need_weights=False)
    return out.squeeze(0)


pool = {"spacialDim": S, "embedDim": C, "heads": heads, "outputDim": out_dim, "params": {n: enc(t) for n, t in params.items()}}
x = rnd(1, C, S, S)
pool_cases = {"finite": x.clone()}
x1 = x.clone(); x1[0, 3, 1, 0] = NAN
pool_cases["one NaN pixel"] = x1
pool_cases["all +Inf"] = torch.full_like(x, INF)
x2 = x.clone(); x2[0, 5, 0, 1] = INF
pool_cases["one +Inf pixel"] = x2
pool["cases"] = [{"name": n, "x": enc(t), "out": enc(attnpool(t))} for n, t in pool_cases.items()]

OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({"torch": torch.__version__, "cases": cases, "attnpool": pool}, indent=None) + "\n")
print("wrote", OUT, OUT.stat().st_size, "bytes")
for c in cases:
    print(c["op"], c["name"], c["out"]["data"][:8])
for c in pool["cases"]:
    print("attnpool", c["name"], c["out"]["data"])
