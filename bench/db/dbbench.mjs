// Measures embedded databases for photo collections (issue 12): write rate, kill -9 safety, exact and approximate
// top-10 search at 10k / 100k / 1M rows of 512 float32, peak RSS. A program, not a test.
//   npm install --prefix bench/db && nice -n 10 node bench/db/dbbench.mjs [--sizes 10000,100000,1000000]
//     [--only file,sqlite-native,sqlite-vec,sqlite-wasm,sqlite-wasm-wal,lancedb,duckdb] [--dir /tmp/clip-ts-dbbench] [--kills 5] [--max duckdb=100000]
// Each candidate runs in a child process of its own, so its peak RSS is its own.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const SELF = fileURLToPath(import.meta.url);
const D = 512;
const CLUSTERS = 1000;
const TIE_GROUP = 997; // rows with i % 997 == 5 all carry row 5's vector: top-10 of that query is all ties
const BATCH = 1000;

// ---- deterministic rows ----------------------------------------------------------------------------------------
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const centers = new Float32Array(CLUSTERS * D);
{
  const r = rng(12345);
  for (let i = 0; i < centers.length; i++) centers[i] = r() * 2 - 1;
}
// Clustered like real CLIP embeddings (a random cloud would make every approximate index look useless).
function vecInto(i, out, o = 0) {
  const src = i % TIE_GROUP === 5 ? 5 : i;
  const r = rng(Math.imul(src, 2654435761) ^ 0x9e3779b9);
  const c = Math.floor(r() * CLUSTERS) * D;
  let n = 0;
  for (let k = 0; k < D; k++) {
    const v = Math.fround(centers[c + k] + (r() * 2 - 1) * 0.8);
    out[o + k] = v;
    n += v * v;
  }
  const s = 1 / Math.sqrt(n);
  for (let k = 0; k < D; k++) out[o + k] = Math.fround(out[o + k] * s);
}
const pathOf = (i) => `photos/d${String(i % 64).padStart(2, "0")}/img${String(i).padStart(7, "0")}.jpg`;
const idxOf = (p) => Number(p.slice(-11, -4));
function row(i) {
  const emb = new Float32Array(D);
  vecInto(i, emb);
  return {
    path: pathOf(i),
    size: 100000 + (i % 5000),
    mtime: 1.7e12 + i,
    sha256: createHash("sha256").update(String(i)).digest("hex"),
    emb,
  };
}
const MODEL_SHA = createHash("sha256").update("ViT-B-32").digest("hex");
function queries() {
  const qs = [];
  for (let q = 0; q < 5; q++) {
    const v = new Float32Array(D);
    vecInto(10_000_019 + q * 7919, v); // near some cluster, not a stored row
    qs.push(v);
  }
  const tie = new Float32Array(D);
  vecInto(5, tie);
  qs.push(tie);
  return qs;
}

