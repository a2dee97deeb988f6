// ftfy 6.3.1's fix_text with its default configuration, which the CLIP reference applies to every caption:
// HTML entities, mojibake (UTF-8 read as a single-byte code page), C1 controls, Latin ligatures, full/half-width
// forms, curly quotes, line breaks, surrogates, terminal escapes, control characters, then NFC; repeated until
// nothing changes. Mojibake detection follows ftfy's "badness" heuristic, built here from ftfy's character
// categories (generated into ftfy_tables.ts).

import { charClass, classBody, PY_RE_SPACE, type ClassPart } from "./charclass.js";
import { CHARMAPS, LIGATURES, MOJIBAKE_CATEGORIES, UPPER_ENTITIES, UTF8_CLUES, WINDOWS_1252_UNDEFINED } from "./ftfy_tables.js";
import { HTML5, htmlUnescape } from "./html_unescape.js";

/** ftfy's max_decode_length: a line longer than this many code points is fixed in pieces. */
const MAX_SEGMENT = 1_000_000;
/** ftfy iterates to a fixed point; this bound only guarantees termination on inputs where Python would spin. */
const MAX_ROUNDS = 64;

// ---------------------------------------------------------------------------------------------------------------
// Single-byte code pages. Encoded text is held as a "binary string": one char per byte (0..255).

interface CodePage {
  readonly name: string;
  /** Character -> byte, for the characters of bytes 0x80..0xFF and 0x1A. */
  readonly toByte: ReadonlyMap<number, number>;
  /** Byte 0x80..0xFF -> character. */
  readonly high: string;
}

const CODE_PAGES: readonly CodePage[] = CHARMAPS.map(({ name, high, sub }) => {
  const toByte = new Map<number, number>();
  for (let i = 0; i < 128; i++) toByte.set(high.charCodeAt(i), 0x80 + i);
  toByte.set(sub.charCodeAt(0), 0x1a);
  return { name, toByte, high };
});

const SLOPPY_1252 = CODE_PAGES.find((p) => p.name === "sloppy-windows-1252")!;
const UNDEFINED_1252 = new Set(WINDOWS_1252_UNDEFINED);

/** Whether every character of `text` has a byte in the code page (bytes 0x00..0x7F except 0x1A are ASCII in all). */
function canEncode(text: string, page: CodePage): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 0x80 || c === 0x1a) && !page.toByte.has(c)) return false;
  }
  return true;
}

function encode(text: string, page: CodePage): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out += c < 0x80 && c !== 0x1a ? text[i] : String.fromCharCode(page.toByte.get(c)!);
  }
  return out;
}

function isAscii(text: string): boolean {
  return /^[\x00-\x7f]*$/.test(text);
}

