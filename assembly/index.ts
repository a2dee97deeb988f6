// The module's exports: plain functions over byte pointers into the memory imported from JS (env.memory). No
// static data and no allocation here, so several instances can share one memory (src/backend/wasm.ts). Each
// kernel takes its share of the work as a range of independent output units (last arguments).
export { expfArray, activateArray } from "./expf";
export { erfArray } from "./erf";
export { gemm, packLinearWeights, packRows } from "./gemm";
export { conv2dImage } from "./conv";
export { attention } from "./attention";
export { layerNorm, avgPool2d } from "./norm";
export { simdPeak } from "./peak";
