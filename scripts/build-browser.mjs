// Bundles src/browser.ts into dist/browser/clip-ts.js (ESM, for browsers). The Node-only modules (file reading,
// the Node wasm platform) are reached only through dynamic imports that a browser never takes; they become stubs
// that throw, and the dynamic `import("node:…")` calls of src/clip.ts stay as they are, never run. The build fails
// if any node: import is left at the top level of the bundle.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const outfile = `${root}dist/browser/clip-ts.js`;

/** Modules with static node: imports, each behind a dynamic import of a Node-only code path. */
const NODE_ONLY = /[\\/]src[\\/](weights[\\/]file|backend[\\/]node_wasm|text[\\/]node_files|image[\\/]node|checkpoint|hub)\.(js|ts)$/;

const nodeOnlyStubs = {
  name: "node-only-stubs",
  setup(b) {
    b.onLoad({ filter: NODE_ONLY }, (args) => ({
      loader: "js",
      contents: `throw new Error(${JSON.stringify(
        `clip-ts: ${args.path.replace(/.*[\\/]src[\\/]/, "src/")} is Node-only; in a browser pass bytes or URLs ` +
          "(loadInBrowser, createBrowserBackend) instead of file paths",
      )});`,
    }));
  },
};

await build({
  entryPoints: [`${root}src/browser.ts`],
  outfile,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  external: ["node:*"],
  plugins: [nodeOnlyStubs],
  logLevel: "warning",
});

// Static imports hoisted to the top of an ESM bundle look like `import … from "node:…"`; a dynamic import() is fine.
const code = readFileSync(outfile, "utf8");
const staticNode = code.match(/^\s*(import|export)\b[^;]*?from\s*["']node:[^"']+["']/m) ?? code.match(/^\s*import\s*["']node:/m);
if (staticNode) {
  console.error(`build-browser: ${outfile} has a top-level node: import: ${staticNode[0]}`);
  process.exit(1);
}
console.log(`build-browser: ${outfile} (${(code.length / 1024).toFixed(0)} KiB, no top-level node: import)`);
