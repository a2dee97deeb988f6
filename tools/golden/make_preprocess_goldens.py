#!/usr/bin/python3
"""Goldens for src/image: PNG/JPEG inputs and what Pillow + torchvision (CLIP's `_transform`) make of them.

Run from tools/golden with /usr/bin/python3 (Debian's python3-pil / python3-torchvision).
Writes test/golden/preprocess/: the inputs, cases.json, and per case the Pillow image after Resize (before crop),
after CenterCrop + convert("RGB"), and the final normalised float32 tensor. Large arrays are kept only as SHA-256
digests of their bytes (layouts below) so the folder stays small; small ones are also stored as .npy.
normalize_table.npy holds ToTensor + Normalize of every uint8 value per channel.

Byte layouts hashed (and stored):
  resized: row-major, bands packed (L/P/"1": 1 byte, LA: 2, RGB: 3, RGBA/CMYK: 4; "1" as 0/255; "I": int32 LE)
  crop:    row-major RGB uint8 after convert("RGB")
  tensor:  float32 little-endian, CHW (batch dimension dropped)
The PNG files are written by the small encoder below (so that every colour type, bit depth, filter type and Adam7 can
be covered), JPEGs by Pillow and by `cjpeg` (Debian's libjpeg-turbo-progs) for what Pillow cannot write; Pillow is what
decodes them all for the goldens.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import types
import zlib

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Normalize, Resize, ToTensor

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "test", "golden", "preprocess"))
NPY_LIMIT = 52_000  # bytes; bigger uint8 arrays are kept as digests only
TENSOR_NPY_LIMIT = 13_000  # float tensors (n_px 32); others as digests, checked value by value via crop + table

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def reference_transform(n_px):
    """openai/CLIP's own `_transform` (the tokenizer's ftfy import is irrelevant here, so stub it when absent)."""
    sys.path.insert(0, os.environ.get("CLIP_REPO", "/work/ref"))
    try:
        import ftfy  # noqa: F401
    except ImportError:
        sys.modules["ftfy"] = types.ModuleType("ftfy")
    from clip.clip import _transform

    return _transform(n_px)


# ---------------------------------------------------------------- PNG encoder


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _pack_rows(samples, bit_depth):
    """samples: (h, w, c) ints → (h, rowbytes) uint8, big-endian, MSB-first sub-byte packing."""
    h, w, c = samples.shape
    flat = samples.reshape(h, w * c)
    if bit_depth == 16:
        return flat.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    if bit_depth == 8:
        return flat.astype(np.uint8)
    per = 8 // bit_depth
    padded_w = -(-w * c // per) * per
    buf = np.zeros((h, padded_w), np.uint8)
    buf[:, : w * c] = flat
    buf = buf.reshape(h, padded_w // per, per)
    out = np.zeros((h, padded_w // per), np.uint8)
    for i in range(per):
        out |= (buf[:, :, i] << (8 - bit_depth * (i + 1))).astype(np.uint8)
    return out


def _filter_rows(rows, bpp, filters):
    """Apply PNG filter types (one per row) to raw rows; returns bytes with the filter-type prefix."""
    h, n = rows.shape
    raw = rows.astype(np.int16)
    out = bytearray()
    prev = np.zeros(n, np.int16)
    for y in range(h):
        cur = raw[y]
        pad = np.zeros(min(bpp, n), np.int16)
        left = np.concatenate([pad, cur[: n - len(pad)]])
        upleft = np.concatenate([pad, prev[: n - len(pad)]])
        ft = filters[y % len(filters)]
        if ft == 0:
            f = cur
        elif ft == 1:
            f = cur - left
        elif ft == 2:
            f = cur - prev
        elif ft == 3:
            f = cur - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prev), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            f = cur - pred
        out.append(ft)
        out += (f & 0xFF).astype(np.uint8).tobytes()
        prev = cur
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def write_png(path, samples, color_type, bit_depth, palette=None, trns=None, interlace=False,
              filters=(0, 1, 2, 3, 4), idat_size=8192, level=9):
    h, w, c = samples.shape
    assert c == CHANNELS[color_type]
    bpp = max(1, c * bit_depth // 8)
    if interlace:
        data = b""
        for xs, ys, dx, dy in ADAM7:
            sub = samples[ys::dy, xs::dx]
            if sub.shape[0] and sub.shape[1]:
                data += _filter_rows(_pack_rows(sub, bit_depth), bpp, filters)
    else:
        data = _filter_rows(_pack_rows(samples, bit_depth), bpp, filters)
    z = zlib.compress(data, level)
    png = b"\x89PNG\r\n\x1a\n"
    png += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    png += _chunk(b"tEXt", b"Comment\x00clip-ts preprocess golden")
    if palette is not None:
        png += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        png += _chunk(b"tRNS", trns)
    for i in range(0, len(z), idat_size):
        png += _chunk(b"IDAT", z[i : i + idat_size])
    png += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


# ---------------------------------------------------------------- content


def content(w, h, c, seed, noise=True):
    """Values in [0, 1]: gradients, hard-edged shapes, a 1-px checkerboard and (optionally) a noise patch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, c))
    for ch in range(c):
        a, b = rng.uniform(-1, 1, 2)
        img[:, :, ch] = 0.5 + 0.5 * (a * x / max(w - 1, 1) + b * y / max(h - 1, 1)) / max(abs(a) + abs(b), 1e-9)
    for _ in range(6):
        x0, x1 = sorted(rng.integers(0, w + 1, 2))
        y0, y1 = sorted(rng.integers(0, h + 1, 2))
        img[y0:y1, x0:x1] = rng.choice([0.0, 1.0, rng.uniform()], c)
    cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.4) * min(w, h) + 1
    img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 1, c)
    stripes = ((x + 2 * y) // max(3, min(w, h) // 20)) % 2 == 0
    band = (y > h * 0.7) & (y < h * 0.8)
    img[stripes & band] = 1.0 - img[stripes & band]
    qw, qh = max(1, w // 6), max(1, h // 6)
    checker = ((x + y) % 2 == 0)[:qh, :qw]
    img[:qh, w - qw :][checker] = 1.0
    img[:qh, w - qw :][~checker] = 0.0
    if noise:
        nw, nh = max(1, w // 8), max(1, h // 8)
        ox, oy = w // 3, h // 2
        img[oy : oy + nh, ox : ox + nw] = rng.uniform(0, 1, (min(nh, h - oy), min(nw, w - ox), c))
    return np.clip(img, 0, 1)


def quantize(img, maxval):
    return np.round(img * maxval).astype(np.int64)


def alpha_plane(w, h, seed):
    a = content(w, h, 1, seed + 1000, noise=False)
    a[: h // 5, : w // 5] = 0.0  # fully transparent corner: un-premultiply keeps the colour there
    a[h - h // 5 :, w - w // 5 :] = 1.0
    return a


# ---------------------------------------------------------------- pipeline


def sha(b):
    return hashlib.sha256(b).hexdigest()


def resized_bytes(im):
    if im.mode == "1":
        return np.array(im.convert("L"), np.uint8)
    if im.mode == "I":
        return np.array(im, np.int32)
    return np.array(im, np.uint8)


def save_npy(name, arr):
    np.save(os.path.join(OUT, name), arr)
    return name


def run_case(case, transforms):
    path = os.path.join(OUT, case["input"])
    n = case["nPx"]
    im = Image.open(path)
    im.load()
    resize, crop, totensor, normalize = transforms[n]
    resized = resize(im)
    cropped = crop(resized)
    rgb = cropped.convert("RGB")
    t = normalize(totensor(rgb))
    ref = transforms["clip", n](Image.open(path))
    assert torch.equal(ref.view(torch.int32), t.view(torch.int32)), case["name"]

    r = resized_bytes(resized)
    crop_arr = np.array(rgb, np.uint8)
    tens = t.numpy().astype("<f4")
    case.update(
        mode=im.mode,
        width=im.width,
        height=im.height,
        resized=[resized.width, resized.height],
        resizedMode=resized.mode,
        resizedSha256=sha(r.astype("<i4").tobytes() if r.dtype == np.int32 else r.tobytes()),
        cropSha256=sha(crop_arr.tobytes()),
        tensorSha256=sha(tens.tobytes()),
    )
    for key, arr, limit in (("resizedNpy", r, NPY_LIMIT), ("cropNpy", crop_arr, NPY_LIMIT), ("tensorNpy", tens, TENSOR_NPY_LIMIT)):
        if arr.nbytes <= limit or not case["exact"]:  # inexact cases are compared with a tolerance
            case[key] = save_npy(f"{case['name']}.{key[:-3]}.npy", arr)
    return case


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    cases = []

    def png(name, n_px, w, h, color_type, bit_depth, seed, **kw):
        noise = kw.pop("noise", True)
        maxval = (1 << bit_depth) - 1
        c = CHANNELS[color_type]
        if color_type == 3:
            n_pal = kw.pop("n_pal", 1 << bit_depth)
            idx_max = kw.pop("idx_max", (1 << bit_depth) - 1)
            samples = quantize(content(w, h, 1, seed, noise), idx_max)
            rng = np.random.default_rng(seed + 7)
            kw["palette"] = rng.integers(0, 256, (n_pal, 3))
        else:
            samples = quantize(content(w, h, c, seed, noise), maxval)
            if color_type in (4, 6):
                samples[:, :, -1] = quantize(alpha_plane(w, h, seed)[:, :, 0], maxval)
            if kw.pop("low_byte_noise", False):
                rng = np.random.default_rng(seed + 9)
                samples = (samples & 0xFF00) | rng.integers(0, 256, samples.shape)
            if "scale" in kw:
                samples = np.round(samples * kw.pop("scale")).astype(np.int64)
        file = f"{name}.png"
        write_png(os.path.join(OUT, file), samples, color_type, bit_depth, **kw)
        cases.append(dict(name=name, input=file, nPx=n_px, decoder="png", exact=True))

    def pil_png(name, n_px, w, h, mode, seed):
        c = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        a = quantize(content(w, h, c, seed), 255).astype(np.uint8)
        file = f"{name}.png"
        Image.fromarray(a[:, :, 0] if c == 1 else a, mode).save(os.path.join(OUT, file))
        cases.append(dict(name=name, input=file, nPx=n_px, decoder="png", exact=True))

    def jpeg(name, n_px, w, h, mode, seed, exact=True, **kw):
        c = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
        a = quantize(content(w, h, c, seed), 255).astype(np.uint8)
        file = f"{name}.jpg"
        Image.fromarray(a[:, :, 0] if c == 1 else a, mode).save(os.path.join(OUT, file), **kw)
        cases.append(dict(name=name, input=file, nPx=n_px, decoder="jpeg", exact=exact))

    def cjpeg(name, n_px, w, h, seed, args, grey=False, exact=True, scans=None):
        """Encodings Pillow cannot write (restart markers, 4:4:0, 4:1:1, RGB colour space, custom scan scripts)."""
        c = 1 if grey else 3
        a = quantize(content(w, h, c, seed), 255).astype(np.uint8)
        src = os.path.join(OUT, name + (".pgm" if grey else ".ppm"))
        with open(src, "wb") as f:
            f.write(f"{'P5' if grey else 'P6'}\n{w} {h}\n255\n".encode() + a.tobytes())
        extra = []
        if scans is not None:
            script = os.path.join(OUT, name + ".scans")
            with open(script, "w") as f:
                f.write(scans)
            extra = ["-scans", script]
        file = f"{name}.jpg"
        subprocess.run(["cjpeg", *args, *extra, "-outfile", os.path.join(OUT, file), src], check=True)
        for tmp in (src, *extra[1:]):
            os.remove(tmp)
        if exact is not None:
            cases.append(dict(name=name, input=file, nPx=n_px, decoder="jpeg", exact=exact))
        return file

    # --- 8-bit RGB, sizes and aspect ratios (n_px 224 is CLIP's default)
    pil_png("rgb_land_400x300", 224, 400, 300, "RGB", 1)
    png("rgb_port_300x400_adam7", 224, 300, 400, 2, 8, 2, interlace=True)
    png("rgb_square_224", 224, 224, 224, 2, 8, 3)
    png("rgb_square_300", 224, 300, 300, 2, 8, 4)
    png("rgb_225x224_noresize", 224, 225, 224, 2, 8, 5)
    png("rgb_227x224_crop_1_5", 224, 227, 224, 2, 8, 6)
    png("rgb_224x229_crop_2_5", 224, 224, 229, 2, 8, 7)
    png("rgb_up_100x67", 224, 100, 67, 2, 8, 8)
    png("rgb_1x1", 224, 1, 1, 2, 8, 9)
    png("rgb_2x3", 224, 2, 3, 2, 8, 10)
    png("rgb_big_3000x2000", 224, 3000, 2000, 2, 8, 11, noise=False, filters=(2,), idat_size=65536)
    png("rgb_land_97x61_n32", 32, 97, 61, 2, 8, 12)
    png("rgb_port_61x200_n32", 32, 61, 200, 2, 8, 13, interlace=True)
    png("rgb_up_20x13_n64", 64, 20, 13, 2, 8, 14)
    png("rgb_land_513x256_n64", 64, 513, 256, 2, 8, 15)
    png("rgb_wide_1000x7_n64", 64, 1000, 7, 2, 8, 16)
    png("rgb_tall_5x333_n32", 32, 5, 333, 2, 8, 17)
    # thin: the crop is a small window of a long resized image (clip-ts resamples only the window)
    png("rgb_thin_1x1500_n32", 32, 1, 1500, 2, 8, 91)
    png("rgba_thin_2000x3_n32", 32, 2000, 3, 6, 8, 92)
    png("p8_thin_1x900_n32", 32, 1, 900, 3, 8, 93)
    png("l16_thin_700x2_n32", 32, 700, 2, 0, 16, 94, scale=400 / 65535)
    png("rgb_land_500x400_n336", 336, 500, 400, 2, 8, 18)
    png("rgb_up_200x150_n336", 336, 200, 150, 2, 8, 19, interlace=True)
    # --- alpha: RGBA and LA are resized premultiplied (RGBa / La) in Pillow
    png("rgba_500x375", 224, 500, 375, 6, 8, 20)
    png("rgba_150x90_n64", 64, 150, 90, 6, 8, 21, interlace=True)
    png("rgba_30x41_up_n64", 64, 30, 41, 6, 8, 22)
    pil_png("rgba_pil_130x100_n64", 64, 130, 100, "RGBA", 23)
    png("la_333x500", 224, 333, 500, 4, 8, 24)
    png("la_90x70_n64", 64, 90, 70, 4, 8, 25, interlace=True)
    # --- grey
    png("l_257x199", 224, 257, 199, 0, 8, 26)
    pil_png("l_pil_120x77_n64", 64, 120, 77, "L", 27)
    png("l4_130x95_adam7_n64", 64, 130, 95, 0, 4, 28, interlace=True)
    png("l2_77x120_n64", 64, 77, 120, 0, 2, 29)
    png("l1_123x77_n64", 64, 123, 77, 0, 1, 30)
    png("l1_9x5_adam7_n32", 32, 9, 5, 0, 1, 31, interlace=True)
    png("l8_trns_100x80_n64", 64, 100, 80, 0, 8, 32, trns=struct.pack(">H", 17))
    # 16-bit grey opens as Pillow mode "I" (resized in double precision, then clipped to 0..255 by convert)
    png("l16_140x100_n64", 64, 140, 100, 0, 16, 33, scale=400 / 65535)
    png("l16_full_80x70_adam7_n32", 32, 80, 70, 0, 16, 34, interlace=True)
    # --- palette (resized NEAREST; missing palette entries read as Pillow's grey ramp)
    png("p8_trns_400x300", 224, 400, 300, 3, 8, 35, trns=bytes(range(0, 256, 2)))
    png("p8_150x100_n64", 64, 150, 100, 3, 8, 36, n_pal=200, idx_max=255)
    png("p4_150x97_adam7_n64", 64, 150, 97, 3, 4, 37, interlace=True, n_pal=10)
    png("p2_111x63_n64", 64, 111, 63, 3, 2, 38, trns=b"\xff\x00\xff")
    png("p1_64x40_n32", 32, 64, 40, 3, 1, 39)
    png("p8_30x20_up_n64", 64, 30, 20, 3, 8, 40)
    # --- 16-bit colour: Pillow keeps the high byte
    png("rgb16_120x90_n64", 64, 120, 90, 2, 16, 41, low_byte_noise=True)
    png("rgba16_100x130_adam7_n64", 64, 100, 130, 6, 16, 42, interlace=True, low_byte_noise=True)
    png("la16_90x60_n32", 32, 90, 60, 4, 16, 43, low_byte_noise=True)
    png("rgb8_trns_70x50_n32", 32, 70, 50, 2, 8, 44, trns=struct.pack(">HHH", 1, 2, 3))
    # --- JPEG (libjpeg-turbo's decoding reproduced: ISLOW IDCT, fancy upsampling, fixed-point YCbCr)
    jpeg("jpeg_420_160x120_n64", 64, 160, 120, "RGB", 50, quality=90)
    jpeg("jpeg_420_640x480", 224, 640, 480, "RGB", 51, quality=85)
    jpeg("jpeg_422_161x97_n64", 64, 161, 97, "RGB", 52, quality=75, subsampling=1)
    jpeg("jpeg_444_prog_150x200_n64", 64, 150, 200, "RGB", 53, quality=92, subsampling=0, progressive=True)
    jpeg("jpeg_420_prog_opt_333x251", 224, 333, 251, "RGB", 54, quality=80, progressive=True, optimize=True)
    jpeg("jpeg_grey_140x100_n64", 64, 140, 100, "L", 55, quality=85)
    jpeg("jpeg_grey_prog_77x130_n32", 32, 77, 130, "L", 56, quality=70, progressive=True)
    jpeg("jpeg_q100_99x67_up_n64", 64, 99, 67, "RGB", 57, quality=100)
    jpeg("jpeg_q5_120x90_n32", 32, 120, 90, "RGB", 58, quality=5)
    jpeg("jpeg_cmyk_100x80_n64", 64, 100, 80, "CMYK", 59, quality=90)
    jpeg("jpeg_420_4x4_n32", 32, 4, 4, "RGB", 60, quality=90)
    jpeg("jpeg_420_1x1_n32", 32, 1, 1, "RGB", 61, quality=90)
    jpeg("jpeg_422_5x3_n32", 32, 5, 3, "RGB", 62, quality=90, subsampling=1)
    jpeg("jpeg_420_17x9_prog_n32", 32, 17, 9, "RGB", 63, quality=90, progressive=True)
    cjpeg("cjpeg_420_restart_rows_90x70_n64", 64, 90, 70, 64, ["-quality", "88", "-restart", "1"])
    cjpeg("cjpeg_420_restart_3mcu_prog_90x70_n64", 64, 90, 70, 65, ["-quality", "88", "-restart", "3B", "-progressive"])
    cjpeg("cjpeg_440_101x77_n64", 64, 101, 77, 66, ["-quality", "90", "-sample", "1x2"])
    cjpeg("cjpeg_411_103x50_n32", 32, 103, 50, 67, ["-quality", "90", "-sample", "4x1"])
    cjpeg("cjpeg_mixed_sampling_95x83_n64", 64, 95, 83, 68, ["-quality", "90", "-sample", "2x1,1x2,1x1"])
    cjpeg("cjpeg_rgb_colorspace_80x60_n32", 32, 80, 60, 69, ["-quality", "90", "-rgb"])
    cjpeg("cjpeg_grey_2x2_sampling_70x45_n32", 32, 70, 45, 70, ["-quality", "90", "-grayscale", "-sample", "2x2"], grey=True)
    # AC of component 0 never refined below Al=1: libjpeg-turbo block-smooths it, which clip-ts does not (exact: false).
    cjpeg("cjpeg_prog_unrefined_90x64_n64", 64, 90, 64, 71, ["-quality", "90"], exact=False,
          scans="0,1,2: 0-0, 0, 0;\n0: 1-63, 0, 1;\n1: 1-63, 0, 0;\n2: 1-63, 0, 0;\n")
    # Inputs that must be refused (arithmetic coding is not supported).
    reject = [cjpeg("reject_arithmetic_40x30", 0, 40, 30, 72, ["-quality", "90", "-arithmetic"], exact=None)]

    sizes = sorted({c["nPx"] for c in cases})
    transforms = {}
    for n in sizes:
        transforms[n] = (Resize(n, interpolation=InterpolationMode.BICUBIC), CenterCrop(n), ToTensor(), Normalize(MEAN, STD))
        transforms["clip", n] = reference_transform(n)
    cases = [run_case(c, transforms) for c in cases]

    # Pillow's resize on its own (one dimension unchanged skips that pass; never reached through CLIP's Resize).
    resize_cases = []
    for i, (src, w, h) in enumerate([
        ("rgb_land_97x61_n32", 97, 40), ("rgb_land_97x61_n32", 150, 61), ("rgb_land_513x256_n64", 31, 300),
        ("rgba_150x90_n64", 40, 90), ("rgba_30x41_up_n64", 77, 19), ("la_90x70_n64", 90, 31),
        ("l_pil_120x77_n64", 120, 7), ("l16_140x100_n64", 140, 33), ("l16_140x100_n64", 50, 120),
        ("p8_150x100_n64", 73, 41), ("p8_150x100_n64", 300, 100), ("p4_150x97_adam7_n64", 17, 250),
        ("l1_123x77_n64", 50, 200),
    ]):
        im = Image.open(os.path.join(OUT, src + ".png"))
        out = resized_bytes(im.resize((w, h), Image.BICUBIC))
        name = f"resize_{i:02d}_{src}_{w}x{h}"
        resize_cases.append(dict(name=name, input=src + ".png", size=[w, h], resultNpy=save_npy(name + ".npy", out)))

    # CenterCrop on its own, including torchvision's zero padding of images smaller than the crop.
    crop_cases = []
    for src, n in [("rgb_2x3", 8), ("rgb_tall_5x333_n32", 8), ("p1_64x40_n32", 50), ("l16_140x100_n64", 101),
                   ("la_90x70_n64", 75), ("rgba_30x41_up_n64", 36)]:
        im = Image.open(os.path.join(OUT, src + ".png"))
        out = resized_bytes(CenterCrop(n)(im))
        name = f"crop_{src}_{n}"
        crop_cases.append(dict(name=name, input=src + ".png", nPx=n, resultNpy=save_npy(name + ".npy", out)))

    # torchvision's output size rule for random shapes (float division then int()).
    from torchvision.transforms.functional import _compute_resized_output_size

    rng = np.random.default_rng(99)
    size_cases = []
    for _ in range(400):
        w, h = (int(v) for v in rng.integers(1, [40000, 300], 2)[rng.permutation(2)])
        n = int(rng.choice([1, 7, 32, 224, 336, 448, 1000]))
        nh, nw = _compute_resized_output_size((h, w), [n])
        size_cases.append([w, h, n, nw, nh])

    # Every uint8 value through ToTensor + Normalize, per channel (the float step in isolation).
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    t = Normalize(MEAN, STD)(ToTensor()(Image.fromarray(ramp, "RGB")))
    save_npy("normalize_table.npy", t.numpy().astype("<f4"))

    meta = dict(
        generator="tools/golden/make_preprocess_goldens.py",
        pillow=PIL.__version__,
        torchvision=torchvision.__version__,
        torch=torch.__version__,
        cases=cases,
        resizeCases=resize_cases,
        rejectInputs=reject,
        sizeCases=size_cases,
        cropCases=crop_cases,
    )
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(cases)} cases, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
