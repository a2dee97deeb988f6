// `npm run bench:index` (or `npm run bench -- --index`): images/s of indexing's pipeline for full-size ViT-B/32 and
// RN50 (seeded random weights) at each encoder thread count, in three rows:
//   (a) encode only: pixels decoded beforehand, straight into encodeImage in batches — the ceiling;
//   (b) the decode pool (src/collection/decode_pool.ts) reading, hashing and decoding the files while the main
//       thread encodes the previous batch — what `clip-ts index` runs;
//   (c) a plain loop over the embed-image CLI, one process per file (each reloads the model).
// Inputs: the PNG/JPEG files of --photos DIR (default /tmp/photos/set when it exists), else generated 1024x768
// JPEGs and PNGs. Not a test.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { loadModel } from "../src/clip.js";
import { createDecodePool, defaultDecodeThreads, type InputItem } from "../src/collection/decode_pool.js";
import { fileItem } from "../src/collection/inputs.js";
import { preprocess } from "../src/image/index.js";
import { readNpyFloat32 } from "../src/npy.js";
import { loadFiles } from "./load.js";
import { CACHE_DIR, loadSpec, MODEL_IDS, present, ROOT } from "./models.js";
import { encodeJpeg, encodePng, photoLike } from "./synth_images.js";

const USAGE = `usage: npm run bench:index -- [options]   (or npm run bench -- --index [options])
  --model rn50,vit-b-32   models (default: both)
  --threads 1,2           encoder (wasm backend) thread counts (default: 1,2)
  --decode-threads N      decode pool threads (default: defaultDecodeThreads(encoder threads): 1 on 2 cores)
  --nice N                niceness of the decode threads (default: the pool's, 0; e.g. 10 to let them yield)
  --batch N               images per encodeImage call, as the indexer batches (default 8)
  --photos DIR            the PNG/JPEG files to index (default /tmp/photos/set when it exists, else 12 generated
                          1024x768 images, 9 JPEG and 3 PNG, written once to the bench cache)
  --generated             the generated images even when /tmp/photos/set exists
  --images N              images per row, cycling through the files (default: every file once, at least 2 batches)
  --rounds N              rows (a) and (b) alternate N times, in turn first, over the same images (default 2)
  --cli-files N           files for row (c), one embed-image process each (default 3; 0: no row c)
  --quick                 --rounds 1 --cli-files 2 --images 24
  --json FILE             also write the results as JSON`;

interface Options {
  models: string[];
  threads: number[];
  decodeThreads?: number;
  nice?: number;
  batch: number;
  photos?: string;
  generated?: boolean;
  images?: number;
  rounds: number;
  cliFiles: number;
  json?: string;
}

function ints(value: string, flag: string, lo: number, hi: number): number[] {
  const items = value.split(",").map(Number);
  if (!items.every((n) => Number.isInteger(n) && n >= lo && n <= hi)) throw new Error(`${flag}: expected integers in [${lo}, ${hi}], got "${value}"`);
  return items;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { models: ["vit-b-32", "rn50"], threads: [1, 2], batch: 8, rounds: 2, cliFiles: 3 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--model":
        o.models = value().split(",");
        for (const m of o.models) if (!MODEL_IDS[m]) throw new Error(`--model: "${m}" is not one of ${Object.keys(MODEL_IDS).join(", ")}`);
        break;
      case "--threads": o.threads = ints(value(), flag, 1, 64); break;
      case "--decode-threads": [o.decodeThreads] = ints(value(), flag, 1, 64); break;
      case "--nice": [o.nice] = ints(value(), flag, 0, 19); break;
      case "--batch": [o.batch] = ints(value(), flag, 1, 1024); break;
      case "--photos": o.photos = resolve(value()); break;
      case "--generated": o.generated = true; break;
      case "--images": [o.images] = ints(value(), flag, 1, 1_000_000); break;
      case "--rounds": [o.rounds] = ints(value(), flag, 1, 100); break;
      case "--cli-files": [o.cliFiles] = ints(value(), flag, 0, 1000); break;
      case "--quick": o.rounds = 1; o.cliFiles = 2; o.images ??= 24; break;
      case "--json": o.json = value(); break;
      case "--help": case "-h": console.log(USAGE); process.exit(0); break;
      default: throw new Error(`unknown option "${flag}"\n${USAGE}`);
    }
  }
  return o;
}

const say = (s: string) => process.stderr.write(s + "\n");

