// torch.save / TorchScript zip archives through loadStateDict: lying local/central/end-record fields (sizes,
// offsets, counts, zip64 extra fields), archive tricks (entries sharing bytes, a zip stored inside an entry, several
// or no data.pkl, missing or short storages, deflated entries and deflate bombs), pickle edits behind a correct
// CRC, raw byte edits, and compression-amplified archives (a deflated data.pkl of millions of repeated opcodes,
// deflated storages far larger than the tensors that use them).
import { deflateSync } from "fflate";
import { WeightsError } from "../../src/weights/index.js";
import { readZip, writeZip, type Field, type WriteOptions, type ZipItem } from "../formats/zip.js";
import type { FuzzTarget } from "../harness.js";
import { getUint, havoc, interestingInt, setUint } from "../mutate.js";
import type { Rng } from "../rng.js";
import { pickSeed, seedFiles, type SeedFile } from "../seeds.js";
import { amplifiedArchive } from "./amplified.js";
import { mutatePickle } from "./pickle.js";
import { runWeights, weightsCase, type WeightsCase } from "./safetensors.js";

interface Archive extends SeedFile {
  items: ZipItem[] | undefined;
  zip64: boolean;
  /** Offsets of zip signatures ("PK"): record boundaries that attract byte edits. */
  records: number[];
}

let bomb: Uint8Array | undefined;
const BOMB_BYTES = 16 * 2 ** 20;
/** 16 MiB of zeros deflated to about 16 KiB: honest sizes, but 1000:1. */
function deflateBomb(): Uint8Array {
  bomb ??= deflateSync(new Uint8Array(BOMB_BYTES), { level: 9 });
  return bomb;
}

function patchField(rng: Rng, bytes: Uint8Array, fields: readonly Field[]): string {
  const f = rng.pick(fields);
  const v = interestingInt(rng, (f.width * 8) as 8 | 16 | 32 | 64, getUint(bytes, f.off, f.width));
  setUint(bytes, f.off, f.width, v);
  return `${f.what} = ${v}`;
}

