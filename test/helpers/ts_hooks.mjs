// Module hooks for a child Node process that runs the TypeScript sources as they are (Node 20 strips no types):
// a ".js" import from a ".ts" module means the ".ts" file beside it, and ".ts" files are transpiled by the
// project's own typescript. Registered by ts_register.mjs: `node --import ./test/helpers/ts_register.mjs …`.
import { existsSync, readFileSync } from "node:fs";
import ts from "typescript";

export async function resolve(specifier, context, next) {
  if (specifier.endsWith(".js") && context.parentURL?.endsWith(".ts")) {
    const url = new URL(`${specifier.slice(0, -3)}.ts`, context.parentURL);
    if (existsSync(url)) return { url: url.href, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith(".ts")) return next(url, context);
  const compilerOptions = { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 };
  return { format: "module", source: ts.transpileModule(readFileSync(new URL(url), "utf8"), { compilerOptions }).outputText, shortCircuit: true };
}
