// The approximate index (src/collection/ivf.ts) against exact search: recall@10 and latency at 10k / 100k / 1M rows
// of synthetic CLIP-like embeddings (test/helpers/clustered_rows.ts: a mixture of 2000 clusters in a cone, made
// deterministically), and the index's build time. A program, not a test: CI never runs it.
//   npm run build:ts && nice -n 10 node dist/bench/db/ivf_bench.js [--sizes 10000,100000,1000000] [--dir /tmp] [--flat]
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CollectionDb } from "../../src/collection/db.js";
import { defaultNprobe } from "../../src/collection/ivf.js";
import { ClusteredData } from "../../test/helpers/clustered_rows.js";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sizes = arg("--sizes", "10000,100000,1000000").split(",").map(Number);
const dir = mkdtempSync(join(arg("--dir", tmpdir()), "ivf-bench-"));
const PROBES = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64];
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
// --flat: every cluster its own topic, all centres equally far apart: harder for any index than photos are
const flat = process.argv.includes("--flat");
const data = new ClusteredData(512, 2000, 1, flat ? 2000 : undefined);

try {
  for (const n of sizes) {
    const file = join(dir, `c${n}.db`);
    const db = CollectionDb.open(file, { dim: 512, ivf: { minRows: Number.MAX_SAFE_INTEGER } });
    let t = performance.now();
    for (let i = 0; i < n; i += 1000) db.upsert(Array.from({ length: Math.min(1000, n - i) }, (_, j) => data.row(i + j)));
    const insertS = (performance.now() - t) / 1000;
    const queries = Array.from({ length: n >= 1_000_000 ? 20 : 50 }, (_, j) => data.query(j));
    const exact: string[][] = [];
    const exactMs: number[] = [];
    for (const q of queries) {
      t = performance.now();
      exact.push(db.search(q, 10, { exact: true }).map((h) => h.path));
      exactMs.push(performance.now() - t);
    }
    const built = db.ivf.build();
    const rows = [];
    for (const nprobe of PROBES) {
      if (nprobe > built.lists) break;
      const ms: number[] = [];
      let hit = 0;
      queries.forEach((q, i) => {
        t = performance.now();
        const got = db.search(q, 10, { nprobe }).map((h) => h.path);
        ms.push(performance.now() - t);
        const want = new Set(exact[i]);
        hit += got.filter((p) => want.has(p)).length;
      });
      rows.push({ nprobe, recall10: hit / (10 * queries.length), ms: median(ms) });
    }
    db.close();
    const mb = statSync(file).size / 2 ** 20;
    console.log(JSON.stringify({ n, flat, insertS, lists: built.lists, groups: built.groups, buildS: built.ms / 1000, fileMB: Math.round(mb), exactMs: median(exactMs), defaultNprobe: defaultNprobe(built.lists), probes: rows }));
    rmSync(file, { force: true });
    rmSync(`${file}-wal`, { force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
