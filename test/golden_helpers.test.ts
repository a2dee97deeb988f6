import { expect, test } from "vitest";
import { expectBits } from "./helpers/golden.js";

test("expectBits passes on the same bits and names the first difference otherwise", () => {
  expectBits(Float32Array.of(1, NaN, -0), Float32Array.of(1, NaN, -0));
  const next = new Float32Array(new Uint32Array([0x40000001]).buffer)[0]!;
  expect(() => expectBits(Float32Array.of(1, 2, 3, 4), Float32Array.of(1, next, 3, 5), "encodeImage"))
    .toThrow(/encodeImage: 2 of 4 differ; the first: expected '\[1\] 2 \(0x40000000\)' to be '\[1\] 2\.0000002\d* \(0x40000001\)'/);
  expect(() => expectBits(Float32Array.of(0), Float32Array.of(-0))).toThrow(/\(0x00000000\).*\(0x80000000\)/);
  expect(() => expectBits(new Float32Array(2), new Float32Array(3))).toThrow(/length/);
});
