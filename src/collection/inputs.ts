// The inputs of `clip-ts index`: directories (recursive), files, globs and WebDataset .tar shards, turned into one
// sorted list of items. Only names and stat()s are read here; the bytes are read by the decoder, item by item.
import { closeSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync, type Stats } from "node:fs";
import { basename, isAbsolute, join, relative, resolve, sep } from "node:path";
import { comparePaths } from "./db.js";
import { listTar, readTarEntry, type TarLimits } from "./tar.js";

export interface InputItem {
  /** What the collection stores as `path`: an absolute file path, or `${absoluteTarPath}#${memberName}`. */
  key: string;
  /** The path relative to the input argument it came from (a file argument: its basename; a tar member:
   *  `${tar's rel}#${memberName}`), with "/" separators: what `--shard` chooses by. */
  rel: string;
  size: number;
  mtimeMs: number;
  /** The file's (or member's) bytes. */
  read(): Promise<Uint8Array>;
  /** Its first `n` bytes at most, to tell an image from other files without reading them whole. */
  head?(n: number): Promise<Uint8Array>;
}

export interface InputProblem {
  path: string;
  message: string;
}

export interface EnumerateOptions {
  /** Relative inputs resolve against this (default process.cwd()). */
  cwd?: string;
  /** Absolute paths never listed: the collection's own files when it lies among the inputs. */
  exclude?: ReadonlySet<string>;
  tarLimits?: TarLimits;
}

const GLOB = /[*?[]/;
const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0];

/**
 * Every item of the inputs, sorted by key (UTF-8 bytes), each once. An input that does not exist, or a glob that
 * matches nothing, throws (a mistyped or unmounted folder must not look like a collection emptied); a directory or
 * tar that cannot be read is a problem of its own, listed, and the rest goes on.
 */
export function enumerateInputs(inputs: readonly string[], options: EnumerateOptions = {}): { items: InputItem[]; problems: InputProblem[] } {
  const cwd = options.cwd ?? process.cwd();
  const items = new Map<string, InputItem>();
  const problems: InputProblem[] = [];
  const visited = new Set<string>(); // real paths of the directories walked: symbolic-link loops end here
  const exclude = options.exclude ?? new Set<string>();

  const addFile = (path: string, rel: string, st: Stats) => {
    if (exclude.has(path) || items.has(path)) return;
    if (/\.tar$/i.test(path)) return addTar(path, rel);
    items.set(path, fileItem(path, rel, st));
  };
  const addTar = (path: string, rel: string) => {
    let entries;
    try {
      entries = listTar(path, options.tarLimits);
    } catch (e) {
      problems.push({ path, message: oneLine(e) });
      return;
    }
    for (const entry of entries) {
      const key = `${path}#${entry.name}`;
      if (items.has(key)) continue;
      items.set(key, {
        key, rel: `${rel}#${entry.name}`, size: entry.size, mtimeMs: entry.mtimeMs,
        read: async () => readTarEntry(path, entry),
        head: async (n) => readAt(path, entry.offset, Math.min(n, entry.size)),
      });
    }
  };
  const walk = (dir: string, base: string) => {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch (e) {
      problems.push({ path: dir, message: oneLine(e) });
      return;
    }
    if (visited.has(real)) return;
    visited.add(real);
    let names: string[];
    try {
      names = readdirSync(dir).sort(comparePaths);
    } catch (e) {
      problems.push({ path: dir, message: `cannot list the directory (${oneLine(e)})` });
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      let st: Stats;
      try {
        st = statSync(path); // follows links: a linked folder is walked, a dangling link reported
      } catch (e) {
        problems.push({ path, message: oneLine(e) });
        continue;
      }
      if (st.isDirectory()) walk(path, base);
      else if (st.isFile()) addFile(path, toRel(relative(base, path)), st);
    }
  };
  const add = (path: string, base: string | undefined) => {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) throw new Error(`no such file or directory "${path}"`);
    if (st.isDirectory()) walk(path, base ?? path);
    else if (st.isFile()) addFile(path, base === undefined ? basename(path) : toRel(relative(base, path)), st);
    else throw new Error(`"${path}" is neither a file nor a directory`);
  };

  for (const input of inputs) {
    if (typeof input !== "string" || input === "" || input.includes("\0")) throw new Error(`an input must be a non-empty path, got ${JSON.stringify(input)}`);
    const abs = resolve(cwd, input);
    if (GLOB.test(input) && !statSync(abs, { throwIfNoEntry: false })) {
      const { base, matches } = glob(abs);
      if (!matches.length) throw new Error(`"${input}" matches no file`);
      for (const m of matches) add(m, base);
    } else {
      add(abs, undefined);
    }
  }
  return { items: [...items.values()].sort((a, b) => comparePaths(a.key, b.key)), problems };
}

/** A file as an item. */
export function fileItem(path: string, rel: string, st: Stats): InputItem {
  return {
    key: path, rel, size: st.size, mtimeMs: st.mtimeMs,
    // Read synchronously (~1 ms a photo): the encoder blocks this thread for seconds at a time, and an
    // asynchronous read would only complete in the gaps, so the decode workers would run dry during each batch;
    // a synchronous one lets the pool post the window ahead within the gap's microtasks.
    read: async () => {
      const b = readFileSync(path);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
    head: async (n) => readAt(path, 0, n),
  };
}

function readAt(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, out, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return out.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

const toRel = (p: string) => (sep === "/" ? p : p.split(sep).join("/"));

/**
 * The paths an absolute glob matches, sorted, and its base (the folder before the first wildcard, which relative
 * paths are taken from). `*`, `?` and `[…]` match within one name and not a leading dot; `**` any folders.
 */
export function glob(pattern: string): { base: string; matches: string[] } {
  if (!isAbsolute(pattern)) throw new Error(`glob needs an absolute pattern, got "${pattern}"`);
  const parts = pattern.split(sep);
  const first = parts.findIndex((p) => GLOB.test(p));
  const base = parts.slice(0, first).join(sep) || sep;
  const segments = parts.slice(first).filter((p) => p !== "");
  const matches = new Set<string>();
  const seen = new Set<string>();
  const step = (dir: string, i: number): void => {
    if (i === segments.length) {
      matches.add(dir);
      return;
    }
    const seg = segments[i]!;
    if (seg === "**") {
      step(dir, i + 1);
      let real: string;
      try {
        real = realpathSync(dir);
      } catch {
        return;
      }
      if (seen.has(`${real}\0${i}`)) return;
      seen.add(`${real}\0${i}`);
      for (const name of list(dir)) {
        if (name.startsWith(".")) continue;
        const p = join(dir, name);
        if (statSync(p, { throwIfNoEntry: false })?.isDirectory()) step(p, i);
      }
      return;
    }
    if (!GLOB.test(seg)) {
      const p = join(dir, seg);
      if (statSync(p, { throwIfNoEntry: false })) step(p, i + 1);
      return;
    }
    const re = segmentRegExp(seg);
    for (const name of list(dir)) if (re.test(name)) step(join(dir, name), i + 1);
  };
  step(base, 0);
  return { base, matches: [...matches].sort(comparePaths) };
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort(comparePaths);
  } catch {
    return [];
  }
}

function segmentRegExp(seg: string): RegExp {
  let re = seg.startsWith(".") ? "" : "(?!\\.)";
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = seg.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        const body = seg.slice(i + 1, end).replace(/\\/g, "\\\\");
        re += `[${body.startsWith("!") ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}
