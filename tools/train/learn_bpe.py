"""Learn byte-level BPE merges from the caption corpus of data.py.

Output is in the format of OpenAI's bpe_simple_vocab_16e6.txt.gz (a
"#version: 0.2" line, then one "left right" merge per line over the GPT-2
byte-to-unicode alphabet, "</w>" marking a word end), so the reference
SimpleTokenizer loads it through bpe_path. Vocabulary = 256 bytes + 256
word-final bytes + merges + <|startoftext|> + <|endoftext|>.

    /usr/bin/python3 learn_bpe.py [--out ../../weights/vocab.txt.gz]
"""
from __future__ import annotations

import argparse
import collections
import gzip
import io
import os
import re

import data

# Same word split as the reference tokenizer for the ASCII text we have:
# letter runs, single digits, runs of other non-space characters.
WORD_RE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


def byte_alphabet() -> tuple[list[str], dict[int, str]]:
    """Printable Latin-1 bytes stand for themselves; the other bytes are
    shifted to code points 256.. in byte order (GPT-2's reversible map)."""
    keep = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    rest = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep}
    table.update({b: chr(256 + i) for i, b in enumerate(rest)})
    return [table[b] for b in keep + rest], table


def corpus_words() -> collections.Counter:
    """Word frequencies over every caption of every training combination."""
    counts: collections.Counter = collections.Counter()
    for shape, colour in data.TRAIN_PAIRS:
        for size in data.SIZES:
            for pos in data.POSITIONS:
                for cap in data.all_captions(data.Sample(shape, colour, size, pos)):
                    counts.update(WORD_RE.findall(cap.lower()))
    return counts


def learn(words: collections.Counter, max_merges: int, min_count: int) -> list[tuple[str, str]]:
    _, table = byte_alphabet()
    seqs = {}
    for w, n in words.items():
        syms = [table[b] for b in w.encode("utf-8")]
        syms[-1] += "</w>"
        seqs[w] = (syms, n)
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs: collections.Counter = collections.Counter()
        for syms, n in seqs.values():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        # Most frequent pair; ties go to the lexicographically smallest so
        # the file is reproducible.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < min_count:
            break
        merges.append(best)
        joined = best[0] + best[1]
        for w, (syms, n) in seqs.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == best[0] and syms[i + 1] == best[1]:
                    out.append(joined)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            seqs[w] = (out, n)
    return merges


def write_merges(path: str, merges: list[tuple[str, str]]) -> None:
    # No trailing newline: the reference loader keeps every line after the
    # header (up to 48894), so an empty last line would become a bogus merge.
    text = "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "weights", "vocab.txt.gz"))
    ap.add_argument("--max-merges", type=int, default=400)
    ap.add_argument("--min-count", type=int, default=2)
    args = ap.parse_args()
    words = corpus_words()
    merges = learn(words, args.max_merges, args.min_count)
    write_merges(args.out, merges)
    vocab = 512 + len(merges) + 2
    print(f"{len(words)} distinct words, {len(merges)} merges -> vocab_size {vocab} "
          f"(sot {vocab - 2}, eot {vocab - 1}); wrote {args.out}")


if __name__ == "__main__":
    main()
