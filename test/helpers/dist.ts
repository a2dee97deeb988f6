// Tests that run compiled files (the CLI as a program, worker scripts) need dist/ to be as new as the sources.
// A clean clone has it from npm ci (prepare); while developing, a stale dist/ is rebuilt here, as build:ts does.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect } from "vitest";

const root = process.cwd();
export const CLI_MAIN = resolve(root, "dist/src/cli/main.js");

/** Rebuilds dist/ when a .ts file of `dirs` is newer than `built` (default the CLI), then checks it is there. */
export function ensureBuilt(dirs: readonly string[], built = CLI_MAIN): void {
  const sources = dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith(".ts")).map((f) => join(d, f)));
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (!existsSync(built) || statSync(built).mtimeMs < newest) {
    spawnSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: root, stdio: "ignore" }); // emits despite others' type errors
    if (existsSync(CLI_MAIN)) chmodSync(CLI_MAIN, 0o755); // as build:ts leaves it (test/package.test.ts checks the bin)
  }
  expect(existsSync(built), `${built} was not built (npm run build:ts)`).toBe(true);
}
