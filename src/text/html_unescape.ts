// Python's html.unescape: HTML5 named references (also the legacy ones without ';', matched as the longest known
// prefix), decimal and hexadecimal references with the HTML5 fix-ups for invalid code points.

import { HTML5_ENTITIES, PY_INVALID_CHARREFS, PY_INVALID_CODEPOINTS } from "./html5_entities.js";

/** Entity name (with or without ';') -> text. A Map, so that names like "constructor" never hit Object.prototype. */
export const HTML5: ReadonlyMap<string, string> = new Map(Object.entries(HTML5_ENTITIES));

const INVALID_CHARREFS: ReadonlyMap<number, string> = new Map(
  Object.entries(PY_INVALID_CHARREFS).map(([k, v]) => [Number(k), v]),
);
const INVALID_CODEPOINTS: ReadonlySet<number> = new Set(PY_INVALID_CODEPOINTS);

// `u` makes {1,32} count code points, as Python does.
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** The value of a run of ASCII digits, or Infinity when it exceeds every code point (Python has big integers). */
function parseDigits(digits: string, radix: 10 | 16): number {
  const significant = digits.replace(/^0+/, "");
  return significant.length > (radix === 16 ? 6 : 7) ? Infinity : significant === "" ? 0 : parseInt(significant, radix);
}

function numericReference(ref: string): string {
  const hex = ref[1] === "x" || ref[1] === "X";
  const digits = ref.slice(hex ? 2 : 1).replace(/;$/, "");
  const cp = parseDigits(digits, hex ? 16 : 10);
  const fixed = INVALID_CHARREFS.get(cp);
  if (fixed !== undefined) return fixed;
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return "\ufffd";
  if (INVALID_CODEPOINTS.has(cp)) return "";
  return String.fromCodePoint(cp);
}

function namedReference(ref: string): string {
  const exact = HTML5.get(ref);
  if (exact !== undefined) return exact;
  for (let length = ref.length - 1; length > 1; length--) {
    const prefix = HTML5.get(ref.slice(0, length));
    if (prefix !== undefined) return prefix + ref.slice(length);
  }
  return "&" + ref;
}

/** html.unescape(text) of Python 3. */
export function htmlUnescape(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(CHARREF, (_match, ref: string) => (ref[0] === "#" ? numericReference(ref) : namedReference(ref)));
}
