// Tar archives as collection inputs: what Python's tarfile (img2dataset / webdataset) and GNU tar write is listed as
// tarfile lists it (test/golden/tar/, tools/golden/make_tar_goldens.py); headers are read at their offsets, never
// the whole file; every malformed or truncated archive is one line naming the file and the problem.
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { BLOCK, endBlocks, endOffset, fixChecksum, headerOffsets, member, paxHeader, paxRecord, tarHeader } from "../fuzz/formats/tar.js";
import { concat, utf8 } from "../fuzz/mutate.js";
import { listTar, readTarEntry, TarError, type TarEntry } from "../src/collection/tar.js";

const GOLDEN = "test/golden/tar";
const expected = JSON.parse(readFileSync(join(GOLDEN, "expected.json"), "utf8")) as Record<
  string,
  { bytes: number; members: (TarEntry & { sha256: string })[] }
>;
const dir = mkdtempSync(join(tmpdir(), "clip-ts-tar-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(bytes: Uint8Array): string {
  const p = join(dir, `t${n++}.tar`);
  writeFileSync(p, bytes);
  return p;
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const tar = (...parts: Uint8Array[]) => concat(...parts, endBlocks());
/** The TarError of listTar, checked to be one line that names the file. */
function refusal(bytes: Uint8Array, limits?: Parameters<typeof listTar>[1]): string {
  const p = file(bytes);
  try {
    listTar(p, limits);
  } catch (e) {
    expect(e).toBeInstanceOf(TarError);
    const m = (e as Error).message;
    expect(m.startsWith(`${p}: `)).toBe(true);
    expect(m).not.toContain("\n");
    return m.slice(p.length + 2);
  }
  throw new Error("listTar accepted it");
}

describe("archives written by Python's tarfile and GNU tar", () => {
  test("the goldens cover pax mtimes and paths, GNU long names, ustar prefixes, links, directories and duplicates", () => {
    expect(Object.keys(expected).sort()).toEqual(
      ["gnutar_gnu.tar", "gnutar_posix.tar", "python_gnu.tar", "python_pax_unicode.tar", "python_ustar.tar", "webdataset_pax.tar"],
    );
    expect(expected["webdataset_pax.tar"]!.members.map((m) => m.name).slice(0, 3)).toEqual(["000000000.jpg", "000000000.txt", "000000000.json"]);
    expect(expected["webdataset_pax.tar"]!.members[1]!.mtimeMs).toBe(1700000000375);
    expect(expected["python_gnu.tar"]!.members.map((m) => m.name)).toEqual([expect.stringMatching(/^deep\/d{60}\/n{80}\/000000000.jpg$/), "a.png", "c.txt", "b.txt"]);
    expect(expected["python_ustar.tar"]!.members[0]!.name.length).toBeGreaterThan(100);
    expect(expected["python_pax_unicode.tar"]!.members[0]!.name).toMatch(/^фото\/(été-){40}снимок.png$/);
  });

  test.each(Object.keys(expected))("%s: listed as tarfile lists it, each member's bytes read at its offset", (name) => {
    const path = join(GOLDEN, name);
    const want = expected[name]!;
    const got = listTar(path);
    expect(got).toEqual(want.members.map(({ sha256: _, ...m }) => m));
    for (const [i, e] of got.entries()) expect(sha(readTarEntry(path, e))).toBe(want.members[i]!.sha256);
  });

  test("webdataset members: every image decodes", async () => {
    const { decodeImage } = await import("../src/image/index.js");
    const path = join(GOLDEN, "webdataset_pax.tar");
    const images = listTar(path).filter((e) => /\.(jpg|png)$/.test(e.name));
    expect(images.length).toBe(4);
    for (const e of images) expect(decodeImage(readTarEntry(path, e)).width).toBeGreaterThan(7);
  });

  test("cut anywhere before its end marker, every golden is refused as truncated; cut after it, it lists the same", () => {
    for (const name of ["webdataset_pax.tar", "python_gnu.tar", "gnutar_posix.tar"]) {
      const bytes = new Uint8Array(readFileSync(join(GOLDEN, name)));
      const end = endOffset(bytes);
      const want = listTar(join(GOLDEN, name));
      const cuts = new Set<number>([0, 1, 511, 512, 513, end - 1, end, end + 1, end + BLOCK - 1, end + BLOCK, bytes.length - 1]);
      for (const h of headerOffsets(bytes)) for (const d of [0, 1, 100, 124, 148, 156, 511, 512, 600, 1024]) cuts.add(h + d);
      for (let c = 0; c < end; c += 97) cuts.add(c);
      let refused = 0;
      for (const cut of [...cuts].filter((c) => c >= 0 && c < bytes.length)) {
        if (cut < end + BLOCK) {
          // short of one whole end block
          expect(refusal(bytes.subarray(0, cut)), `${name} cut at ${cut}`).toMatch(/^(truncated tar: |empty file)/);
          refused++;
        } else expect(listTar(file(bytes.subarray(0, cut)))).toEqual(want);
      }
      expect(refused).toBeGreaterThan(50);
    }
  });
});

describe("only the headers are read", () => {
  test("a 6 GiB sparse member is listed without reading it: little time, no memory", () => {
    const p = join(dir, "sparse.tar");
    const size = 6 * 2 ** 30 + 3;
    writeFileSync(p, concat(member("small.jpg", utf8("abc")), tarHeader({ name: "huge.bin", size })));
    const fd = openSync(p, "r+");
    const dataEnd = 3 * BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    const tail = concat(member("after.png", utf8("png!")), endBlocks());
    writeSync(fd, tail, 0, tail.length, dataEnd);
    closeSync(fd);
    const before = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    const list = listTar(p);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(2 ** 20);
    expect(list.map((e) => [e.name, e.offset, e.size])).toEqual([["small.jpg", 512, 3], ["huge.bin", 3 * BLOCK, size], ["after.png", dataEnd + BLOCK, 4]]);
    expect(new TextDecoder().decode(readTarEntry(p, list[2]!))).toBe("png!");
    expect(() => readTarEntry(p, list[1]!)).toThrow(`${p}: member "huge.bin" is 6442450947 bytes, more than the limit of 1073741824 (maxBytes)`);
    expect(readTarEntry(p, list[0]!, { maxBytes: 3 }).length).toBe(3);
    expect(() => readTarEntry(p, list[0]!, { maxBytes: 2 })).toThrow(/more than the limit of 2 \(maxBytes\)/);
    // GNU's base-256 size field (8 GiB and more)
    const big = tarHeader({ name: "big", size: 9 * 2 ** 30 });
    expect(big[124]).toBe(0x80);
    expect(refusal(concat(big, endBlocks()))).toBe(`truncated tar: member "big" at offset 0 claims 9663676416 bytes, past the end of the 1536-byte file`);
  });

  test("a member shrunk away after listing, or an entry that is not one, is a one-line error", () => {
    const p = file(tar(member("a.jpg", new Uint8Array(2000))));
    const [e] = listTar(p);
    truncateSync(p, 1500);
    expect(() => readTarEntry(p, e!)).toThrow(`${p}: member "a.jpg" at 512+2000 is past the end of the 1500-byte file (it changed since it was listed?)`);
    expect(() => readTarEntry(p, { name: "x", offset: -1, size: 3, mtimeMs: 0 })).toThrow(`${p}: not a tar entry (offset -1, size 3)`);
    expect(() => readTarEntry(join(dir, "missing.tar"), e!)).toThrow(`${join(dir, "missing.tar")}: cannot open: no such file`);
  });
});

describe("headers: pax, GNU long names, ustar prefixes, types", () => {
  test("pax path, size and fractional mtime apply to the next member only; global headers give mtime, never a path", () => {
    const p = file(tar(
      paxHeader(paxRecord("mtime", "1700000000.5") + paxRecord("path", "long/ü/".repeat(30) + "x.jpg") + paxRecord("comment", "ignored")),
      member("short", utf8("data")),
      member("next.png", utf8("x"), { mtime: 7 }),
      paxHeader(paxRecord("mtime", "12.25") + paxRecord("path", "nope"), "g"),
      member("g.png", utf8("y"), { mtime: 9 }),
      paxHeader(paxRecord("size", "5")),
      tarHeader({ name: "sized.txt", size: 0 }),
      concat(utf8("12345"), new Uint8Array(BLOCK - 5)),
    ));
    expect(listTar(p)).toEqual([
      { name: `${"long/ü/".repeat(30)}x.jpg`, offset: 3 * BLOCK, size: 4, mtimeMs: 1700000000500 },
      { name: "next.png", offset: 5 * BLOCK, size: 1, mtimeMs: 7000 },
      { name: "g.png", offset: 9 * BLOCK, size: 1, mtimeMs: 12250 },
      { name: "sized.txt", offset: 13 * BLOCK, size: 5, mtimeMs: 12250 },
    ]);
  });

  test("GNU long names, ustar prefixes (not in GNU headers), '7' files; links, directories, devices skipped", () => {
    const long = "n".repeat(300);
    const p = file(tar(
      member("././@LongLink", utf8(`${long}\0`), { type: "L", gnu: true }),
      member("truncated-name", utf8("1"), { gnu: true }),
      member("img.png", utf8("2"), { prefix: "some/dir" }),
      member("gnu.png", utf8("3"), { prefix: "atime-junk", gnu: true }),
      member("contig.jpg", utf8("4"), { type: "7" }),
      tarHeader({ name: "dir/", size: 999, type: "5" }),
      tarHeader({ name: "l", size: 999, type: "2", linkname: "img.png" }),
      tarHeader({ name: "h", size: 5, type: "1", linkname: "img.png" }),
      member("unknown-type", utf8("skip me"), { type: "S" }),
      tarHeader({ name: "old-style-dir/", size: 0, type: "\0" }),
      member("last.jpg", utf8("5")),
    ));
    expect(listTar(p).map((e) => e.name)).toEqual([long, "some/dir/img.png", "gnu.png", "contig.jpg", "last.jpg"]);
  });

  test("old signed-byte checksums and v7 headers (no magic, no prefix) are read, as tarfile reads them", () => {
    const v7 = tarHeader({ name: "v7.png", size: 1, prefix: "not-a-prefix" });
    v7.fill(0, 257, 265);
    fixChecksum(v7);
    expect(listTar(file(tar(v7, new Uint8Array(BLOCK))))[0]!.name).toBe("v7.png");
    const s = tarHeader({ name: "s", size: 0 });
    s[500] = 0xf0; // unsigned sum +0xf0, signed sum −0x10
    let signed = 0;
    for (let i = 0; i < BLOCK; i++) signed += i >= 148 && i < 156 ? 0x20 : s[i]! > 127 ? s[i]! - 256 : s[i]!;
    const withSum = (v: number) => {
      const b = s.slice();
      b.set(utf8(`${v.toString(8).padStart(6, "0")}\0 `), 148);
      return tar(b);
    };
    expect(listTar(file(withSum(signed)))[0]!.name).toBe("s");
    expect(refusal(withSum(signed + 1))).toMatch(/^header at offset 0: checksum \d+ does not match/);
  });
});

describe("malformed archives: one line naming the file and the problem", () => {
  const ok = member("a.jpg", utf8("hello"));
  const edit = (f: (h: Uint8Array) => void, fix = true) => {
    const h = ok.slice();
    f(h);
    if (fix) fixChecksum(h);
    return tar(h);
  };
  const cases: [string, () => Uint8Array, string | RegExp][] = [
    ["an empty file", () => new Uint8Array(0), "empty file, not a tar archive"],
    ["a JPEG", () => new Uint8Array(600).fill(0xd8), /^header at offset 0: (unreadable checksum field|checksum)/],
    ["no end marker", () => ok, "truncated tar: ends at byte 1024 without tar's end-of-archive blocks"],
    ["a header cut short", () => concat(ok, ok.subarray(0, 100)), "truncated tar: a header at offset 1024 ends at byte 1124 of the file"],
    ["a corrupt checksum", () => edit((h) => (h[0] = 0x62), false), /^header at offset 0: checksum \d+ does not match the header's \d+ \(corrupt\)$/],
    ["a checksum of letters", () => edit((h) => h.set(utf8("zz"), 148), false), "header at offset 0: unreadable checksum field (not a tar archive, or corrupt)"],
    ["an unknown magic", () => edit((h) => h.set(utf8("ustaR"), 257)), 'header at offset 0: unknown format (magic "ustaR\\u0000")'],
    ["a size of letters", () => edit((h) => h.set(utf8("12x"), 124)), "header at offset 0: unreadable size field"],
    ["a negative base-256 size", () => edit((h) => h.fill(0xff, 124, 136)), "header at offset 0: unreadable size field"],
    ["a size past the end", () => edit((h) => h.set(utf8("00000077777"), 124)), 'truncated tar: member "a.jpg" at offset 0 claims 32767 bytes, past the end of the 2048-byte file'],
    ["an mtime of letters", () => edit((h) => h.set(utf8("abc"), 136)), 'member "a.jpg" at offset 0: unreadable mtime field'],
    ["a name that is not UTF-8", () => edit((h) => (h[1] = 0xc3)), "header at offset 0: member name is not valid UTF-8"],
    ["an empty name", () => edit((h) => h.fill(0, 0, 100)), "header at offset 0: a file with an empty name"],
    ["a long name with nothing after it", () => tar(member("L", utf8("x\0"), { type: "L" })), "a long-name or pax header at the end, with no member after it"],
    ["a pax header with nothing after it", () => tar(paxHeader(paxRecord("path", "x"))), "a long-name or pax header at the end, with no member after it"],
    ["a GNU long name over the limit", () => tar(member("L", new Uint8Array(5000).fill(0x61), { type: "L" }), ok), "header at offset 0: GNU long name of 5000 bytes, more than the limit of 4097 (maxNameBytes)"],
    ["a GNU long name past the end", () => concat(tarHeader({ name: "L", size: 3000, type: "L" }), new Uint8Array(1024)), "truncated tar: GNU long name at offset 0 needs 3000 bytes, the file ends at byte 1536"],
    ["a pax path over the limit", () => tar(paxHeader(paxRecord("path", "p".repeat(5000))), ok), "pax header at offset 0: path of 5000 bytes, more than the limit of 4096 (maxNameBytes)"],
    ["a pax header over the limit", () => tar(paxHeader(paxRecord("comment", "c".repeat(2 << 20))), ok), /^header at offset 0: pax header of 20971\d\d bytes, more than the limit of 1048576 \(maxPaxBytes\)$/],
    ["a pax record with a lying length", () => tar(paxHeader("99 path=x\n"), ok), 'pax header at offset 0: record at byte 0 has a bad length 99'],
    ["a pax record without a length", () => tar(paxHeader("path=x\n"), ok), 'pax header at offset 0: record at byte 0 does not start with "<length> "'],
    ["a pax record without a key", () => tar(paxHeader(paxRecord("", "x")), ok), 'pax header at offset 0: record at byte 0 has no "key="'],
    ["a pax size that is negative", () => tar(paxHeader(paxRecord("size", "-1")), ok), 'pax header at offset 0: size "-1" is not a non-negative integer'],
    ["a pax size past the end", () => tar(paxHeader(paxRecord("size", "99999")), ok), 'truncated tar: member "a.jpg" at offset 1024 claims 99999 bytes, past the end of the 3072-byte file'],
    ["a pax mtime in hex", () => tar(paxHeader(paxRecord("mtime", "0x10")), ok), 'pax header at offset 0: mtime "0x10" is not a number of seconds'],
    ["a pax path that is not UTF-8", () => tar(member("PaxHeader", Uint8Array.from([...utf8("10 path="), 0xff, 0x0a]), { type: "x" }), ok), "pax header at offset 0: path is not valid UTF-8"],
    ["a NUL inside pax records", () => tar(paxHeader("6 a=b\n\0x"), ok), "pax header at offset 0: a NUL inside the records at byte 6"],
  ];
  test.each(cases)("%s", (_, make, message) => {
    const m = refusal(make());
    if (typeof message === "string") expect(m).toBe(message);
    else expect(m).toMatch(message);
  });

  test("a directory, a missing file, bad limits", () => {
    expect(() => listTar(dir)).toThrow(`${dir}: is a directory, not a tar archive`);
    expect(() => listTar(join(dir, "nope.tar"))).toThrow(`${join(dir, "nope.tar")}: cannot open: no such file`);
    const p = file(tar(member("a", utf8("1"))));
    expect(() => listTar(p, { maxEntries: 0 })).toThrow(`${p}: tar limit maxEntries must be a positive integer or Infinity, got 0`);
    expect(() => listTar(p, { maxEntrys: 3 } as never)).toThrow(`${p}: unknown tar limit "maxEntrys" (known: maxEntries, maxNameBytes, maxPaxBytes)`);
    expect(listTar(p, { maxEntries: Infinity }).length).toBe(1);
  });

  test("entry count and name lengths are bounded: floods of headers stop at the limit", () => {
    const flood = tar(...Array.from({ length: 50 }, (_, i) => member(`f${i}.jpg`, new Uint8Array(0))));
    expect(listTar(file(flood), { maxEntries: 50 }).length).toBe(50);
    expect(refusal(flood, { maxEntries: 49 })).toBe("more than 49 headers (maxEntries)");
    // long-name and pax headers count too: a flood of them alone cannot run unbounded
    const lnames = tar(...Array.from({ length: 30 }, () => member("L", utf8("x\0"), { type: "L" })), member("a", utf8("1")));
    expect(refusal(lnames, { maxEntries: 20 })).toBe("more than 20 headers (maxEntries)");
    expect(refusal(tar(member("L", utf8(`${"n".repeat(40)}\0`), { type: "L" }), member("a", utf8("1"))), { maxNameBytes: 30 })).toBe(
      "header at offset 0: GNU long name of 41 bytes, more than the limit of 31 (maxNameBytes)",
    );
    expect(refusal(tar(member("n".repeat(40), utf8("1"))), { maxNameBytes: 30 })).toBe("header at offset 0: name of 40 bytes, more than the limit of 30 (maxNameBytes)");
  });
});