/** The files to index and where they came from. */
export function inputFiles(o: Pick<Options, "photos" | "generated">): { files: string[]; source: string } {
  const dir = o.photos ?? (!o.generated && existsSync("/tmp/photos/set") ? "/tmp/photos/set" : undefined);
  if (dir) {
    const files = readdirSync(dir).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().map((f) => join(dir, f));
    if (!files.length) throw new Error(`--photos: no PNG or JPEG files in ${dir}`);
    return { files, source: dir };
  }
  const out = join(CACHE_DIR, "..", "index_bench");
  const files = Array.from({ length: 12 }, (_, i) => join(out, `synth_${String(i).padStart(2, "0")}.${i % 4 === 3 ? "png" : "jpg"}`));
  if (!files.every(present)) {
    say(`writing 12 generated 1024x768 images to ${out}…`);
    mkdirSync(out, { recursive: true });
    files.forEach((f, i) => {
      const rgb = photoLike(1024, 768, 100 + i);
      writeFileSync(f, f.endsWith(".png") ? encodePng(rgb, 1024, 768) : encodeJpeg(rgb, 1024, 768));
    });
  }
  return { files, source: `${files.length} generated 1024x768 images (9 JPEG q85 4:2:0, 3 PNG) in ${out}` };
}

function weightsFile(model: string): string {
  const spec = loadSpec(model);
  if (present(spec.files.weights)) return spec.files.weights; // tools/onnx/export_onnx.py's
  // written by a child, as bench --load does: making them takes GBs this process would then keep as its peak
  const made = spawnSync(process.execPath, [join(ROOT, "dist", "bench", "bench.js"), "--load-files", model], { stdio: "inherit" });
  if (made.status !== 0) throw new Error(`${spec.name}: writing the weights files failed`);
  return loadFiles(model, say)["fp32 safetensors"]!;
}

