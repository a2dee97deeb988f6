// --shard I/N: N shards partition any set of inputs exactly, by a rule anyone can reproduce (values from Python's
// hashlib below), and "I/N" is parsed strictly.
import { fc, test as fcTest } from "@fast-check/vitest";
import { describe, expect, test } from "vitest";
import { inShard, MAX_SHARDS, parseShard } from "../src/collection/shard.js";

describe("inShard", () => {
  fcTest.prop([fc.uniqueArray(fc.string({ unit: "grapheme", maxLength: 40 }), { maxLength: 200 }), fc.integer({ min: 1, max: 64 })], { numRuns: 200 })(
    "the N shards partition any set exactly: every input in exactly one",
    (rels, count) => {
      const owners = rels.map((r) => Array.from({ length: count }, (_, index) => index).filter((index) => inShard(r, { index, count })));
      for (const o of owners) expect(o.length).toBe(1);
      // and the union of the shards is the set
      const union = Array.from({ length: count }, (_, index) => rels.filter((r) => inShard(r, { index, count }))).flat();
      expect(union.sort()).toEqual([...rels].sort());
    },
  );

  test("the rule: first 4 bytes of SHA-256(UTF-8 rel), big-endian, mod N (values from Python's hashlib)", () => {
    const cases: [string, number[]][] = [
      ["000000001.jpg", [1, 0, 1, 3, 61]],
      ["shard-00017.tar#000170042.jpg", [0, 0, 2, 0, 506]],
      ["holiday/2019/IMG_0001.JPG", [1, 0, 3, 3, 335]],
      ["фото/été.png", [0, 2, 2, 6, 162]],
      ["", [0, 2, 2, 1, 610]],
    ];
    for (const [rel, want] of cases) {
      [2, 3, 4, 7, 1000].forEach((count, i) => {
        expect(inShard(rel, { index: want[i]!, count }), `${rel} in ${want[i]}/${count}`).toBe(true);
        expect(inShard(rel, { index: (want[i]! + 1) % count, count })).toBe(false);
      });
    }
  });

  test("balanced: 20 000 webdataset-style names over 4 and 7 shards, each within 5% of its share", () => {
    const rels = Array.from({ length: 20_000 }, (_, i) => `shard-${String(i >> 10).padStart(5, "0")}.tar#${String(i).padStart(9, "0")}.jpg`);
    for (const count of [4, 7]) {
      const sizes = Array.from({ length: count }, (_, index) => rels.filter((r) => inShard(r, { index, count })).length);
      for (const s of sizes) expect(Math.abs(s / (rels.length / count) - 1)).toBeLessThan(0.05);
    }
  });

  test("1/1 takes everything; a bad shard object is refused in one line", () => {
    expect(inShard("x", { index: 0, count: 1 })).toBe(true);
    for (const bad of [{ index: 4, count: 4 }, { index: -1, count: 4 }, { index: 0.5, count: 4 }, { index: 0, count: 0 }, null]) {
      expect(() => inShard("x", bad as never)).toThrow(/^not a shard: .* \(index must be an integer in 0..count-1, count in 1..1000000\)$/);
    }
    expect(() => inShard(3 as never, { index: 0, count: 2 })).toThrow("shard: the input's relative path must be a string, got number");
  });
});

describe("parseShard", () => {
  test("I/N counted from 0", () => {
    expect(parseShard("0/4")).toEqual({ index: 0, count: 4 });
    expect(parseShard("3/4")).toEqual({ index: 3, count: 4 });
    expect(parseShard("0/1")).toEqual({ index: 0, count: 1 });
    expect(parseShard(`${MAX_SHARDS - 1}/${MAX_SHARDS}`)).toEqual({ index: MAX_SHARDS - 1, count: MAX_SHARDS });
  });

  test.each([
    ["4/4", 'shard 4/4: needs 0 ≤ I < N (shards are counted from 0: 0/4 … 3/4; Slurm: --array=0-3)'],
    ["1/0", "shard 1/0: the count N must be in 1..1000000"],
    ["0/1000001", "shard 0/1000001: the count N must be in 1..1000000"],
    ["-1/4", 'shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got "-1/4"'],
    ["1 / 4", 'shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got "1 / 4"'],
    ["1/4/2", 'shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got "1/4/2"'],
    ["1.0/4", 'shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got "1.0/4"'],
    ["0x1/4", 'shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got "0x1/4"'],
    ["", 'shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got ""'],
    ["99999999999/99999999999", 'shard must be I/N (shard I of N, counted from 0: 0/4 … 3/4), got "99999999999/99999999999"'],
  ])("%s is refused", (text, message) => {
    expect(() => parseShard(text)).toThrow(message);
  });
});
