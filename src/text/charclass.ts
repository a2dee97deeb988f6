// Regex character classes and membership tests built from explicit code point tables, so that matching does not
// depend on the Unicode version of the JavaScript engine (the tables come from the Python the reference runs).

import { PY_WHITESPACE, REGEX_WHITESPACE } from "./unicode_tables.js";

/** A part of a character class: flat [first, last, first, last, ...] code point ranges, or literal characters. */
export type ClassPart = readonly number[] | string;

function escapeCodePoint(cp: number): string {
  return `\\u{${cp.toString(16)}}`;
}

/** The body (without brackets) of a character class for a RegExp with the `u` flag. */
export function classBody(...parts: ClassPart[]): string {
  let body = "";
  for (const part of parts) {
    if (typeof part === "string") {
      for (const ch of part) body += escapeCodePoint(ch.codePointAt(0)!);
      continue;
    }
    for (let i = 0; i < part.length; i += 2) {
      const first = part[i]!;
      const last = part[i + 1]!;
      body += first === last ? escapeCodePoint(first) : `${escapeCodePoint(first)}-${escapeCodePoint(last)}`;
    }
  }
  return body;
}

/** `[...]` for a RegExp with the `u` flag. */
export function charClass(...parts: ClassPart[]): string {
  return `[${classBody(...parts)}]`;
}

/** Flat ranges of single code points. */
export function pointsToRanges(points: readonly number[]): number[] {
  return points.flatMap((cp) => [cp, cp]);
}

// All of Python's whitespace is in the BMP, so code units suffice.
const PY_SPACE = new Uint8Array(Math.max(...PY_WHITESPACE) + 1);
for (const cp of PY_WHITESPACE) PY_SPACE[cp] = 1;

/** Python's str.isspace() for one code unit. */
function isPySpace(c: number): boolean {
  return c < PY_SPACE.length && PY_SPACE[c] === 1;
}

/** Python's str.strip() without arguments. */
export function pyStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isPySpace(text.charCodeAt(start))) start++;
  while (end > start && isPySpace(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

/** `\s` of Python's `re` module (str.isspace), as a class. */
export const PY_RE_SPACE = charClass(pointsToRanges(PY_WHITESPACE));

/** `\s` of the `regex` module, as a class. */
export const REGEX_SPACE = charClass(pointsToRanges(REGEX_WHITESPACE));

/** Python's str.split() without arguments. */
export function pySplit(text: string): string[] {
  const parts: string[] = [];
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const space = i === text.length || isPySpace(text.charCodeAt(i));
    if (space && start >= 0) {
      parts.push(text.slice(start, i));
      start = -1;
    } else if (!space && start < 0) {
      start = i;
    }
  }
  return parts;
}