// ---------------------------------------------------------------------------------------------------------------
// UTF-8 decoding, strict (Python's "utf-8") and ftfy's "utf-8-variants" (also CESU-8 surrogate pairs and Java's
// two-byte NUL).

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function binaryToBytes(binary: string): Uint8Array {
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function decodeStrict(bytes: Uint8Array): string | null {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * ftfy's utf-8-variants decoder in strict mode, or null where it raises. Its byte patterns use Python's `$`,
 * which also matches just before a final "\n"; `open(i)` reproduces that.
 */
function decodeUtf8Variants(bytes: Uint8Array): string | null {
  const n = bytes.length;
  const open = (i: number) => i === n || (i === n - 1 && bytes[i] === 0x0a);
  const inRange = (i: number, lo: number, hi: number) => i < n && bytes[i]! >= lo && bytes[i]! <= hi;
  let out = "";
  let start = 0;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    const javaNul = b === 0xc0 && (inRange(i + 1, 0x80, 0x80) || open(i + 1));
    const surrogate =
      b === 0xed && (inRange(i + 1, 0xa0, 0xbf) || open(i + 1)) && (inRange(i + 2, 0x80, 0xbf) || open(i + 2));
    if (!javaNul && !surrogate) {
      i++;
      continue;
    }
    const before = decodeStrict(bytes.subarray(start, i));
    if (before === null) return null;
    out += before;
    if (javaNul) {
      if (n - i < 2) return null;
      out += "\u0000";
      i += 2;
    } else {
      const cesu =
        n - i >= 6 &&
        inRange(i + 1, 0xa0, 0xaf) &&
        (inRange(i + 2, 0x80, 0xbf) || open(i + 2)) &&
        (bytes[i + 3] === 0xed || open(i + 3)) &&
        (inRange(i + 4, 0xb0, 0xbf) || open(i + 4)) &&
        (inRange(i + 5, 0x80, 0xbf) || open(i + 5));
      if (!cesu) return null;
      const cp =
        ((bytes[i + 1]! & 0x0f) << 16) +
        ((bytes[i + 2]! & 0x3f) << 10) +
        ((bytes[i + 4]! & 0x0f) << 6) +
        (bytes[i + 5]! & 0x3f) +
        0x10000;
      out += String.fromCodePoint(cp);
      i += 6;
    }
    start = i;
  }
  const rest = decodeStrict(bytes.subarray(start));
  return rest === null ? null : out + rest;
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level repairs applied before decoding (patterns over binary strings).

// UTF-8 sequences that would be valid if a space were byte 0xA0 (which a code page program turned into a space).
const ALTERED_UTF8 =
  "[\\xc2\\xc3\\xc5\\xce\\xd0\\xd9] |[\\xe2\\xe3] [\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf]|[\\xe0-\\xe3][\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf] " +
  "|\\xf0 [\\x80-\\xbf][\\x80-\\xbf]|\\xf0[\\x80-\\xbf] [\\x80-\\xbf]|\\xf0[\\x80-\\xbf][\\x80-\\xbf] ";
const ALTERED_UTF8_TEST = new RegExp(ALTERED_UTF8);
const ALTERED_UTF8_ALL = new RegExp(ALTERED_UTF8, "g");
// "Ã " standing alone is "à " whose 0xA0 became a space; ftfy keeps the space, except before these Portuguese words.
const A_GRAVE_WORD = /\xc3 (?! |quele|quela|quilo|s )/g;

function restoreByteA0(binary: string): string {
  return binary.replace(A_GRAVE_WORD, "\xc3\xa0 ").replace(ALTERED_UTF8_ALL, (m) => m.replaceAll(" ", "\xa0"));
}

// UTF-8 sequences in which some bytes were lost to U+FFFD (encoded as 0x1A by the sloppy code pages) or '?'.
const LOSSY_UTF8 = new RegExp(
  [
    "[\\xc2-\\xdf]\\x1a",
    "[\\xc2\\xc3]\\?",
    "\\xed[\\xa0-\\xaf][\\x1a?]\\xed[\\xb0-\\xbf][\\x1a?\\x80-\\xbf]",
    "\\xed[\\xa0-\\xaf][\\x1a?\\x80-\\xbf]\\xed[\\xb0-\\xbf][\\x1a?]",
    "[\\xe0-\\xef][\\x1a?][\\x1a\\x80-\\xbf]",
    "[\\xe0-\\xef][\\x1a\\x80-\\xbf][\\x1a?]",
    "[\\xf0-\\xf4][\\x1a?][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf]",
    "[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a?][\\x1a\\x80-\\xbf]",
    "[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf][\\x1a?]",
    "\\x1a",
  ].join("|"),
  "g",
);

function replaceLossySequences(binary: string): string {
  return binary.replace(LOSSY_UTF8, "\xef\xbf\xbd");
}

// ---------------------------------------------------------------------------------------------------------------
// The badness heuristic: a text "is bad" when it contains a character sequence typical of mojibake.

const C = MOJIBAKE_CATEGORIES;
const set = (...parts: ClassPart[]) => charClass(...parts);
const NOT_NEWLINE = "[^\\n]"; // Python's `.`
const PY_WORD = "[\\p{L}\\p{N}_]"; // Python's `\w`: str.isalnum() or '_'

// Each rule is a sequence of classes; the text is bad when any rule matches anywhere.
const BADNESS_RULES: readonly string[] = [
  set(C.c1),
  set(C.bad, C.lower_accented, C.upper_accented, C.box, C.start_punctuation, C.end_punctuation, C.currency, C.numeric, C.law) + set(C.bad),
  "[a-zA-Z]" + set(C.lower_common, C.upper_common) + set(C.bad),
  set(C.bad) + set(C.lower_accented, C.upper_accented, C.box, C.start_punctuation, C.end_punctuation, C.currency, C.numeric, C.law),
  set(C.lower_accented, C.lower_common, C.box, C.end_punctuation, C.currency, C.numeric) + set(C.upper_accented),
  set(C.box, C.end_punctuation, C.currency, C.numeric) + set(C.lower_accented),
  set(C.lower_accented, C.box, C.end_punctuation) + set(C.currency),
  PY_RE_SPACE + set(C.upper_accented) + set(C.currency),
  set(C.upper_accented, C.box) + set(C.numeric, C.law),
  set(C.lower_accented, C.upper_accented, C.box, C.currency, C.end_punctuation) + set(C.start_punctuation) + set(C.numeric),
  set(C.lower_accented, C.upper_accented, C.currency, C.numeric, C.box, C.law) + set(C.end_punctuation) + set(C.start_punctuation),
  set(C.currency, C.numeric, C.box) + set(C.start_punctuation),
  "[a-z]" + set(C.upper_accented) + set(C.start_punctuation, C.currency),
  set(C.box) + set(C.kaomoji),
  set(C.lower_accented, C.upper_accented, C.currency, C.numeric, C.start_punctuation, C.end_punctuation, C.law) + set(C.box),
  set(C.box) + set(C.end_punctuation),
  set(C.lower_accented, C.upper_accented) + set(C.start_punctuation, C.end_punctuation) + PY_WORD,
  // œ not followed by an unaccented Latin letter
  set("Œœ") + "[^A-Za-z]",
  // degree sign after a capital letter
  set(C.upper_accented) + set("°"),
  // frequent two-character windows-1252 mojibake the classes above miss
  set("ÂÃÎÐ") + set("€œŠš¢£Ÿž\xa0\xad®©°·»–—´", C.start_punctuation, C.end_punctuation),
  set("×") + set("²³"),
  // windows-1252 mojibake of Arabic: two pairs in a row, since 'common' characters are involved
  (set("ØÙ") + set(C.common, C.currency, C.bad, C.numeric, C.start_punctuation, "ŸŠ®°µ»")).repeat(2),
  // windows-1252 mojibake opening some South Asian scripts
  set("à") + set("²µ¹¼½¾"),
  // MacRoman mojibake
  set("√") + set("±∂†≠®™´≤≥¥µø"),
  set("≈") + set("°¢"),
  set("‚") + set("Ä") + set("ìîïòôúùû†°¢π"),
  set("‚") + set("âó") + set("àä°ê"),
  // windows-1251 mojibake of U+2000..U+206F, of Latin-1, and of windows-1252 mojibake itself
  set("в") + set("Ђ"),
  set("ВГРС") + set(C.c1, C.bad, C.start_punctuation, C.end_punctuation, C.currency, "°µ") + set("ВГРС"),
  set("Г") + set("ў") + set("В") + set("Ђ") + set("В") + NOT_NEWLINE + "[A-Za-z ]",
  // windows-1252 encodings of à, á and U+00A0 itself
  set("Ã") + set("\xa0¡"),
  "[a-z]" + PY_RE_SPACE + "?" + set("ÃÂ") + " ",
  "^" + set("ÃÂ") + " ",
  // Â before a character it encodes identically
  "[a-z.,?!" + classBody(C.end_punctuation) + "]" + set("Â") + set(" ", C.start_punctuation, C.end_punctuation),
  // windows-1253 mojibake of U+2000..U+206F and of Latin-1 / Greek
  set("β") + set("€") + set("™\xa0Ά\xad®°"),
  set("ΒΓΞΟ") + set(C.c1, C.bad, C.start_punctuation, C.end_punctuation, C.currency, "°") + set("ΒΓΞΟ"),
  // windows-1257 mojibake of U+2000..U+206F
  set("ā") + set("€"),
];

const BADNESS = new RegExp(BADNESS_RULES.join("|"), "u");

/** ftfy.badness.is_bad: whether the text looks like it contains mojibake. */
export function isBad(text: string): boolean {
  return BADNESS.test(text);
}

// Runs of UTF-8 lead characters followed by continuation characters as code pages show them, not preceded by a
// (strict) continuation character, so that a few characters are not fixed inside a bigger garble.
const U = UTF8_CLUES;
const UTF8_RUN =
  `(?<!${set(U.utf8_continuation_strict)})(?:` +
  `${set(U.utf8_first_of_2)}${set(U.utf8_continuation)}` +
  `|${set(U.utf8_first_of_3)}${set(U.utf8_continuation)}{2}` +
  `|${set(U.utf8_first_of_4)}${set(U.utf8_continuation)}{3})+`;
const UTF8_RUN_TEST = new RegExp(UTF8_RUN, "u");
const UTF8_RUN_ALL = new RegExp(UTF8_RUN, "gu");

function decodeInconsistentUtf8(text: string): string {
  return text.replace(UTF8_RUN_ALL, (run) => (run.length < text.length && isBad(run) ? fixEncoding(run) : run));
}

const C1_TEST = /[\x80-\x9f]/;
const C1_ALL = /[\x80-\x9f]/g;

/** C1 controls -> the windows-1252 characters of the same bytes, as browsers do. */
function fixC1Controls(text: string): string {
  return text.replace(C1_ALL, (c) => SLOPPY_1252.high[c.charCodeAt(0) - 0x80]!);
}

/** text.encode("latin-1").decode("windows-1252") (strict), or null where Python raises. */
function latin1AsWindows1252(text: string): string | null {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80 || c >= 0xa0) {
      out += text[i];
    } else if (UNDEFINED_1252.has(c)) {
      return null;
    } else {
      out += SLOPPY_1252.high[c - 0x80];
    }
  }
  return out;
}

