// Seed files come from the repository's own fixtures and goldens, found from the project root.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface SeedFile {
  name: string;
  bytes: Uint8Array;
}

/** The directory holding clip-ts's package.json, whether this runs from fuzz/ or from dist/fuzz/. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "clip-ts") return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("fuzz: cannot find the clip-ts project root");
    dir = up;
  }
}

/** Files of a project directory whose names match, smallest first; throws if there are none (a seed set must exist). */
export function seedFiles(dir: string, match: RegExp, maxBytes = Infinity): SeedFile[] {
  const abs = join(projectRoot(), dir);
  const out = readdirSync(abs)
    .filter((n) => match.test(n))
    .map((n) => ({ name: `${dir}/${n}`, bytes: new Uint8Array(readFileSync(join(abs, n))) }))
    .filter((s) => s.bytes.length <= maxBytes)
    .sort((a, b) => a.bytes.length - b.bytes.length);
  if (out.length === 0) throw new Error(`fuzz: no seed files matching ${match} in ${dir}`);
  return out;
}

/** A seed chosen with small files favoured: parsing cost per case stays low while the large seeds still appear. */
export function pickSeed<T extends { bytes: Uint8Array }>(rng: { int(n: number): number; chance(p: number): boolean }, seeds: readonly T[]): T {
  const small = seeds.filter((s) => s.bytes.length <= 64 * 1024);
  if (small.length > 0 && small.length < seeds.length && rng.chance(0.85)) return small[rng.int(small.length)]!;
  return seeds[rng.int(seeds.length)]!;
}
