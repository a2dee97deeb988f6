import type { Backend } from "../../src/backend/backend.js";
import type { StateDict, Tensor } from "../../src/tensor.js";

/** A state dict of the right shapes and no values: enough to build a model and check its keys. */
export function shapeOnlyStateDict(entries: [string, number[], ...unknown[]][]): StateDict {
  return new Map(entries.map(([k, shape]) => [k, { data: new Float32Array(0), shape }]));
}

/** Records what the model prepares; runs nothing. */
export class RecordingBackend implements Backend {
  readonly name = "recording";
  linears: [number, number][] = [];
  convs: number[][] = [];
  prepareLinear(w: Tensor) {
    this.linears.push([w.shape[0], w.shape[1]]);
    return { N: w.shape[0], K: w.shape[1] };
  }
  prepareConv2d(w: Tensor, _b: Tensor | null, stride: number, padding: number) {
    this.convs.push([...w.shape, stride, padding]);
    const [O, C, kh, kw] = w.shape;
    return { O, C, kh, kw, stride, padding };
  }
  linear(): Tensor { throw new Error("shape only"); }
  conv2d(): Tensor { throw new Error("shape only"); }
  layerNorm(): Tensor { throw new Error("shape only"); }
  attention(): Tensor { throw new Error("shape only"); }
  avgPool2d(): Tensor { throw new Error("shape only"); }
  dispose() {}
}
