// The module's exports: plain functions over byte pointers into the memory imported from JS (env.memory). No
// static data and no allocation here, so several instances can share one memory (src/backend/wasm.ts). Every
// kernel ends with (tid, u0, u1): the calling thread's index and its share of the work, the independent output
// units [u0, u1). scripts/gen-kernels.mjs reads this file and the kernels' signatures to write
// src/backend/kernels.generated.ts, the typed binding the backend calls them through.
export { linear, packLinearWeights, packRows, NR, MR } from "./linear";
export { packLinearWeightsF16, packRowsF16, packHalfPanels, packHalfPatches, linearHalf } from "./linear_f16";
export { conv2d } from "./conv2d";
export { attention } from "./attention";
export { layerNorm } from "./layer_norm";
export { avgPool2d } from "./pool";
export { expfArray } from "./exp";
export { erfArray } from "./erf";
export { activateArray, ACT_NONE, ACT_RELU, ACT_QUICKGELU, ACT_GELU } from "./activations";
export { linearInt8, quantizeRowsInt8, packLinearWeightsInt8, QNR, QMR } from "./linear_int8";
export { simdPeak } from "./peak";