// ---- top-k with deterministic ties: score descending, then path ascending --------------------------------------
class TopK {
  constructor(k) { this.k = k; this.items = []; }
  worse(a, b) { return a.score < b.score || (a.score === b.score && a.path > b.path); }
  offer(score, path) {
    const it = this.items;
    if (it.length === this.k) {
      const last = it[it.length - 1];
      if (score < last.score || (score === last.score && path > last.path)) return;
    }
    const e = { score, path };
    let j = it.length;
    while (j > 0 && this.worse(it[j - 1], e)) j--;
    it.splice(j, 0, e);
    if (it.length > this.k) it.pop();
  }
}
function dot(a, ao, b) {
  let s = 0;
  for (let k = 0; k < D; k++) s += a[ao + k] * b[k];
  return Math.fround(s);
}
function exactRef(n, qs) {
  const tops = qs.map(() => new TopK(10));
  const v = new Float32Array(D);
  for (let i = 0; i < n; i++) {
    vecInto(i, v);
    const p = pathOf(i);
    for (let q = 0; q < qs.length; q++) tops[q].offer(dot(v, 0, qs[q]), p);
  }
  return tops.map((t) => t.items.map((e) => e.path));
}
const f32bytes = (v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const now = () => process.hrtime.bigint();

// ---- candidates ----------------------------------------------------------------------------------------------------
// Each: open(dir) -> { count(), insertBatch(rows), exact(q) -> paths, [annBuild(), ann(q, opts) -> paths], check(), close() }
const candidates = {
  // Our own format: append-only records; each batch ends with a commit record; opening truncates after the last one.
  file: {
    pkg: [],
    open(dir) {
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, "rows.bin");
      const REC = 4 + 2 + 100 + 8 + 8 + 32 + 2 + D * 4; // tag, path len, path, size, mtime, sha, pad, emb (4-aligned)
      let fd = fs.openSync(file, fs.existsSync(file) ? "r+" : "w+");
      // Recovery: keep whole batches only.
      const st = fs.fstatSync(fd).size;
      let committed = 0, rows = 0, off = 0;
      const tag = Buffer.alloc(4);
      while (off + 4 <= st) {
        fs.readSync(fd, tag, 0, 4, off);
        const t = tag.readUInt32LE(0);
        if (t === 0x524f5721 && off + REC <= st) { rows++; off += REC; }
        else if (t === 0x434f4d54 && off + 8 <= st) { fs.readSync(fd, tag, 0, 4, off + 4); if (tag.readUInt32LE(0) !== rows) break; off += 8; committed = off; }
        else break;
      }
      if (committed !== st) fs.ftruncateSync(fd, committed);
      let size = committed;
      let n = 0;
      { const b = Buffer.alloc(4); let o = 0; while (o < size) { fs.readSync(fd, b, 0, 4, o); if (b.readUInt32LE(0) === 0x524f5721) { n++; o += REC; } else o += 8; } }
      return {
        count: () => n,
        insertBatch(rs) {
          const buf = Buffer.alloc(rs.length * REC + 8);
          let o = 0;
          for (const r of rs) {
            buf.writeUInt32LE(0x524f5721, o); buf.writeUInt16LE(r.path.length, o + 4); buf.write(r.path, o + 6, "latin1");
            buf.writeDoubleLE(r.size, o + 106); buf.writeDoubleLE(r.mtime, o + 114); buf.write(r.sha256, o + 122, "hex");
            Buffer.from(r.emb.buffer, r.emb.byteOffset, D * 4).copy(buf, o + 156); o += REC;
          }
          n += rs.length;
          buf.writeUInt32LE(0x434f4d54, o); buf.writeUInt32LE(n, o + 4);
          fs.writeSync(fd, buf, 0, buf.length, size); fs.fsyncSync(fd); size += buf.length;
        },
        exact(q) {
          const top = new TopK(10);
          const chunk = Buffer.alloc(REC * 4096);
          let o = 0;
          while (o < size) {
            const got = fs.readSync(fd, chunk, 0, Math.min(chunk.length, size - o), o);
            let p = 0;
            while (p + 8 <= got) {
              if (chunk.readUInt32LE(p) !== 0x524f5721) { p += 8; continue; }
              if (p + REC > got) break;
              const e = new Float32Array(chunk.buffer, chunk.byteOffset + p + 156, D);
              const s = dot(e, 0, q);
              const last = top.items[9];
              if (!last || s >= last.score) top.offer(s, chunk.toString("latin1", p + 6, p + 6 + chunk.readUInt16LE(p + 4)));
              p += REC;
            }
            o += p;
          }
          return top.items.map((e) => e.path);
        },
        check: () => ({ ok: true }),
        allPaths() { const out = []; const b = Buffer.alloc(REC); let o = 0; while (o < size) { fs.readSync(fd, b, 0, 8, o); if (b.readUInt32LE(0) === 0x524f5721) { fs.readSync(fd, b, 0, REC, o); out.push(b.toString("latin1", 6, 6 + b.readUInt16LE(4))); o += REC; } else o += 8; } return out; },
        close() { fs.closeSync(fd); },
      };
    },
  },
  "sqlite-native": { pkg: ["better-sqlite3"], open: (dir) => openBs3(dir, false) },
  "sqlite-vec": { pkg: ["better-sqlite3", "sqlite-vec", "sqlite-vec-linux-x64"], open: (dir) => openBs3(dir, true) },
  // Rollback journal (the default): see README, a kill -9 mid-commit leaves a journal this VFS never replays.
  "sqlite-wasm": { pkg: ["node-sqlite3-wasm"], open: (dir) => openWasm(dir, false) },
  // What src/collection/db.ts uses: WAL, which without shared memory in the VFS needs exclusive locking.
  "sqlite-wasm-wal": { pkg: ["node-sqlite3-wasm"], open: (dir) => openWasm(dir, true) },
};
function openWasm(dir, wal) {
  {
    {
      fs.mkdirSync(dir, { recursive: true });
      const { Database } = require("node-sqlite3-wasm");
      const db = new Database(path.join(dir, "db.sqlite"));
      // 16 KiB pages: 7 rows a page instead of one (a 2.2 KB row is over half a 4 KiB page): half the file
      if (wal) db.exec("PRAGMA page_size = 16384; PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL");
      db.exec(SCHEMA);
      const ins = db.prepare(INSERT);
      return {
        count: () => db.get("SELECT count(*) AS n FROM photos").n,
        insertBatch(rs) {
          db.exec("BEGIN");
          for (const r of rs) ins.run([r.path, r.size, r.mtime, r.sha256, MODEL_SHA, f32bytes(r.emb)]);
          db.exec("COMMIT");
        },
        exact(q) {
          const top = new TopK(10);
          const st = db.prepare("SELECT path, emb FROM photos");
          for (const r of st.iterate()) {
            const e = new Float32Array(r.emb.buffer, r.emb.byteOffset, D);
            top.offer(dot(e, 0, q), r.path);
          }
          st.finalize();
          return top.items.map((e) => e.path);
        },
        check: () => ({ ok: db.get("PRAGMA integrity_check").integrity_check === "ok" }),
        allPaths: () => db.all("SELECT path FROM photos").map((r) => r.path),
        close() { ins.finalize(); db.close(); },
      };
    }
  }
}
Object.assign(candidates, {
  lancedb: {
    pkg: ["@lancedb/lancedb", "@lancedb/lancedb-linux-x64-gnu", "apache-arrow"],
    async open(dir) {
      const lancedb = require("@lancedb/lancedb");
      const arrow = require("apache-arrow");
      const db = await lancedb.connect(dir);
      const schema = new arrow.Schema([
        new arrow.Field("path", new arrow.Utf8(), false),
        new arrow.Field("size", new arrow.Float64(), false),
        new arrow.Field("mtime", new arrow.Float64(), false),
        new arrow.Field("sha256", new arrow.Utf8(), false),
        new arrow.Field("model_sha256", new arrow.Utf8(), false),
        new arrow.Field("vector", new arrow.FixedSizeList(D, new arrow.Field("item", new arrow.Float32(), true)), false),
      ]);
      const names = await db.tableNames();
      let t = names.includes("photos") ? await db.openTable("photos") : await db.createEmptyTable("photos", schema);
      const toArrow = (rs) => {
        const flat = new Float32Array(rs.length * D);
        rs.forEach((r, j) => flat.set(r.emb, j * D));
        const child = arrow.makeData({ type: new arrow.Float32(), length: flat.length, data: flat });
        const vec = arrow.makeData({ type: schema.fields[5].type, length: rs.length, nullCount: 0, child });
        return new arrow.Table(schema, {
          path: arrow.vectorFromArray(rs.map((r) => r.path), new arrow.Utf8()).data[0],
          size: arrow.vectorFromArray(rs.map((r) => r.size), new arrow.Float64()).data[0],
          mtime: arrow.vectorFromArray(rs.map((r) => r.mtime), new arrow.Float64()).data[0],
          sha256: arrow.vectorFromArray(rs.map((r) => r.sha256), new arrow.Utf8()).data[0],
          model_sha256: arrow.vectorFromArray(rs.map(() => MODEL_SHA), new arrow.Utf8()).data[0],
          vector: vec,
        });
      };
      // Lance returns the k nearest with ties broken arbitrarily: fetch a margin and re-sort by (distance, path).
      const sortTop = (rows) =>
        rows.sort((a, b) => a._distance - b._distance || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).slice(0, 10).map((r) => r.path);
      return {
        count: () => t.countRows(),
        insertBatch: (rs) => t.add(toArrow(rs)),
        async exact(q) {
          return sortTop(await t.search(Array.from(q)).distanceType("dot").bypassVectorIndex().select(["path"]).limit(64).toArray());
        },
        async annBuild(n) {
          await t.createIndex("vector", {
            config: lancedb.Index.ivfPq({ numPartitions: Math.max(16, Math.round(Math.sqrt(n))), numSubVectors: 64, distanceType: "dot" }),
            replace: true,
          });
        },
        async ann(q, nprobes) {
          return sortTop(await t.search(Array.from(q)).distanceType("dot").nprobes(nprobes).refineFactor(10).select(["path"]).limit(10).toArray());
        },
        check: async () => ({ ok: true }),
        allPaths: async () => (await t.query().select(["path"]).toArray()).map((r) => r.path),
        close: () => { t.close(); db.close(); },
      };
    },
  },
  duckdb: {
    pkg: ["@duckdb/node-api", "@duckdb/node-bindings", "@duckdb/node-bindings-linux-x64"],
    async open(dir) {
      fs.mkdirSync(dir, { recursive: true });
      const duck = require("@duckdb/node-api");
      const inst = await duck.DuckDBInstance.create(path.join(dir, "db.duckdb"), { threads: "1" });
      const con = await inst.connect();
      await con.run(`CREATE TABLE IF NOT EXISTS photos (path VARCHAR PRIMARY KEY, size DOUBLE, mtime DOUBLE, sha256 VARCHAR,
        model_sha256 VARCHAR, emb FLOAT[${D}])`);
      const arrType = duck.ARRAY(duck.FLOAT, D);
      const one = async (sql) => (await con.runAndReadAll(sql)).getRowObjects();
      return {
        count: async () => Number((await one("SELECT count(*) AS n FROM photos"))[0].n),
        async insertBatch(rs) {
          await con.run("BEGIN TRANSACTION");
          const ap = await con.createAppender("photos");
          for (const r of rs) {
            ap.appendVarchar(r.path); ap.appendDouble(r.size); ap.appendDouble(r.mtime); ap.appendVarchar(r.sha256);
            ap.appendVarchar(MODEL_SHA); ap.appendArray(Array.from(r.emb), arrType); ap.endRow();
          }
          ap.flushSync(); ap.closeSync();
          await con.run("COMMIT");
        },
        async exact(q) {
          const lit = `[${Array.from(q, (x) => x.toPrecision(9)).join(",")}]::FLOAT[${D}]`;
          return (await one(`SELECT path FROM photos ORDER BY array_inner_product(emb, ${lit}) DESC, path LIMIT 10`)).map((r) => r.path);
        },
        check: async () => ({ ok: true }),
        allPaths: async () => (await one("SELECT path FROM photos")).map((r) => r.path),
        close: () => { con.closeSync(); inst.closeSync?.(); },
      };
    },
  },
});
const SCHEMA = `CREATE TABLE IF NOT EXISTS photos (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime REAL NOT NULL,
  sha256 TEXT NOT NULL, model_sha256 TEXT NOT NULL, emb BLOB NOT NULL) STRICT`;
