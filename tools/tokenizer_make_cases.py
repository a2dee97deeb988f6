"""Extra goldens for the tokenizer's text cleaning, made with the reference (clip/simple_tokenizer.py, ftfy 6.3.1, regex).

Writes fixtures/tokenizer_extra_cases.jsonl: one JSON object a line with
  text       the input
  fixed      ftfy.fix_text(text)
  unescaped  html.unescape(text)
  ids        SimpleTokenizer().encode(text)
and fixtures/tokenizer_decode_cases.jsonl: {ids, text} with text = SimpleTokenizer().decode(ids) for random ids
(byte fragments included, so that invalid UTF-8 is replaced as Python does).

The strings stress what tokenizer_cases.jsonl covers lightly: mojibake in every code page ftfy tries (also
double-encoded, with U+00A0 turned into spaces, with lost bytes, or mixed with correct text), HTML references,
whitespace and control characters, case folding, and random mixtures of all of these.

  cd tools && PYTHONPATH=/tmp/ftfy-lib /usr/bin/python3 tokenizer_make_cases.py
(see tokenizer_gen_text_tables.py for installing ftfy 6.3.1 and regex.)
"""

import html
import html.entities
import importlib.util
import json
import os
import random

import ftfy

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP_REPO = os.environ.get("CLIP_REPO", "/work/ref")
BPE = os.path.join(HERE, "..", "weights", "openai", "bpe_simple_vocab_16e6.txt.gz")  # OpenAI's, shipped in the package


