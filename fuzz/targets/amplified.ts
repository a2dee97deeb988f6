// Compression-amplified and count-amplified weights files: a torch data.pkl deflated from millions of repeated
// opcodes (each a value the unpickler would keep), deflated storages far larger than the tensors that use them,
// safetensors headers of a hundred thousand entries. A few KB to a few hundred KB of file each, made in
// milliseconds by fuzz/formats/deflate.ts without holding the inflated bytes. The torch and safetensors targets mix
// these in; the "amplified" target runs only them (test/fuzz.test.ts runs it bounded).
import { WeightsError, type WeightsLimits } from "../../src/weights/index.js";
import { amplify, ascii, type Segment } from "../formats/deflate.js";
import { writeZip, type ZipItem } from "../formats/zip.js";
import type { FuzzTarget } from "../harness.js";
import { concat, setUint, utf8 } from "../mutate.js";
import type { Rng } from "../rng.js";
import { runWeights, type WeightsCase } from "./safetensors.js";

/**
 * A torch archive whose deflated data.pkl is PROTO 2, `head`, `pattern` repeated to `length` bytes, then `tail`
 * (default: STOP). `declared` replaces the inflated size written in the zip headers (a lie when it differs).
 */
export function pickleFlood(pattern: string, length: number, opts: { head?: string; tail?: string; declared?: number } = {}): Uint8Array {
  const amp = amplify([Uint8Array.of(0x80, 2), ascii(opts.head ?? ""), { pattern: ascii(pattern), length }, ascii(opts.tail ?? ".")]);
  return writeZip([{ name: "archive/data.pkl", data: new Uint8Array(0), amplified: { ...amp, size: opts.declared ?? amp.size } }]).bytes;
}

/**
 * A torch.save'd dict of `count` one-element float tensors, each on its own storage declared (in the pickle and in
 * the zip) to hold `storageBytes` bytes of zeros, deflated: 8 storages of 200 MB make a 1.5 MB file.
 */
export function oversizedStorages(count: number, storageBytes: number): Uint8Array {
  const numel = Math.floor(storageBytes / 4);
  const int4 = (v: number): Uint8Array => Uint8Array.of(0x4a, v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24);
  const str = (t: string): Uint8Array => concat(Uint8Array.of(0x8c, t.length), ascii(t));
  const parts: Segment[] = [ascii("\x80\x02}(")];
  for (let i = 0; i < count; i++) {
    // key, _rebuild_tensor_v2(persistent storage id, offset 0, size (1,), stride (1,), False, OrderedDict())
    parts.push(
      str(`t${i}`),
      ascii("ctorch._utils\n_rebuild_tensor_v2\n("),
      concat(ascii("("), str("storage"), ascii("ctorch\nFloatStorage\n"), str(String(i)), str("cpu"), int4(numel), ascii("tQ")),
      ascii("K\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR"),
    );
  }
  parts.push(ascii("u."));
  const items: ZipItem[] = [{ name: "archive/data.pkl", data: new Uint8Array(0), amplified: amplify(parts) }];
  const zeros = amplify([{ pattern: new Uint8Array(1), length: numel * 4 }]);
  for (let i = 0; i < count; i++) items.push({ name: `archive/data/${i}`, data: new Uint8Array(0), amplified: zeros });
  return writeZip(items).bytes;
}

/** Opcode runs that leave a value, a mark or a memo entry behind per byte or two (BINGET after one BINPUT). */
const FLOODS = ["N", "(", "]", "}", ")", "\x8f", "N\x94", "}\x94", ")\x94", "K\x01", "N2", "N\x85", "(N", "}a", "0N", "h\x00", "Nr\x01\x02\x03\x04"];
const TAILS = [".", "", "t.", "l.", "0.", "\x85.", "e."];
const MiB = 2 ** 20;