interface Row {
  model: string;
  threads: number;
  decodeThreads: number;
  images: number;
  encodeOnly: number; // images/s
  pipeline: number;
  ratio: number;
  /** of (b)'s time, the share the encoder waited for the decode pool */
  waitedShare: number;
  cli?: number;
  cliFiles?: number;
  sameBits: { pipeline: boolean; cli?: boolean };
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

export async function indexBench(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const { files: all, source } = inputFiles(o);
  const rows: Row[] = [];
  const main = join(ROOT, "dist", "src", "cli", "main.js");
  const tmp = mkdtempSync(join(tmpdir(), "clip-ts-index-bench-"));
  let decodeMs = 0;
  try {
    for (const model of o.models) {
      const spec = loadSpec(model);
      const R = spec.config.image_resolution;
      const weights = weightsFile(model);
      // (a)'s pixels, decoded once in process; files that do not decode are left out of every row
      const pixels = new Map<string, Float32Array>();
      const t0 = performance.now();
      for (const f of all) {
        try {
          pixels.set(f, preprocess(readFileSync(f), { size: R }).data);
        } catch (e) {
          say(`left out: ${f}: ${(e as Error).message}`);
        }
      }
      decodeMs = (performance.now() - t0) / all.length;
      const files = all.filter((f) => pixels.has(f));
      const n = Math.max(o.images ?? files.length, 2 * o.batch);
      const seq = Array.from({ length: n }, (_, i) => files[i % files.length]);
      const per = 3 * R * R;
      for (const threads of o.threads) {
        const decodeThreads = o.decodeThreads ?? defaultDecodeThreads(threads);
        say(`${spec.name}, ${threads} thread(s), decode threads ${decodeThreads}: loading…`);
        const clip = await loadModel(weights, { backend: "wasm", threads, towers: "image" });
        const E = spec.config.embed_dim;
        const features = { a: new Float32Array(n * E), b: new Float32Array(n * E) };
        const batchOf = (xs: Float32Array[]) => {
          const data = new Float32Array(xs.length * per);
          xs.forEach((x, i) => data.set(x, i * per));
          return { data, shape: [xs.length, 3, R, R] };
        };
        clip.encodeImage(batchOf(seq.slice(0, o.batch).map((f) => pixels.get(f)!))); // warm-up
        const encodeOnly = () => {
          const t = performance.now();
          for (let s = 0; s < n; s += o.batch) {
            const out = clip.encodeImage(batchOf(seq.slice(s, s + o.batch).map((f) => pixels.get(f)!)));
            features.a.set(out.data, s * E);
          }
          return performance.now() - t;
        };
        const pool = createDecodePool({ threads: decodeThreads, resolution: R, nice: o.nice });
        const items: InputItem[] = seq.map((f) => fileItem(f, f, statSync(f))); // as clip-ts index reads them
        for await (const d of pool.decode(items.slice(0, o.batch))) void d; // the workers started and warm
        const pipelined = async () => {
          let waited = 0, s = 0;
          const t = performance.now();
          const it = pool.decode(items)[Symbol.asyncIterator]();
          for (;;) {
            const batch: Float32Array[] = [];
            const w = performance.now();
            while (batch.length < o.batch) {
              const r = await it.next();
              if (r.done) break;
              if (!r.value.pixels) throw new Error(`${r.value.key}: ${r.value.error}`);
              batch.push(r.value.pixels);
            }
            waited += performance.now() - w;
            if (!batch.length) break;
            features.b.set(clip.encodeImage(batchOf(batch)).data, s * E);
            s += batch.length;
          }
          return { ms: performance.now() - t, waited };
        };
        let aMs = 0, bMs = 0, waited = 0;
        for (let r = 0; r < o.rounds; r++) {
          const order = r % 2 === 0 ? ["a", "b"] : ["b", "a"];
          for (const row of order) {
            if (row === "a") aMs += encodeOnly();
            else {
              const p = await pipelined();
              bMs += p.ms;
              waited += p.waited;
            }
          }
        }
        await pool.close();
        clip.dispose();
        const row: Row = {
          model: spec.name, threads, decodeThreads, images: n,
          encodeOnly: (n * o.rounds) / (aMs / 1000), pipeline: (n * o.rounds) / (bMs / 1000), ratio: aMs / bMs,
          waitedShare: waited / bMs, sameBits: { pipeline: same(features.a, features.b) },
        };
        if (o.cliFiles > 0) {
          const k = Math.min(o.cliFiles, files.length);
          let ms = 0, bits = true;
          for (let i = 0; i < k; i++) {
            const out = join(tmp, `e${i}.npy`);
            const t = performance.now();
            const r = spawnSync(process.execPath, [main, "embed-image", seq[i], "--model", weights, "--backend", "wasm", "--threads", String(threads), "--out", out], { encoding: "utf8" });
            ms += performance.now() - t;
            if (r.status !== 0) throw new Error(`embed-image ${seq[i]}: ${r.stderr.trim()}`);
            bits &&= same(readNpyFloat32(readFileSync(out)).data, features.a.subarray(i * E, (i + 1) * E));
          }
          row.cli = k / (ms / 1000);
          row.cliFiles = k;
          row.sameBits.cli = bits;
        }
        rows.push(row);
        say(`  (a) ${row.encodeOnly.toFixed(2)}/s  (b) ${row.pipeline.toFixed(2)}/s  (b)/(a) ${row.ratio.toFixed(3)}  (c) ${row.cli?.toFixed(3) ?? "–"}/s`);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const f = (x: number) => x.toFixed(x < 1 ? 3 : 2);
  const lines = [
    `Inputs: ${source}; batch ${o.batch}; decode threads at nice ${o.nice ?? 0}; ${o.rounds} round(s) of (a) and (b) alternating; decode alone (one thread, in process): ${decodeMs.toFixed(1)} ms per image.`,
    "",
    "| model | threads | decode threads | (a) encode only, img/s | (b) decode pool + encode, img/s | (b)/(a) | encoder waited on decode | (c) embed-image per file, img/s |",
    "|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => `| ${r.model} | ${r.threads} | ${r.decodeThreads} | ${f(r.encodeOnly)} | ${f(r.pipeline)} | ${r.ratio.toFixed(3)} | ${(100 * r.waitedShare).toFixed(1)}% | ${r.cli === undefined ? "–" : `${f(r.cli)} (${r.cliFiles} files)`} |`),
    "",
    `Same bits: (b) = (a) in every row: ${rows.every((r) => r.sameBits.pipeline) ? "yes" : "NO"}` +
      (rows.some((r) => r.cli !== undefined) ? `; (c) embed-image (batch 1) = (a) (batch ${o.batch}): ${rows.every((r) => r.sameBits.cli !== false) ? "yes" : "NO"}` : ""),
  ];
  console.log(lines.join("\n"));
  if (o.json) writeFileSync(o.json, JSON.stringify({ date: new Date().toISOString(), options: o, source, decodeMsPerImage: decodeMs, rows }, null, 1));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await indexBench(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 1;
  }
}