const INSERT = "INSERT OR REPLACE INTO photos (path, size, mtime, sha256, model_sha256, emb) VALUES (?, ?, ?, ?, ?, ?)";
function openBs3(dir, vec) {
  fs.mkdirSync(dir, { recursive: true });
  const Database = require("better-sqlite3");
  const db = new Database(path.join(dir, "db.sqlite"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(SCHEMA);
  if (vec) require("sqlite-vec").load(db);
  const ins = db.prepare(INSERT);
  const tx = db.transaction((rs) => { for (const r of rs) ins.run(r.path, r.size, r.mtime, r.sha256, MODEL_SHA, f32bytes(r.emb)); });
  const scan = db.prepare("SELECT path, emb FROM photos").raw(true);
  const vq = vec && db.prepare("SELECT path FROM photos ORDER BY vec_distance_cosine(emb, ?), path LIMIT 10").pluck(true);
  return {
    count: () => db.prepare("SELECT count(*) FROM photos").pluck().get(),
    insertBatch: (rs) => tx(rs),
    exact(q) {
      if (vec) return vq.all(f32bytes(q));
      const top = new TopK(10);
      for (const [p, b] of scan.iterate()) top.offer(dot(new Float32Array(b.buffer, b.byteOffset, D), 0, q), p);
      return top.items.map((e) => e.path);
    },
    check: () => ({ ok: db.pragma("integrity_check", { simple: true }) === "ok" }),
    allPaths: () => db.prepare("SELECT path FROM photos").pluck().all(),
    close: () => db.close(),
  };
}

// ---- child modes ---------------------------------------------------------------------------------------------------
const rss = () => Math.round(process.resourceUsage().maxRSS / 1024);
const out = (o) => fs.writeSync(1, JSON.stringify(o) + "\n");

async function runSizes(name, dir, sizes, refFile) {
  const c = await candidates[name].open(dir);
  const ref = JSON.parse(fs.readFileSync(refFile, "utf8"));
  const qs = queries();
  let n = await c.count();
  for (const target of sizes) {
    const start = n;
    let writeMs = 0; // the inserts alone, not making the rows
    while (n < target) {
      const rs = [];
      for (let i = n; i < Math.min(target, n + BATCH); i++) rs.push(row(i));
      const t0 = now();
      await c.insertBatch(rs);
      writeMs += ms(t0);
      n += rs.length;
    }
    const reps = target >= 1e6 ? 1 : 3;
    const times = [];
    let same = 0, tieOk = false;
    for (let rep = 0; rep < reps; rep++)
      for (let q = 0; q < qs.length; q++) {
        const t1 = now();
        const got = await c.exact(qs[q]);
        times.push(ms(t1));
        if (rep === 0) {
          const want = ref[String(target)][q];
          if (JSON.stringify(got) === JSON.stringify(want)) same++;
          if (q === qs.length - 1) tieOk = JSON.stringify(got) === JSON.stringify(want);
        }
      }
    times.sort((a, b) => a - b);
    const res = { name, n: target, rowsPerS: n > start ? Math.round(((n - start) / writeMs) * 1000) : null,
      exactMs: Math.round(times[times.length >> 1]), sameAsRef: `${same}/${qs.length}`, tieOrderOk: tieOk, bytes: dirBytes(dir), rssMB: rss() };
    if (c.annBuild && target >= 100000) {
      const t2 = now();
      await c.annBuild(target);
      res.annBuildS = Math.round(ms(t2) / 100) / 10;
      for (const np of [10, 40]) {
        let hit = 0, tot = 0; const at = [];
        for (let q = 0; q < qs.length - 1; q++) {
          const t3 = now();
          const got = await c.ann(qs[q], np);
          at.push(ms(t3));
          const want = new Set(ref[String(target)][q]);
          hit += got.filter((p) => want.has(p)).length; tot += 10;
        }
        at.sort((a, b) => a - b);
        res[`ann_nprobes${np}`] = { ms: Math.round(at[at.length >> 1] * 10) / 10, recall10: hit / tot };
      }
      res.rssMB = rss();
    }
    out(res);
  }
  await c.close();
}
function dirBytes(d) {
  let s = 0;
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    s += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return s;
}
// Writer for the kill -9 test: resumes from what is there, reports each commit after it returned.
async function writer(name, dir) {
  const c = await candidates[name].open(dir);
  let n = await c.count();
  out({ start: n });
  for (;;) {
    const rs = [];
    for (let i = n; i < n + 200; i++) rs.push(row(i));
    await c.insertBatch(rs);
    n += rs.length;
    out({ committed: n });
  }
}
async function checker(name, dir) {
  let c, staleLock = false;
  try {
    c = await candidates[name].open(dir);
  } catch (e) {
    // node-sqlite3-wasm locks with mkdir(<db>.lock); a killed writer leaves it, and every open says "locked".
    if (!/locked/.test(String(e)) || !fs.existsSync(path.join(dir, "db.sqlite.lock"))) throw e;
    staleLock = true;
    fs.rmdirSync(path.join(dir, "db.sqlite.lock"));
    c = await candidates[name].open(dir);
  }
  const paths = (await c.allPaths()).sort();
  const n = paths.length;
  let exact = new Set(paths).size === n;
  for (let i = 0; i < n && exact; i++) if (paths[i] !== undefined && idxOf(paths[i]) >= n) exact = false;
  const chk = await c.check();
  out({ count: n, rowsAre0toN: exact, integrity: chk.ok, staleLock });
  await c.close();
}

// ---- parent --------------------------------------------------------------------------------------------------------
function child(args) {
  const r = spawnSync(process.execPath, ["--max-old-space-size=4096", SELF, ...args], { encoding: "utf8", maxBuffer: 1 << 26 });
  return { lines: r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)), err: r.status === 0 ? null : r.stderr.trim().split("\n").slice(-3).join(" | ") };
}
async function crashTest(name, dir, kills) {
  fs.rmSync(dir, { recursive: true, force: true });
  const r = rng(777);
  const res = [];
  for (let k = 0; k < kills; k++) {
    const p = spawn(process.execPath, [SELF, "writer", name, dir], { stdio: ["ignore", "pipe", "pipe"] });
    let buf = "", last = null, err = "";
    p.stdout.on("data", (d) => { buf += d; });
    p.stderr.on("data", (d) => { err += d; });
    // Wait until the writer is writing, then kill at a random point.
    await new Promise((res) => { const t = setInterval(() => { if (buf.includes("committed")) { clearInterval(t); res(); } }, 20); p.on("exit", () => { clearInterval(t); res(); }); });
    await new Promise((res) => setTimeout(res, 100 + r() * 900));
    p.kill("SIGKILL");
    await new Promise((res) => p.on("exit", res));
    for (const l of buf.split("\n")) { if (l.includes("committed")) last = JSON.parse(l).committed; }
    const chk = child(["check", name, dir]);
    if (chk.err) { res.push({ kill: k, error: chk.err || err }); break; }
    const c = chk.lines[0];
    // The commit returned (reported) or was durable but not yet reported: count is last or last + one batch.
    res.push({ kill: k, reported: last, ...c, ok: c.integrity && c.rowsAre0toN && (c.count === last || c.count === last + 200) });
  }
  return res;
}
async function main() {
  const argv = process.argv.slice(2);
  const mode = argv[0];
  if (mode === "run") return runSizes(argv[1], argv[2], argv[3].split(",").map(Number), argv[4]);
  if (mode === "writer") return writer(argv[1], argv[2]);
  if (mode === "check") return checker(argv[1], argv[2]);
  const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
  const sizes = opt("sizes", "10000,100000,1000000").split(",").map(Number);
  const only = opt("only", Object.keys(candidates).join(",")).split(",");
  const root = opt("dir", "/tmp/clip-ts-dbbench");
  const kills = Number(opt("kills", "5"));
  fs.mkdirSync(root, { recursive: true });
  const refFile = path.join(root, `ref-${sizes.join("_")}.json`);
  if (!fs.existsSync(refFile)) {
    const qs = queries(), ref = {};
    for (const n of sizes) ref[n] = exactRef(n, qs);
    fs.writeFileSync(refFile, JSON.stringify(ref));
  }
  const nm = path.join(path.dirname(SELF), "node_modules");
  for (const name of only) {
    const pk = candidates[name].pkg.map((p) => path.join(nm, p));
    const installMB = pk.length ? Math.round(Number(spawnSync("du", ["-sbc", ...pk.filter((p) => fs.existsSync(p))], { encoding: "utf8" }).stdout.trim().split("\n").pop().split("\t")[0]) / 1e6) : 0;
    console.log(JSON.stringify({ name, installMB }));
    const crash = await crashTest(name, path.join(root, `crash-${name}`), kills);
    const stale = crash.filter((c) => c.staleLock).length;
    console.log(JSON.stringify({ name, crash: crash.every((c) => c.ok) ? `${crash.length}/${kills} kills consistent` + (stale ? `, ${stale} left a stale lock removed by hand` : "") : crash }));
    const dir = path.join(root, `run-${name}`);
    fs.rmSync(dir, { recursive: true, force: true });
    const cap = Number((opt("max", "").split(",").find((m) => m.startsWith(name + "=")) || "=Infinity").split("=")[1]);
    const r = child(["run", name, dir, sizes.filter((n) => n <= cap).join(","), refFile]);
    for (const l of r.lines) console.log(JSON.stringify(l));
    if (r.err) console.log(JSON.stringify({ name, error: r.err }));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(path.join(root, `crash-${name}`), { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
