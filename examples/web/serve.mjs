// A static server for the demo page (and the browser test) on 127.0.0.1. It sends the two headers that make the
// page cross-origin isolated (COOP: same-origin, COEP: require-corp), without which a browser will not share wasm
// memory with workers, so clip-ts could use only one thread. Serves only the folders the page needs.
//
//   node examples/web/serve.mjs [port]        → http://127.0.0.1:8080/examples/web/
//   node examples/web/serve.mjs [port] --mirror DIR
//       also serves DIR under /mirror/: a local mirror of the named models, laid out as their published paths
//       (DIR/clip/models/<sha256>/ViT-B-32.pt); open the page with ?baseUrl=http://127.0.0.1:8080/mirror
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SERVED = ["examples/", "dist/browser/", "build/", "weights/"];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".json": "application/json",
  ".css": "text/css; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gz": "application/gzip", // served as is: the tokenizer gunzips it itself
  ".txt": "text/plain; charset=utf-8",
};

const ISOLATION = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

async function handle(req, res, isolation, mirror) {
  const send = (status, body, headers = {}) => {
    res.writeHead(status, { ...isolation, "Content-Type": "text/plain; charset=utf-8", ...headers });
    res.end(body);
  };
  if (req.method !== "GET" && req.method !== "HEAD") return send(405, "method not allowed\n", { Allow: "GET, HEAD" });
  let path;
  try {
    path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  } catch {
    return send(400, "bad path\n");
  }
  if (path === "/" || path === "/examples/web") return send(302, "", { Location: "/examples/web/" });
  if (path.endsWith("/")) path += "index.html";
  const rel = path.slice(1);
  const inMirror = mirror !== undefined && rel.startsWith("mirror/");
  const base = inMirror ? mirror : ROOT;
  const file = resolve(base, inMirror ? rel.slice("mirror/".length) : rel);
  if (!file.startsWith(base) || rel.includes("\0") || !(inMirror || SERVED.some((d) => rel.startsWith(d))) || rel.split("/").includes("..")) {
    return send(404, "not found\n");
  }
  let info;
  try {
    info = await stat(file);
  } catch {
    return send(404, "not found\n");
  }
  if (!info.isFile()) return send(404, "not found\n");
  res.writeHead(200, {
    ...isolation,
    "Content-Type": TYPES[extname(file).toLowerCase()] ?? "application/octet-stream",
    "Content-Length": info.size,
    "Cache-Control": "no-store",
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(file).on("error", () => res.destroy()).pipe(res);
}

/**
 * Starts the server; port 0 picks a free one. `isolate: false` leaves out the isolation headers (to see the page
 * fall back to one thread); `mirror`: a folder served under /mirror/. Resolves to its base URL and a close().
 */
export function serve({ port = 8080, host = "127.0.0.1", isolate = true, mirror } = {}) {
  const isolation = isolate ? ISOLATION : {};
  const mirrorDir = mirror === undefined ? undefined : resolve(mirror) + sep;
  const server = createServer((req, res) => {
    handle(req, res, isolation, mirrorDir).catch(() => res.destroy());
  });
  return new Promise((resolveStart, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const { port: p } = server.address();
      resolveStart({
        url: `http://${host}:${p}/`,
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const m = args.indexOf("--mirror");
  const mirror = m >= 0 ? args.splice(m, 2)[1] : undefined;
  if (m >= 0 && !mirror) throw new Error("--mirror needs a folder");
  const port = Number(args[0] ?? process.env.PORT ?? 8080);
  const { url } = await serve({ port, mirror });
  console.log(`clip-ts demo: ${url}examples/web/  (Ctrl-C to stop; run "npm run build" first)`);
  if (mirror) console.log(`models mirrored from ${mirror}: ${url}examples/web/?baseUrl=${url}mirror`);
}