function structural(rng: Rng, items: ZipItem[], seed: Uint8Array): { items: ZipItem[]; how: string; after?: (b: Uint8Array, f: Field[]) => string } {
  const out = items.map((x) => ({ ...x }));
  const i = rng.int(out.length);
  const pkl = out.findIndex((x) => x.name.endsWith("/data.pkl"));
  const storages = out.map((x, j) => (/\/data\/[^/]+$/.test(x.name) ? j : -1)).filter((j) => j >= 0);
  switch (rng.int(10)) {
    case 0:
      out.splice(i, 1);
      return { items: out, how: `drop ${items[i]!.name}` };
    case 1:
      out.push({ ...out[i]! });
      return { items: out, how: `duplicate ${items[i]!.name}` };
    case 2: {
      const name = out[i]!.name.replace(/^[^/]*\//, "other/");
      out.push({ ...out[pkl >= 0 ? pkl : i]!, name: pkl >= 0 ? "other/data.pkl" : name });
      return { items: out, how: "a second data.pkl" };
    }
    case 3:
      if (pkl >= 0) out[pkl] = { ...out[pkl]!, name: out[pkl]!.name.replace("data.pkl", rng.pick(["model.json", "data.pk", "DATA.PKL", "data.pkl/"])) };
      return { items: out, how: "data.pkl renamed" };
    case 4: {
      // The whole seed archive stored inside one entry.
      const j = rng.chance(0.5) && storages.length > 0 ? rng.pick(storages) : pkl >= 0 ? pkl : i;
      out[j] = { ...out[j]!, data: seed };
      return { items: out, how: `nested zip as ${out[j]!.name}` };
    }
    case 5: {
      if (storages.length === 0) return { items: out, how: "no storages" };
      const j = rng.pick(storages);
      const cut = rng.int(out[j]!.data.length + 1);
      out[j] = { ...out[j]!, data: rng.chance(0.7) ? out[j]!.data.subarray(0, cut) : new Uint8Array(out[j]!.data.length + rng.range(1, 64)) };
      return { items: out, how: `storage ${out[j]!.name} resized to ${out[j]!.data.length}` };
    }
    case 6: {
      if (storages.length < 2) return { items: out, how: "no storages" };
      const a = rng.pick(storages);
      const b = rng.pick(storages);
      [out[a], out[b]] = [{ ...out[a]!, data: out[b]!.data }, { ...out[b]!, data: out[a]!.data }];
      return { items: out, how: `storages ${out[a]!.name} and ${out[b]!.name} swapped` };
    }
    case 7: {
      for (const x of out) if (rng.chance(0.5)) x.method = 8;
      return { items: out, how: "entries deflated" };
    }
    case 8: {
      // Entries pointing at the same local header: many names for the same bytes.
      return {
        items: out,
        how: "entries share data",
        after: (b, fields) => {
          const offs = fields.filter((f) => /^central\[\d+\]\.localOffset$/.test(f.what));
          if (offs.length < 2) return "";
          const src = rng.pick(offs);
          const v = getUint(b, src.off, 4);
          let n = 0;
          for (const f of offs) if (rng.chance(0.5)) (setUint(b, f.off, 4, v), n++);
          return `${n} entries point at local header ${v}`;
        },
      };
    }
    default: {
      const k = rng.range(1, 200);
      for (let n = 0; n < k; n++) out.push({ name: `junk/${n}`, data: new Uint8Array(rng.smallInt(16)) });
      return { items: out, how: `${k} extra entries` };
    }
  }
}

/** A stored entry swapped for a deflated bomb in an archive written by writeZip: the sizes are rewritten in place. */
function bombArchive(rng: Rng, items: ZipItem[], opts: WriteOptions): { bytes: Uint8Array; how: string } {
  const pkl = items.findIndex((x) => x.name.endsWith("/data.pkl"));
  const j = pkl >= 0 && rng.chance(0.5) ? pkl : rng.int(items.length);
  const raw = deflateBomb();
  // Write the archive with the bomb's compressed bytes stored, then declare them deflated, of the bomb's size.
  const withRaw = items.map((x, k) => (k === j ? { ...x, data: raw, method: 0 as const } : x));
  const { bytes, fields } = writeZip(withRaw, { ...opts, zip64: false });
  const declared = rng.chance(0.7) ? BOMB_BYTES : interestingInt(rng, 32, BOMB_BYTES);
  for (const f of fields) {
    if (f.what === `central[${j}].method` || f.what === `local[${j}].method`) setUint(bytes, f.off, 2, 8);
    if (f.what === `central[${j}].usize` || f.what === `local[${j}].usize`) setUint(bytes, f.off, 4, declared);
  }
  return { bytes, how: `${items[j]!.name} is a deflate bomb declaring ${declared} bytes` };
}

export function torchTarget(): FuzzTarget<WeightsCase> {
  const seeds: Archive[] = [...seedFiles("test/fixtures/weights", /\.pt$/), ...seedFiles("test/golden/models/vit", /\.pt$/)].map((s) => ({
    ...s,
    items: s.bytes[0] === 0x50 ? readZip(s.bytes) : undefined,
    zip64: s.name.includes("zip64"),
    records: [...s.bytes.keys()].filter((p) => s.bytes[p] === 0x50 && s.bytes[p + 1] === 0x4b),
  }));
  return {
    name: "torch",
    errorName: "WeightsError",
    isTyped: (e) => e instanceof WeightsError,
    run: runWeights,
    files: (c) => ({ "case.pt": c.bytes, ...(c.limits ? { "limits.json": new TextEncoder().encode(JSON.stringify(c.limits)) } : {}) }),
    generate(rng) {
      if (seeds.some((s) => s.items) && rng.chance(0.03)) {
        const a = amplifiedArchive(rng);
        return { input: { bytes: a.bytes, limits: a.limits }, how: `amplified: ${a.how}${a.limits ? ` (limits ${JSON.stringify(a.limits)})` : ""}` };
      }
      const r = generate(rng);
      const w = weightsCase(rng, r.input);
      return { input: w.input, how: r.how + w.how };
    },
  };

  function generate(rng: Rng): { input: Uint8Array; how: string } {
      const seed = pickSeed(rng, seeds);
      const items = seed.items;
      const mode = items ? rng.weighted([35, 20, 20, 5, 20]) : 4;
      const wopts: WriteOptions = { zip64: seed.zip64 || rng.chance(0.15), align: rng.chance(0.9) ? 64 : 1 };
      const tag = `${seed.name}${wopts.zip64 ? " (zip64)" : ""}`;
      if (mode === 0) {
        const j = items!.findIndex((x) => x.name.endsWith("/data.pkl"));
        const p = mutatePickle(rng, items![j]!.data);
        const next = items!.map((x, k) => (k === j ? { ...x, data: p.bytes } : x));
        return { input: writeZip(next, wopts).bytes, how: `${tag}: pickle ${p.how}` };
      }
      if (mode === 1) {
        const deflatePkl = rng.chance(0.2);
        const next = items!.map((x) => (deflatePkl && x.name.endsWith("/data.pkl") ? { ...x, method: 8 as const } : x));
        const { bytes, fields } = writeZip(next, wopts);
        const hows = [patchField(rng, bytes, fields)];
        if (rng.chance(0.3)) hows.push(patchField(rng, bytes, fields));
        return { input: bytes, how: `${tag}: ${hows.join("; ")}` };
      }
      if (mode === 2) {
        const s = structural(rng, items!, seed.bytes);
        const { bytes, fields } = writeZip(s.items, wopts);
        const extra = s.after?.(bytes, fields);
        return { input: bytes, how: `${tag}: ${s.how}${extra ? `; ${extra}` : ""}` };
      }
      if (mode === 3) {
        const r = bombArchive(rng, items!, wopts);
        return { input: r.bytes, how: `${tag}: ${r.how}` };
      }
      const hot = seed.records.map((p) => p + 4 + rng.int(40));
      const r = havoc(rng, seed.bytes, hot);
      return { input: r.bytes, how: `${tag}: ${r.how}` };
  }
}
