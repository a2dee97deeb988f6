"""Golden data for the exact-GELU kernels: torch.erf and torch.nn.functional.gelu (approximate='none') in
float32 on a fixed set of inputs, written to test/golden/gelu/{x,erf,gelu}.npy, and gelu_exact.npy: x·Φ(x) as
x/2·erfc(−x/√2) in float64 (no cancellation for x < 0), rounded to float32.

Run: /usr/bin/python3 tools/golden/make_gelu_golden.py   (torch 1.13 + numpy; a second run is byte-identical)

The inputs: a grid over [-10, 10] in steps of 1/700, the specials (NaN, ±Inf, ±0, subnormals, the largest
floats), values around erf's turning points (|x| = 1, the region split; 3.92, where erf rounds to 1; 4, the clamp)
and seeded random values: uniform in [-10, 10], log-uniform magnitudes over all of float32.

Each op runs once on the whole tensor, as in a model. On this torch's CPU build, float gelu goes through oneDNN's
gelu_erf, whose own erf approximation is off by up to ~1.5e-7 absolute, so for x < 0 (1 + erf cancels) its
outputs are thousands of ulp from the exact value (and up to ~6 ulp for x ≥ 0); torch.erf itself is within 1 ulp.
"""
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "golden", "gelu")


def inputs() -> np.ndarray:
    f32 = np.float32
    grid = np.arange(-7000, 7001, dtype=np.float64) / 700
    tiny = np.finfo(f32).tiny
    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3e-45, 1e-40, -1e-40, 1.1754942e-38, tiny, -tiny,
                1e-30, -1e-30, 1e-20, 1e-10, -1e-10, 1e-5, -1e-5, 1e30, -1e30, 3.4028235e38, -3.4028235e38,
                3.92, -3.92, 3.9192, 4.0, -4.0, 5.0, -5.0, 6.0, -6.0, 100.0, -100.0]
    rng = np.random.default_rng(20261204)
    edges = []
    for c in [1.0, 3.9192, 4.0, 1.0 / np.sqrt(2), 4 * np.sqrt(2)]:  # a few ulps either side
        b = np.array([c, -c], dtype=f32).view(np.int32)
        for d in range(-6, 7):
            edges.append((b + d).view(f32))
    uniform = rng.uniform(-10, 10, 3000)
    mags = np.exp(rng.uniform(np.log(1e-38), np.log(3e38), 1000)) * rng.choice([-1, 1], 1000)
    x = np.concatenate([grid, specials, np.concatenate(edges), uniform, mags]).astype(f32)
    return x


def main() -> None:
    torch.set_num_threads(1)
    x = inputs()
    t = torch.from_numpy(x)
    erf = torch.erf(t).numpy()
    gelu = torch.nn.functional.gelu(t).numpy()
    xd = t.double()
    exact = (xd * 0.5 * torch.erfc(-xd / np.sqrt(2))).float().numpy()
    os.makedirs(OUT, exist_ok=True)
    for name, a in [("x", x), ("erf", erf), ("gelu", gelu), ("gelu_exact", exact)]:
        assert a.dtype == np.float32 and a.shape == x.shape
        np.save(os.path.join(OUT, f"{name}.npy"), a)
    print(f"{len(x)} inputs, torch {torch.__version__}, numpy {np.__version__} -> {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