def load_reference():
    # Load the module file alone: the clip package's __init__ pulls in torch.
    spec = importlib.util.spec_from_file_location("ref_simple_tokenizer", os.path.join(CLIP_REPO, "clip", "simple_tokenizer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(BPE)


WORDS = [
    "café", "naïve", "résumé", "Straße", "über", "señor", "façade", "crème brûlée", "smörgåsbord", "Zürich",
    "Ålesund", "øre", "Łódź", "Dvořák", "Šťastný", "İstanbul", "ağaç", "Ελλάδα", "ΣΊΣΥΦΟΣ", "Москва", "ёжик",
    "Київ", "日本語", "中文", "한국어", "ภาษาไทย", "עברית", "العربية", "हिन्दी", "😀", "🐶🎉", "❤️", "👍🏽", "🇫🇷",
    "“quoted”", "‘single’", "—", "–", "…", "•", "€5", "£3", "¥100", "©", "®", "™", "°C", "½", "±", "µm", "×",
    "→", "√2", "≈", "∑", "π", "ﬁne", "ﬂow", "Ĳssel", "ＡＢＣ", "１２３", "ｶﾀｶﾅ", "\u00a0", "à la mode", "às vezes",
]
ENCODINGS = [
    "latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250", "sloppy-windows-1253",
    "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2", "macroman", "cp437",
]
ASCII_WORDS = ["a", "photo", "of", "the", "dog", "is", "it's", "we'll", "THEY'RE", "x", "1999", "3.14", "-", ":", "(", ")"]
POOL = (
    list("abcxyzABCXYZ0123456789 .,;:!?'\"&#<>/-_()[]{}|\\@$%^*+=~`")
    + list("\t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff\x00\x07\x1b\x7f")
    + [chr(c) for c in range(0x80, 0xA0)]
    + list("ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ¡¢£¤¥¦§¨©ª«¬\xad®¯°±²³´µ¶·¸¹º»¼½¾¿")
    + list("€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ")
    + list("ΑΒΓΞΟΣΩαβγσςάέ€ЂВГРСвўЃѓ≈√∂≠≤≥∞▀▄█░▒▓│┌═║╔╗")
    + list("İıſKΣ\u0345\u0301\u0307ǅǈﬁﬂﬅĲŉＡｚ０ｶﾞ\ufff9\ufffc\ufffd\u206a\ud7ff")
    + ["😀", "🐶", "👍🏽", "\U0001d400", "中", "文", "\u4e00", "あ"]
    + ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&nbsp;", "&copy", "&notit;", "&EACUTE;", "&#x1F600;", "&#128;",
       "&#0;", "&#xD800;", "&#1114112;", "&#x0b;", "&#12;", "&#65;", "&amp;amp;", "&ampx", "&Jscr;", "&#xZZ;"]
    + ["'s", "'S", "'ſ", "'LL", "'Re", "'ve", "'M", "'d", "'t", "<|startoftext|>", "<|ENDOFTEXT|>", "<|ſtartoftext|>"]
    + ["\x1b[31m", "\x1b[0;1m", "\x1b[١m"]
)


def mojibake(rng):
    text = rng.choice(WORDS)
    if rng.random() < 0.3:
        text += " " + rng.choice(WORDS)
    for _ in range(1 if rng.random() < 0.8 else 2):
        encoding = rng.choice(ENCODINGS)
        data = text.encode("utf-8")
        if rng.random() < 0.15:
            text = data.decode(encoding.replace("sloppy-", ""), errors="replace")
        else:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
    if rng.random() < 0.2:
        text = text.replace("\xa0", " ")
    context = [rng.choice(ASCII_WORDS) for _ in range(rng.randint(0, 3))]
    context.insert(rng.randint(0, len(context)), text)
    if rng.random() < 0.2:
        context.insert(rng.randint(0, len(context)), rng.choice(WORDS))
    return " ".join(context)


def soup(rng, max_len=24):
    return "".join(rng.choice(POOL) for _ in range(rng.randint(1, max_len)))


def entities(rng):
    names = list(html.entities.html5)
    parts = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.4:
            parts.append("&" + rng.choice(names))
        elif kind < 0.55:
            parts.append("&" + rng.choice(names).upper())
        elif kind < 0.8:
            cp = rng.choice([0, 9, 11, 13, 0x1F, 0x7F, 0x80, 0x85, 0x9F, 0xA0, 0xD800, 0xDFFF, 0xFDD0, 0xFFFE, 0x10FFFF,
                             0x110000, 10**12, rng.randrange(0x110000)])
            ref = f"#{cp}" if rng.random() < 0.5 else f"#x{cp:x}"
            parts.append("&" + ref + (";" if rng.random() < 0.7 else ""))
        else:
            parts.append(rng.choice(["amp", "lt", "AMP", "not", "notin", "copy", "x", "&"]) + rng.choice(["", ";", "y", " "]))
        parts.append(rng.choice(["", " ", "a", "\n", "<", ">", "&"]))
    return "".join(parts)


def is_json_stable(text):
    return json.loads(json.dumps(text)) == text


def main():
    rng = random.Random(20241126)
    tokenizer = load_reference()
    fixed_inputs = [
        "Ã©À\n", "Ã©À", "Ã\n", "í\xa0½í\xb8\x8d", "x í\xa0½í\xb8\x8d y", "Ã la mode", "voilÃ le travail", "Ã s vezes",
        "â€œ like this â€\ufffd", "â€™", "sÃ³", "schÃ¶n", "ÃƒÂ©", "&macr;\\_(ã\x83\x84)_/&macr;", "âœ” No problems",
        "Broken text&hellip; it&#x2019;s ﬂubberiﬁc!", "ＬＯＵＤ　ＮＯＩＳＥＳ", "P&EACUTE;REZ", "&ntilde; &Ntilde; &NTILDE; &nTILDE;",
        "this&not that", "a < b &amp; c\n&amp; d", "&amp;\n<p>\n&amp;", "ΣΑΣ ΟΔΟΣ. Σ'Σ", "İSTANBUL İi",
        "\x1b[36;44mI'm blue\x1b[0m", "\ud83d\ude00", "\udca9 lone", "a\u2028b\u2029c\x85d\r\ne\rf",
        "\ufeffBOM", "zero\u200bwidth\u200djoiner", "x\u0345y", "it'ſ 'ſ", "\u00e9\u0301", "e\u0301\u0327",
    ]
    texts = [t for t in fixed_inputs if is_json_stable(t)]
    while len(texts) < 1400:
        kind = rng.random()
        if kind < 0.35:
            text = mojibake(rng)
        elif kind < 0.7:
            text = soup(rng)
        elif kind < 0.85:
            text = entities(rng)
        else:
            text = "\n".join(soup(rng, 12) if rng.random() < 0.5 else (mojibake(rng) or "") for _ in range(rng.randint(2, 4)))
        if text is not None and is_json_stable(text):
            texts.append(text)
    texts.append(" ".join(rng.choice(WORDS + ASCII_WORDS) for _ in range(120)))

    with open(os.path.join(HERE, "fixtures", "tokenizer_extra_cases.jsonl"), "w", encoding="utf-8") as f:
        for text in texts:
            case = {"text": text, "fixed": ftfy.fix_text(text), "unescaped": html.unescape(text), "ids": tokenizer.encode(text)}
            f.write(json.dumps(case, ensure_ascii=True) + "\n")

    with open(os.path.join(HERE, "fixtures", "tokenizer_decode_cases.jsonl"), "w", encoding="utf-8") as f:
        for _ in range(300):
            ids = [rng.randrange(len(tokenizer.decoder)) if rng.random() < 0.5 else rng.randrange(512) for _ in range(rng.randint(1, 8))]
            f.write(json.dumps({"ids": ids, "text": tokenizer.decode(ids)}, ensure_ascii=True) + "\n")
    print("wrote", len(texts), "text cases and 300 decode cases")


if __name__ == "__main__":
    main()