/** One amplified archive; storage cases come with the maxTotalBytes they must be refused under. */
export function amplifiedArchive(rng: Rng): { bytes: Uint8Array; how: string; limits?: WeightsLimits } {
  if (rng.chance(0.6)) {
    const pattern = rng.pick(FLOODS);
    const head = pattern.startsWith("h") ? "Nq\x00" : pattern.startsWith("}a") ? "]" : ""; // a memo entry, a list
    // Up to 20 MB honest (to the opcode limit), then past maxPickleBytes (64 MiB).
    const length = rng.pick([1e5, 1e6, 4e6, 2e7, 7e7, 2e8]);
    const tail = rng.pick(TAILS);
    const declared = rng.chance(0.3) ? rng.pick([MiB, 16 * MiB, 300 * MiB]) : undefined;
    const bytes = pickleFlood(pattern, length, { head, tail, declared });
    return { bytes, how: `data.pkl: ${JSON.stringify(head)} then ${JSON.stringify(pattern)} repeated to ${length} bytes${declared ? `, declaring ${declared}` : ""}` };
  }
  const count = rng.range(1, 8);
  // Limits of at most 32 MiB keep each case's inflation small; 200 MB storages are refused before any.
  const size = rng.pick([MiB, 16 * MiB, 200e6]);
  const limits = { maxTotalBytes: rng.pick([8 * MiB, 32 * MiB]) };
  return { bytes: oversizedStorages(count, size), how: `${count} one-element tensors on deflated ${size}-byte storages`, limits };
}

/**
 * An honest safetensors file of `count` one-byte U8 tensors named in base 36: a header of 60-70 bytes per entry
 * (1.5 M entries make a 98 MB header). `shape` replaces every entry's shape (a lie when its product is not 1).
 */
export function manyEntries(count: number, shape: readonly number[] = []): Uint8Array {
  const parts: string[] = [];
  const dims = JSON.stringify(shape);
  for (let i = 0; i < count; i++) parts.push(`"${i.toString(36)}":{"dtype":"U8","shape":${dims},"data_offsets":[${i},${i + 1}]}`);
  const text = utf8(`{${parts.join(",")}}`);
  const len = new Uint8Array(8);
  setUint(len, 0, 8, text.length);
  return concat(len, text, new Uint8Array(count));
}

/** Safetensors headers with many entries: within maxTensors (loads), just over, far over, or over a small limit. */
export function manyEntriesCase(rng: Rng): { bytes: Uint8Array; how: string; limits?: WeightsLimits } {
  // Past the default maxTensors only now and then: a header of 10^5 entries takes a second to write.
  const count = [1000, 20_000, 100_002][rng.weighted([50, 45, 5])]!;
  const limits = rng.chance(0.4) ? { maxTensors: rng.pick([0, 999, 10_000]) } : undefined;
  const shape = count > 1000 || rng.chance(0.5) ? [] : rng.pick([[1, 1, 1, 1, 1, 1, 1, 1], new Array<number>(65).fill(1), [2 ** 40, 0]]);
  return { bytes: manyEntries(count, shape), how: `safetensors: ${count} entries of shape [${shape.slice(0, 4).join(", ")}${shape.length > 4 ? ", …" : ""}]`, limits };
}

/** Only the amplified classes: two in three torch archives, one in three safetensors headers. */
export function amplifiedTarget(): FuzzTarget<WeightsCase> {
  return {
    name: "amplified",
    errorName: "WeightsError",
    isTyped: (e) => e instanceof WeightsError,
    run: runWeights,
    files: (c) => ({ [c.bytes[0] === 0x50 ? "case.pt" : "case.safetensors"]: c.bytes, ...(c.limits ? { "limits.json": utf8(JSON.stringify(c.limits)) } : {}) }),
    generate(rng) {
      const r = rng.chance(2 / 3) ? amplifiedArchive(rng) : manyEntriesCase(rng);
      return { input: { bytes: r.bytes, limits: r.limits }, how: r.how + (r.limits ? ` (limits ${JSON.stringify(r.limits)})` : "") };
    },
  };
}