/** One step of ftfy's encoding repair (_fix_encoding_one_step_and_explain). */
function fixEncodingStep(text: string): string {
  if (text.length === 0 || isAscii(text) || !isBad(text)) return text;
  const possible: string[] = [];
  for (const page of CODE_PAGES) {
    if (!canEncode(text, page)) continue;
    possible.push(page.name);
    let binary = encode(text, page);
    // MacRoman is skipped: an en dash followed by a space would match.
    if (page.name !== "macroman" && ALTERED_UTF8_TEST.test(binary)) binary = restoreByteA0(binary);
    if (page.name.startsWith("sloppy")) binary = replaceLossySequences(binary);
    const bytes = binaryToBytes(binary);
    const fixed = binary.includes("\xed") || binary.includes("\xc0") ? decodeUtf8Variants(bytes) : decodeStrict(bytes);
    if (fixed !== null) return fixed;
  }
  if (UTF8_RUN_TEST.test(text)) {
    const fixed = decodeInconsistentUtf8(text);
    if (fixed !== text) return fixed;
  }
  // ftfy leaves text alone when it also fits windows-1252, but tests that under a name its list never contains,
  // so Latin-1 text is always tried as windows-1252.
  if (possible.includes("latin-1")) {
    const fixed = latin1AsWindows1252(text);
    if (fixed !== null && fixed !== text) return fixed;
  }
  if (C1_TEST.test(text)) return fixC1Controls(text);
  return text;
}

