#!/bin/sh
# Regenerates the small dumps committed under test/golden/parity/, which the parity and summary tests read
# (CI has no torch). Needs /usr/bin/python3 with torch and numpy, and the reference checkout (CLIP_REPO).
set -eu
cd "$(dirname "$0")"
G=../../test/golden/models
OUT=../../test/golden/parity
rm -rf "$OUT"
mkdir -p "$OUT"
# a directory with a manifest: the golden pixels, two random texts
/usr/bin/python3 dump_activations.py --model $G/vit/weights.safetensors --pixels $G/vit/pixels.npy --texts 2 --out $OUT/vit
# the same files zipped (.npz), for the ResNet family
/usr/bin/python3 dump_activations.py --model $G/rn/weights.safetensors --images 1 --texts 2 --out $OUT/rn.npz
# a plain np.savez_compressed file without a manifest: clip-ts infers order and layouts
/usr/bin/python3 dump_activations.py --model $G/vit/weights.safetensors --images 2 --texts 0 --plain --out $OUT/vit_plain.npz