/** ftfy.fix_encoding. */
export function fixEncoding(text: string): string {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const fixed = fixEncodingStep(text);
    if (fixed === text) break;
    text = fixed;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// The character-level fixers.

const ENTITY = /&#?[0-9A-Za-z]{1,24};/g;
const UPPER: ReadonlyMap<string, string> = new Map(Object.entries(UPPER_ENTITIES));

/** ftfy's unescape_html: only complete references ending in ';', plus some upper-cased names (&EACUTE;). */
export function unescapeHtml(text: string): string {
  return text.replace(ENTITY, (match) => {
    const name = match.slice(1);
    const known = HTML5.get(name) ?? UPPER.get(name);
    if (known !== undefined) return known;
    if (match.startsWith("&#")) {
      const decoded = htmlUnescape(match);
      // a reference html.unescape only partly consumed stays as it was
      return decoded.includes(";") ? match : decoded;
    }
    return match;
  });
}

const LIGATURE_MAP: ReadonlyMap<string, string> = new Map(Object.entries(LIGATURES));
const LIGATURE = new RegExp(charClass([...LIGATURE_MAP.keys()].join("")), "gu");

function fixLatinLigatures(text: string): string {
  return text.replace(LIGATURE, (c) => LIGATURE_MAP.get(c)!);
}

let widthMap: Map<string, string> | undefined;
const WIDE_OR_NARROW = /[\u3000\uff01-\uffef]/g;

/** Full-width and half-width forms -> their usual forms (their NFKC), ideographic space -> space. */
function fixCharacterWidth(text: string): string {
  if (widthMap === undefined) {
    widthMap = new Map([["\u3000", " "]]);
    for (let cp = 0xff01; cp < 0xfff0; cp++) {
      const c = String.fromCharCode(cp);
      const usual = c.normalize("NFKC");
      if (usual !== c) widthMap.set(c, usual);
    }
  }
  const map = widthMap;
  return text.replace(WIDE_OR_NARROW, (c) => map.get(c) ?? c);
}

function uncurlQuotes(text: string): string {
  return text.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'");
}

function fixLineBreaks(text: string): string {
  return text
    .replaceAll("\r\n", "\n")
    .replaceAll("\r", "\n")
    .replaceAll("\u2028", "\n")
    .replaceAll("\u2029", "\n")
    .replaceAll("\u0085", "\n");
}

/** Lone surrogates -> U+FFFD. (Paired ones already form one code point in a JavaScript string.) */
function fixSurrogates(text: string): string {
  return text.replace(/\p{Cs}/gu, "\ufffd");
}

// Python's \d is any decimal digit (Nd).
const TERMINAL_ESCAPE = /\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu;

function removeTerminalEscapes(text: string): string {
  return text.replace(TERMINAL_ESCAPE, "");
}

const CONTROL = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

function removeControlChars(text: string): string {
  return text.replace(CONTROL, "");
}

/** ftfy's fix_and_explain on one segment (one line), without the explanation. */
function fixSegment(text: string, unescape: boolean): string {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const original = text;
    if (unescape) text = unescapeHtml(text);
    text = fixEncoding(text);
    text = fixC1Controls(text);
    text = fixLatinLigatures(text);
    text = fixCharacterWidth(text);
    text = uncurlQuotes(text);
    text = fixLineBreaks(text);
    text = fixSurrogates(text);
    text = removeTerminalEscapes(text);
    text = removeControlChars(text);
    text = text.normalize("NFC");
    if (text === original) break;
  }
  return text;
}

/** End of a segment starting at `start`: at most MAX_SEGMENT code points, not past `end`. */
function segmentEnd(text: string, start: number, end: number): number {
  if (end - start <= MAX_SEGMENT) return end;
  let i = start;
  for (let count = 0; count < MAX_SEGMENT && i < end; count++) {
    const c = text.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < end && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
  }
  return i;
}

/** ftfy.fix_text(text) with the default configuration. */
export function fixText(text: string): string {
  const out: string[] = [];
  // Entities are left alone from the first line that contains '<' on: that looks like real HTML.
  let unescape = true;
  let pos = 0;
  while (pos < text.length) {
    const newline = text.indexOf("\n", pos);
    const end = segmentEnd(text, pos, newline < 0 ? text.length : newline + 1);
    const segment = text.slice(pos, end);
    if (unescape && segment.includes("<")) unescape = false;
    out.push(fixSegment(segment, unescape));
    pos = end;
  }
  return out.join("");
}
