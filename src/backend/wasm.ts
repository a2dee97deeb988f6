import type { Activation } from "../kernels/activations.js";
import { numel, shapeString, storedOf, tensor, type StoredBytes, type Tensor } from "../tensor.js";
import type { Backend, Conv2dWeights, LinearWeights, Precision, WeightPrecision } from "./backend.js";
import { scaleRows } from "../kernels/batch_norm.js";
import { writeHalfBits } from "./half.js";
import {
  checkAttention, checkAvgPool2d, checkConv2d, checkLayerNorm, checkLinear, checkPrepareConv2d, checkPrepareLinear, checkTensor,
} from "./validate.js";
import {
  ARITY, CONSTANT_NAMES, KERNEL_NAMES, POSITIONAL, type ConstantName, type KernelArgs, type KernelExports, type KernelName,
} from "./kernels.generated.js";
import { CTRL, type WasmPlatform, type WorkerHandle } from "./wasm_platform.js";

export type { WasmPlatform } from "./wasm_platform.js";

const PAGE = 65536;
/** Bytes below the heap: the control block lives here (0 stays unused: the kernels read 0 as "no tensor"). */
const HEAP_BASE = 4096;
/** Below HEAP_BASE, after the control block: simdPeak's two operand vectors, then a float per thread. */
const PEAK_OPERANDS = 2048;
/** Upper bound of one im2col chunk, so a large convolution does not need all its columns at once. */
const COL_CHUNK_BYTES = 32 << 20;
/** The op results of one scoped forward pass kept for the next (64 MiB: a ViT-B/32 image takes ~23 MB at batch 1). */
const RESULTS_FLOATS = 16 << 20;
const MAX_THREADS = 8;
/** Below this many multiply-adds (or elements) a kernel runs on the calling thread: waking the workers costs more.
 *  A unit's bits never depend on the thread that computes it, so this changes only the time. */
const MIN_PARALLEL_WORK = 1 << 20;
/** Work of one element of a memory-bound kernel (copy, normalise, pool) in multiply-adds: the SIMD GEMM does about
 *  this many in the time one float goes through memory. */
const ELEMENT_WORK = 8;
/** The share of a weights "fp16" linear's halves, zero or subnormal, past which it keeps no patch list (4 bytes each):
 *  at most 1/8 of the halves' memory. */
const HALF_PATCHES_MAX = 1 / 16;

/** How long a failed pool waits for its living workers to leave (they finish one unit of work first). */
const ACK_TIMEOUT_MS = 10_000;
/** Where a platform cannot see a worker's exit during a call: the silence, once every unit has been taken, after
 *  which the workers still on the job are taken for dead; at least STALL_CHUNKS times this thread's longest chunk.
 *  Ten times that where it can (a safety net only). */
const STALL_MS = 10_000;
const STALL_CHUNKS = 50;

/** The exported constant (assembly/activations.ts) that codes each activation in a kernel's `act` argument. */
const ACT_CODE = {
  none: "ACT_NONE", relu: "ACT_RELU", quickgelu: "ACT_QUICKGELU", gelu: "ACT_GELU",
} as const satisfies Record<Activation, ConstantName>;

/** half: the panels hold f16 (weights "fp16"), widened inside the GEMM; patches: their zero and subnormal halves
 *  (halfPatches), or 0. */
interface WasmLinear extends LinearWeights { ptr: number; bias: number; half: boolean; patches: number }
/** int8 weights: int16 k-pairs in panels (assembly/linear_int8.ts), a scale per column, padded to whole panels. */
interface WasmLinearInt8 extends LinearWeights { int8: true; ptr: number; scales: number; bias: number }
/** ptr: the packed f32 row tiles; or, with weights "fp16", half: the f16 weights [O, K] as stored, and scale (or 0),
 *  widened and scaled into row tiles before each convolution (packRowsF16). */
interface WasmConv extends Conv2dWeights { ptr: number; bias: number; half: number; scale: number }

/** No half is infinite or NaN (exponent bits all set). */
function finiteHalves(h: Uint16Array): boolean {
  for (let i = 0; i < h.length; i++) if ((h[i]! & 0x7c00) === 0x7c00) return false;
  return true;
}

/** What the backend needs of an instance: its kernels, and the constants it exports, read once. */
interface Module {
  exports: KernelExports;
  /** Columns per packed panel and rows per packed tile (assembly/linear.ts). */
  NR: number;
  MR: number;
  act: Record<Activation, number>;
}

export interface WasmBackendOptions {
  /** Threads including the calling one (default: the available parallelism, at most 8). 1: no workers. */
  threads?: number;
  /** Where the module and the workers come from (default: Node's fs and worker_threads). */
  platform?: WasmPlatform;
  /** Kernels with less work (multiply-adds or elements) run on the calling thread alone (default 2^20). */
  minParallelWork?: number;
  /** "fp16": linear weights stay f16 in wasm memory (half the memory, the same bits); default "fp32". */
  weights?: WeightPrecision;
  /** Floats of op results a scoped forward pass keeps for the next (default 2^24, 64 MiB; see scoped). */
  scopedResultFloats?: number;
}

export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  // loaded on demand, so that a browser bundle with its own platform never pulls in node: modules
  const platform = options.platform ?? (await import("./node_wasm.js")).nodePlatform;
  const threads = options.threads ?? Math.min(MAX_THREADS, platform.defaultThreads());
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new RangeError(`createWasmBackend: threads must be an integer in [1, 256], got ${threads}`);
  }
  const shared = threads > 1;
  const module = await platform.loadModule(shared);
  let memory: WebAssembly.Memory;
  try {
    memory = shared
      ? new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true })
      : new WebAssembly.Memory({ initial: 1 });
  } catch (e) {
    throw memoryError(`a ${shared ? "shared memory of up to 4 GiB" : "memory"}, 64 KiB to start`, e);
  }
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const exports = checkExports(instance.exports);
  const constant = (name: ConstantName): number => exports[name].value;
  const act = Object.fromEntries(Object.entries(ACT_CODE).map(([a, c]) => [a, constant(c)])) as Record<Activation, number>;
  const wasm: Module = { exports, NR: constant("NR"), MR: constant("MR"), act };
  const init = { module, memory, ctrl: CTRL.OFFSET, kernels: KERNEL_NAMES };
  const startWorkers = () => platform.startWorkers(init, threads - 1);
  const workers = shared ? await startWorkers() : [];
  const backend = new WasmBackend(wasm, memory, workers, options.minParallelWork ?? MIN_PARALLEL_WORK, shared ? startWorkers : null, options.scopedResultFloats ?? RESULTS_FLOATS);
  backend.weights = options.weights ?? "fp32";
  return backend;
}

/** The instance's exports, if they are the kernels and constants kernels.generated.ts was written from. */
function checkExports(exports: WebAssembly.Exports): KernelExports {
  const wrong = [
    ...KERNEL_NAMES.filter((k) => typeof exports[k] !== "function" || (exports[k] as () => void).length !== ARITY[k]),
    ...CONSTANT_NAMES.filter((c) => !(exports[c] instanceof WebAssembly.Global)),
  ];
  if (wrong.length > 0) {
    throw new Error(
      `wasm backend: the module's ${wrong.join(", ")} are not those of src/backend/kernels.generated.ts: it was built ` +
      `from other sources (npm run build:wasm)`,
    );
  }
  return exports as unknown as KernelExports;
}

/** V8 reserves several GiB of address space for any wasm memory, so a `ulimit -v` can refuse even its first page. */
function memoryError(what: string, e: unknown): Error {
  if (!(e instanceof RangeError)) return e as Error;
  return new RangeError(
    `wasm backend: could not allocate wasm memory (${what}): ${e.message}; is the address space limited (ulimit -v)? ` +
    `The ts backend needs no wasm memory: --backend ts, or { backend: "ts" }`,
  );
}

/**
 * The SIMD backend: weights live in wasm memory (packed for the GEMM) from prepare on; each op copies its inputs
 * into a scratch arena above them, runs, and copies the output into a new Tensor. With threads, every kernel
 * call is cut into ranges of independent output units (GEMM column panels, heads, rows, planes; never a
 * reduction) that the workers and this thread run at once, so the bits do not depend on the thread count.
 */
export class WasmBackend implements Backend {
  readonly name = "wasm";
  readonly threads: number;
  /** How linear weights are kept (conv weights are f32 either way); set before the first prepare. */
  weights: WeightPrecision = "fp32";
  private top = HEAP_BASE; // end of the weights; the per-op arena starts here
  private arena = HEAP_BASE;
  private views: { buffer: ArrayBufferLike; f32: Float32Array; i32: Int32Array; f64: Float64Array } | null = null;
  private disposed = false;
  /** The current op's result in the arena (reserveOutput), and its JS array once a parallel run has made it. */
  private output: { p: number; n: number; early: Float32Array | null } | null = null;
  /** Inside scoped(): the op results' array, reused by every forward pass (see scoped), and how much of it is taken. */
  private results: { data: Float32Array; used: number; wanted: number; depth: number } | null = null;
  /** A new pool being started after a worker died; until it is up, every kernel runs on this thread alone. */
  private restarting: Promise<void> | null = null;
  /** Called by name on this thread (the workers call their own instances' exports). */
  private readonly exports: KernelExports;
  private readonly NR: number;
  private readonly MR: number;
  private readonly act: Record<Activation, number>;

  constructor(
    wasm: Module, private readonly memory: WebAssembly.Memory, private workers: WorkerHandle[],
    private readonly minParallelWork = MIN_PARALLEL_WORK,
    /** Starts a fresh set of workers on the same module and memory (null: no threads). */
    private readonly startWorkers: (() => Promise<WorkerHandle[]>) | null = null,
    private readonly resultFloats = RESULTS_FLOATS,
  ) {
    this.threads = workers.length + 1;
    ({ exports: this.exports, NR: this.NR, MR: this.MR, act: this.act } = wasm);
  }

  prepareLinear(weight: Tensor, biasIn: Tensor | null, precision: Precision = "f32"): LinearWeights {
    this.live();
    const { w, b } = checkPrepareLinear(weight, biasIn, precision);
    const [N, K] = w.shape;
    if (precision === "int8") return this.prepareLinearInt8(w, b);
    const { NR } = this, panels = Math.ceil(N / NR);
    let bias = 0;
    if (b) {
      bias = this.alloc(panels * NR * 4);
      const padded = new Float32Array(panels * NR); // the GEMM reads whole panels of bias
      padded.set(b.data);
      this.write(bias, padded);
    }
    if (this.weights === "fp16") {
      const ptr = this.alloc(panels * NR * K * 2), special = this.reserve(1), counts = this.reserve(panels);
      this.view().i32[special >>> 2] = 0;
      const raw = this.staging(N * K * 2);
      writeHalfBits("prepareLinear: weight", w, this.bytes(raw, N * K * 2));
      this.run("packHalfPanels", { w: raw, N, K, dst: ptr, special, counts }, 0, panels);
      if (this.view().i32[special >>> 2] === 0) {
        const prepared: WasmLinear = { N, K, ptr, bias, half: true, patches: this.halfPatches(ptr, K, counts, panels) };
        return prepared;
      }
      this.top = this.arena = ptr; // an infinite or NaN weight: this tensor is kept as f32 (the same bits)
    }
    const ptr = this.alloc(panels * NR * K * 4);
    // the weights as stored (the file's bytes, read straight into the staging region), else as f32; packed from there
    const stored = storedOf(w);
    if (stored) {
      const raw = this.pushStored(stored);
      this.run(stored.dtype === "F16" ? "packLinearWeightsF16" : "packLinearWeights", { w: raw, N, K, dst: ptr }, 0, panels);
    } else {
      this.run("packLinearWeights", { w: this.stage(w.data), N, K, dst: ptr }, 0, panels);
    }
    const prepared: WasmLinear = { N, K, ptr, bias, half: false, patches: 0 };
    return prepared;
  }

  /**
   * The list of a weight's zero and subnormal halves that linearHalf patches after its integer widening (see
   * assembly/linear_f16.ts): u32 starts per panel, then the f32 panel indices. 0 (the float widening, slower on
   * subnormal halves) past HALF_PATCHES_MAX of the weights, so the list never costs more than 1/8 of the halves.
   */
  private halfPatches(panels: number, K: number, counts: number, n: number): number {
    const starts = new Uint32Array(n + 1);
    for (let p = 0, i32 = this.view().i32; p < n; p++) starts[p + 1] = starts[p]! + i32[(counts >>> 2) + p]!;
    if (starts[n]! > HALF_PATCHES_MAX * n * this.NR * K) return 0;
    const ptr = this.alloc((n + 1 + starts[n]!) * 4);
    this.view().i32.set(new Int32Array(starts.buffer), ptr >>> 2);
    this.run("packHalfPatches", { panels, K, starts: ptr, list: ptr + (n + 1) * 4 }, 0, n);
    return ptr;
  }

  /** Quantized and packed inside wasm (packLinearWeightsInt8, the bits of quantizeLinearWeights and
   *  packLinearWeightsInt8Js) from the weights staged as stored above the panels: no JS copy of the weights. */
  private prepareLinearInt8(w: Tensor, b: Tensor | null): WasmLinearInt8 {
    const [N, K] = w.shape;
    const QNR = this.exports.QNR.value as number, panels = Math.ceil(N / QNR), pairs = (K + 1) >> 1;
    const ptr = this.alloc(panels * pairs * QNR * 4);
    const scales = this.alloc(panels * QNR * 4);
    const bias = b ? this.alloc(panels * QNR * 4) : 0;
    if (b) {
      const { f32 } = this.view();
      f32.fill(0, bias >>> 2, (bias >>> 2) + panels * QNR);
      f32.set(b.data, bias >>> 2);
    }
    const stored = storedOf(w), half = stored?.dtype === "F16" ? 1 : 0;
    const raw = stored ? this.pushStored(stored) : this.stage(w.data);
    const scratch = half ? this.reserve(this.threads * ((K + 3) & ~3)) : 0;
    this.run("packLinearWeightsInt8", { w: raw, half, N, K, dst: ptr, scales, scratch }, 0, panels, N * K * ELEMENT_WORK);
    return { N, K, int8: true, ptr, scales, bias };
  }

  private linearInt8(x: Tensor, w: WasmLinearInt8, act: Activation, residual: Tensor | null, shape: number[], M: number): Tensor {
    const { K, N } = w;
    const QNR = this.exports.QNR.value as number, QMR = this.exports.QMR.value as number;
    const tiles = Math.ceil(M / QMR), pairs = (K + 1) >> 1;
    this.arena = this.top;
    const xp = this.push(x.data);
    const rp = residual ? this.push(residual.data) : 0;
    const yp = this.reserveOutput(M * N);
    const packed = this.reserve(tiles * QMR * pairs), sx = this.reserve(tiles * QMR);
    this.run("quantizeRowsInt8", { x: xp, M, K, dst: packed, scales: sx }, 0, tiles, M * K * ELEMENT_WORK);
    this.run("linearInt8", {
      x: packed, sx, w: w.ptr, sw: w.scales, b: w.bias, y: yp, M, K, N, act: this.act[act], residual: rp,
    }, 0, M > 0 ? Math.ceil(N / QNR) : 0, M * K * N);
    return tensor(shape, this.takeOutput());
  }

  prepareConv2d(weight: Tensor, biasIn: Tensor | null, stride: number, padding: number, scaleIn: Float32Array | null = null): Conv2dWeights {
    this.live();
    const { w, b } = checkPrepareConv2d(weight, biasIn, stride, padding, scaleIn);
    const [O, C, kh, kw] = w.shape;
    const { MR } = this, K = C * kh * kw, tiles = Math.ceil(O / MR);
    let bias = 0;
    if (b) {
      bias = this.alloc(O * 4);
      this.write(bias, b.data);
    }
    const stored = storedOf(w);
    if (this.weights === "fp16") {
      // kept f16, with the scale: widened and scaled at every convolution
      const first = this.top, scale = scaleIn ? this.alloc(O * 4) : 0;
      if (scaleIn) this.write(scale, scaleIn);
      const ptr = this.alloc(O * K * 2);
      writeHalfBits("prepareConv2d: weight", w, this.bytes(ptr, O * K * 2));
      if (finiteHalves(new Uint16Array(this.memory.buffer, ptr, O * K))) {
        const prepared: WasmConv = { O, C, kh, kw, stride, padding, ptr: 0, bias, half: ptr, scale };
        return prepared;
      }
      this.top = this.arena = first; // an infinite or NaN weight: this tensor is kept as f32 (the same bits)
    }
    const ptr = this.alloc(tiles * MR * K * 4);
    if (stored?.dtype === "F16") {
      const scale = scaleIn ? this.reserve(O) : 0; // above ptr: the op's arena, for this packing only
      if (scaleIn) this.write(scale, scaleIn);
      this.run("packRowsF16", { x: this.pushStored(stored), M: O, K, dst: ptr, scale, finite: 0 }, 0, tiles);
    } else {
      const raw = stored && !scaleIn ? this.pushStored(stored) : this.stage(scaleIn ? scaleRows(w.data, O, scaleIn) : w.data);
      this.run("packRows", { x: raw, M: O, K, dst: ptr }, 0, tiles);
    }
    const prepared: WasmConv = { O, C, kh, kw, stride, padding, ptr, bias, half: 0, scale: 0 };
    return prepared;
  }

  linear(input: Tensor, weights: LinearWeights, act: Activation = "none", res: Tensor | null = null): Tensor {
    this.live();
    const w = weights as WasmLinear;
    const { x, residual, shape, M } = checkLinear(input, w, act, res);
    if ("int8" in w) return this.linearInt8(x, w as LinearWeights as WasmLinearInt8, act, residual, shape, M);
    const { K, N } = w, { MR } = this;
    this.arena = this.top;
    const xp = this.push(x.data);
    const rp = residual ? this.push(residual.data) : 0;
    const yp = this.reserveOutput(M * N);
    const tiles = Math.ceil(M / MR);
    const packed = this.reserve(tiles * MR * K);
    this.run("packRows", { x: xp, M, K, dst: packed }, 0, tiles, M * K * ELEMENT_WORK);
    this.gemm(w, packed, yp, M, this.act[act], rp);
    return tensor(shape, this.takeOutput());
  }

  /** linear's GEMM on packed rows; f16 panels are widened one at a time into a scratch panel per thread. */
  private gemm(w: WasmLinear, x: number, y: number, M: number, act: number, residual: number): void {
    const { K, N } = w, units = M > 0 ? Math.ceil(N / this.NR) : 0;
    if (!w.half) {
      this.run("linear", { x, w: w.ptr, b: w.bias, y, M, K, N, act, residual }, 0, units, M * K * N);
      return;
    }
    const scratch = this.reserve(this.threads * (K * this.NR + 4));
    this.run("linearHalf", { x, w: w.ptr, b: w.bias, y, M, K, N, act, residual, scratch, patches: w.patches }, 0, units, M * K * N);
  }

  conv2d(input: Tensor, weights: Conv2dWeights, act: Activation = "none", res: Tensor | null = null): Tensor {
    this.live();
    const w = weights as WasmConv;
    const { x, residual, shape } = checkConv2d(input, w, act, res);
    const [N, C, H, W] = x.shape;
    const [, , Ho, Wo] = shape;
    const { NR } = this, P = Ho * Wo, K = C * w.kh * w.kw, panels = Math.ceil(P / NR);
    const chunk = Math.max(Math.min(panels, this.threads), Math.floor(COL_CHUNK_BYTES / (K * NR * 4)));
    this.arena = this.top;
    const xp = this.push(x.data);
    const rp = residual ? this.push(residual.data) : 0;
    const yp = this.reserveOutput(numel(shape));
    const col = this.reserve(Math.min(chunk, panels) * K * NR);
    let wp = w.ptr;
    if (w.half) {
      const tiles = Math.ceil(w.O / this.MR);
      wp = this.reserve(tiles * this.MR * K);
      this.run("packRowsF16", { x: w.half, M: w.O, K, dst: wp, scale: w.scale, finite: 1 }, 0, tiles, w.O * K * ELEMENT_WORK);
    }
    for (let n = 0; n < N; n++) {
      for (let c0 = 0; c0 < panels; c0 += chunk) {
        this.run("conv2d", {
          x: xp + n * C * H * W * 4, w: wp, b: w.bias, y: yp + n * w.O * P * 4, C, H, W, O: w.O, kh: w.kh, kw: w.kw,
          stride: w.stride, padding: w.padding, Ho, Wo, act: this.act[act], residual: rp ? rp + n * w.O * P * 4 : 0,
          col, pBase: c0,
        }, c0, Math.min(panels, c0 + chunk), w.O * K * P);
      }
    }
    return tensor(shape, this.takeOutput());
  }

  layerNorm(input: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
    this.live();
    const { x, weight, bias, D, rows } = checkLayerNorm(input, gamma, beta, eps);
    this.arena = this.top;
    const xp = this.push(x.data), gp = this.push(weight.data), bp = this.push(bias.data);
    const yp = this.reserveOutput(x.data.length);
    this.run("layerNorm", { x: xp, gamma: gp, beta: bp, y: yp, D, eps }, 0, rows, x.data.length * ELEMENT_WORK);
    return tensor([...x.shape], this.takeOutput());
  }

  attention(query: Tensor, key: Tensor, value: Tensor, heads: number, counts: Int32Array | null = null): Tensor {
    this.live();
    const { q, k, v, B, Lq, Lk, D, headDim, keyCount } = checkAttention(query, key, value, heads, counts);
    const scale = Math.fround(1 / Math.sqrt(headDim));
    const scratchBytes = align16((headDim + 1) * ((Lk + 3) & ~3) * 4);
    this.arena = this.top;
    const qp = this.push(q.data), kp = this.push(k.data), vp = this.push(v.data);
    let kc = 0;
    if (keyCount) {
      kc = this.reserve(keyCount.length);
      this.view().i32.set(keyCount, kc >>> 2);
    }
    const out = this.reserveOutput(q.data.length);
    const scratch = this.reserve((scratchBytes / 4) * this.threads); // one slot per thread: any may take any head
    this.run("attention", {
      q: qp, k: kp, v: vp, out, B, Lq, Lk, heads, headDim, scale, keyCount: kc, scratch, scratchBytes,
    }, 0, B * heads, 2 * B * Lq * Lk * heads * headDim);
    return tensor([B, Lq, D], this.takeOutput());
  }

  avgPool2d(input: Tensor, k: number): Tensor {
    this.live();
    const { x, N, C, H, W, shape } = checkAvgPool2d(input, k);
    this.arena = this.top;
    const xp = this.push(x.data);
    const yp = this.reserveOutput(numel(shape));
    this.run("avgPool2d", { x: xp, y: yp, H, W, k }, 0, N * C, N * C * H * W * ELEMENT_WORK);
    return tensor(shape, this.takeOutput());
  }

  /** y = expf(x) elementwise (the SIMD twin of src/kernels/exp.ts), for tests. */
  expf(x: Float32Array): Float32Array {
    this.live();
    this.arena = this.top;
    const xp = this.push(x), yp = this.reserveOutput(x.length);
    this.run("expfArray", { x: xp, y: yp }, 0, x.length);
    return this.takeOutput();
  }

  /** y = erf(x) elementwise (the SIMD twin of src/kernels/erf.ts), for tests. */
  erf(x: Float32Array): Float32Array {
    this.live();
    this.arena = this.top;
    const xp = this.push(x), yp = this.reserveOutput(x.length);
    this.run("erfArray", { x: xp, y: yp }, 0, x.length);
    return this.takeOutput();
  }

  /** y = act(x) elementwise, for tests. */
  activate(x: Float32Array, act: Activation): Float32Array {
    this.live();
    this.arena = this.top;
    const xp = this.push(x), yp = this.reserveOutput(x.length);
    this.run("activateArray", { x: xp, y: yp, act: this.act[act] }, 0, x.length);
    return this.takeOutput();
  }

  /**
   * For bench/gemm.ts: linear()'s kernels (packRows, then the GEMM) as a function of no arguments, on a copy of x
   * made once into memory of its own, so that the GEMM is timed without the copies into and out of wasm memory.
   */
  linearKernels(input: Tensor, weights: LinearWeights): () => void {
    this.live();
    const w = weights as WasmLinear;
    const x = checkTensor("linearKernels: input", input);
    if (x.shape.length !== 2 || x.shape[1] !== w.K) throw new Error(`linearKernels: input ${shapeString(x.shape)} is not [M, ${w.K}]`);
    if ("int8" in w) return this.linearKernelsInt8(x, w as LinearWeights as WasmLinearInt8);
    const [M, K] = x.shape, { N } = w, { MR } = this, tiles = Math.ceil(M / MR);
    const xp = this.alloc(M * K * 4), packed = this.alloc(tiles * MR * K * 4), yp = this.alloc(M * N * 4);
    this.write(xp, x.data);
    const top = this.top;
    return () => {
      this.run("packRows", { x: xp, M, K, dst: packed }, 0, tiles, M * K * ELEMENT_WORK);
      this.arena = top;
      this.gemm(w, packed, yp, M, this.act.none, 0);
    };
  }

  /** linearKernels for int8 weights: the row quantization, then the int8 GEMM. */
  private linearKernelsInt8(x: Tensor, w: WasmLinearInt8): () => void {
    const [M, K] = x.shape, { N } = w;
    const QNR = this.exports.QNR.value as number, QMR = this.exports.QMR.value as number;
    const tiles = Math.ceil(M / QMR), pairs = (K + 1) >> 1;
    const xp = this.alloc(M * K * 4), packed = this.alloc(tiles * QMR * pairs * 4), sx = this.alloc(tiles * QMR * 4);
    const yp = this.alloc(M * N * 4);
    this.write(xp, x.data);
    return () => {
      this.run("quantizeRowsInt8", { x: xp, M, K, dst: packed, scales: sx }, 0, tiles, M * K * ELEMENT_WORK);
      this.run("linearInt8", {
        x: packed, sx, w: w.ptr, sw: w.scales, b: w.bias, y: yp, M, K, N, act: this.act.none, residual: 0,
      }, 0, M > 0 ? Math.ceil(N / QNR) : 0, M * K * N);
    };
  }

  /**
   * Runs assembly/peak.ts's simdPeak on every thread at once, `iters` steps each (as 8 units per thread, handed out
   * like any kernel's), for the benches. Returns the flops done: threads × iters × 96.
   */
  simdPeak(iters: number): number {
    this.live();
    const units = 8 * this.threads, steps = Math.ceil(iters / 8);
    this.view().f32.set([0.999, 0.999, 0.999, 0.999, 1e-7, 1e-7, 1e-7, 1e-7], PEAK_OPERANDS >>> 2);
    this.run("simdPeak", { iters: steps, operands: PEAK_OPERANDS }, 0, units);
    return units * steps * 96;
  }

  /** Stops the workers (they are unref'd, so they never hold the process open) and drops the memory. */
  /**
   * Runs a forward pass whose op results land in one array kept for the next pass (sized by the largest pass so
   * far, at most resultFloats; what does not fit gets new arrays, as outside): a new array for each result costs
   * the first touch of its pages, ~10 µs a page on a VM, 4-18 ms of a ViT-B/32 forward. Only fn's result is copied
   * out; no other result may outlive fn (a forward hook sees module outputs: hooked passes are not scoped).
   */
  scoped(fn: () => Tensor): Tensor {
    this.results ??= { data: new Float32Array(0), used: 0, wanted: 0, depth: 0 };
    const results = this.results, data = results.data;
    results.depth++;
    try {
      const t = fn();
      return t.data.buffer === data.buffer && data.length > 0 ? tensor([...t.shape], t.data.slice()) : t;
    } finally {
      if (--results.depth === 0) {
        if (results.wanted > data.length && data.length < this.resultFloats) {
          results.data = new Float32Array(Math.min(results.wanted, this.resultFloats));
        }
        results.used = results.wanted = 0;
      }
    }
  }

  /** n floats for an op's result: the scoped array's next ones, or null outside scoped() or past its end. */
  private resultArray(n: number): Float32Array | null {
    const r = this.results;
    if (!r || r.depth === 0) return null;
    r.wanted += (n + 3) & ~3;
    if (r.used + n > r.data.length) return null;
    const out = r.data.subarray(r.used, r.used + n);
    r.used += (n + 3) & ~3;
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.results = null;
    if (this.workers.length > 0) {
      const { i32 } = this.view();
      const c = CTRL.OFFSET >> 2;
      Atomics.store(i32, c + CTRL.FN, -1);
      Atomics.add(i32, c + CTRL.GEN, 1);
      Atomics.notify(i32, c + CTRL.GEN);
      for (const w of this.workers) w.terminate();
    }
    this.views = null;
  }

  private live(): void {
    if (this.disposed) throw new Error("wasm backend: used after dispose()");
  }

  /**
   * Runs kernel `name` over the units [u0, u1) and returns when all are done. Its arguments are named as in
   * assembly/ (kernels.generated.ts), and put in the wasm function's order here, once, for this thread and the
   * workers alike. With workers, the units are handed out in chunks from a shared counter to whichever thread asks
   * first (this one included), so a thread slowed by other load on the machine takes fewer; a unit's bits do not
   * depend on which thread computes it.
   */
  private run<K extends KernelName>(name: K, named: KernelArgs[K], u0: number, u1: number, work = Infinity): void {
    const args = POSITIONAL[name](named);
    const fn = this.exports[name] as (...a: number[]) => void;
    const call = (tid: number, a: number, b: number) => fn(...args, tid, a, b);
    if (this.workers.length === 0 || u1 - u0 <= 1 || work < this.minParallelWork) {
      if (u1 > u0) call(0, u0, u1);
      return;
    }
    const { i32, f64 } = this.view();
    const c = CTRL.OFFSET >> 2;
    if (args.length > CTRL.MAX_ARGS) throw new Error(`wasm backend: ${name} has too many arguments`);
    // a death already reported by an 'exit' or 'error' event (between calls): no job for a broken pool
    if (this.workers.some((w) => !w.isAlive())) this.failPool(name, null);
    const chunk = Math.max(1, Math.ceil((u1 - u0) / (this.threads * CTRL.CHUNKS_PER_THREAD)));
    f64.set(args, (CTRL.OFFSET + CTRL.ARGS_BYTE) >> 3);
    i32[c + CTRL.FN] = KERNEL_NAMES.indexOf(name);
    i32[c + CTRL.NARGS] = args.length;
    i32[c + CTRL.U1] = u1;
    i32[c + CTRL.CHUNK] = chunk;
    i32[c + CTRL.ERROR] = 0;
    Atomics.store(i32, c + CTRL.NEXT, u0);
    Atomics.store(i32, c + CTRL.DONE, 0);
    Atomics.add(i32, c + CTRL.GEN, 1);
    Atomics.notify(i32, c + CTRL.GEN);
    let longest = 0; // ms, of this thread's chunks
    try {
      // the op's output array, while the workers start on the kernel (see faulted)
      if (this.output && !this.output.early) this.output.early = this.resultArray(this.output.n) ?? faulted(this.output.n);
      for (let a = Atomics.add(i32, c + CTRL.NEXT, chunk); a < u1; a = Atomics.add(i32, c + CTRL.NEXT, chunk)) {
        const t0 = performance.now();
        call(0, a, Math.min(u1, a + chunk));
        longest = Math.max(longest, performance.now() - t0);
      }
    } finally {
      // A dead worker never counts itself done, and no event handler runs while this thread waits: so wait in
      // slices, and after each quiet one ask every worker whether its thread is still there. Where that cannot be
      // seen during a call (browsers), a long silence once every unit has been taken is taken for a death; where
      // it can (Node), the same with a far longer silence, in case a Node release stops reporting it.
      const n = this.workers.length;
      const exact = this.workers.every((w) => w.exitSeenWhileBlocked);
      const stallMs = Math.max(STALL_MS, STALL_CHUNKS * longest) * (exact ? 10 : 1);
      let quietSince = 0;
      for (let spin = 0; Atomics.load(i32, c + CTRL.DONE) < n; spin++) {
        const done = Atomics.load(i32, c + CTRL.DONE);
        if (spin <= CTRL.SPINS || done >= n) continue;
        if (Atomics.wait(i32, c + CTRL.DONE, done, CTRL.SLICE_MS) !== "timed-out") {
          quietSince = 0;
        } else if (this.workers.some((w) => !w.isAlive())) {
          this.failPool(name, null);
        } else {
          const now = performance.now();
          if (!quietSince) quietSince = now;
          else if (now - quietSince > stallMs) this.failPool(name, now - quietSince);
        }
      }
    }
    if (i32[c + CTRL.ERROR] !== 0) throw new Error(`wasm backend: ${name} failed in a worker thread`);
  }

  /**
   * A worker has died: the units it had taken are lost, so the current kernel call fails. The living workers
   * finish the unit they are on (they take no more), then leave their loop; only then is the memory this thread's
   * alone again. A fresh pool starts on the same module and memory; until it is up, kernels run on this thread.
   */
  private failPool(name: KernelName, stalledMs: number | null): never {
    const workers = this.workers;
    this.workers = [];
    const { i32 } = this.view();
    const c = CTRL.OFFSET >> 2, ack = (CTRL.OFFSET + CTRL.ACK_BYTE) >> 2;
    const gen = Atomics.load(i32, c + CTRL.GEN);
    const gone = new Set(workers.filter((w, i) => !w.isAlive() || (stalledMs !== null && Atomics.load(i32, ack + i + 1) !== gen)));
    const ids = workers.flatMap((w, i) => (gone.has(w) ? [i + 1] : []));
    Atomics.store(i32, c + CTRL.NEXT, i32[c + CTRL.U1]);
    this.awaitAcks(workers, gone, gen);
    Atomics.store(i32, c + CTRL.FN, -1);
    Atomics.add(i32, c + CTRL.GEN, 1);
    Atomics.notify(i32, c + CTRL.GEN);
    this.awaitAcks(workers, gone, gen + 1);
    for (const w of workers) w.terminate();
    this.restartPool();
    const what = stalledMs === null
      ? "exited (crashed or was terminated)"
      : `did not finish its part of ${name} in ${(stalledMs / 1000).toFixed(1)} s and is taken for dead (its end could not be seen during the call)`;
    throw new Error(
      `wasm backend: wasm worker thread ${ids.join(", ")} of ${workers.length} ${what}; ${name} failed and the pool ` +
      "was restarted (the next calls work)",
    );
  }

  /** Until every living worker has finished job `gen` (bounded: a living worker finishes its unit, then this). */
  private awaitAcks(workers: WorkerHandle[], gone: Set<WorkerHandle>, gen: number): void {
    const { i32 } = this.view();
    const c = CTRL.OFFSET >> 2, ack = (CTRL.OFFSET + CTRL.ACK_BYTE) >> 2;
    const until = Date.now() + ACK_TIMEOUT_MS;
    const pending = () => workers.some((w, i) => !gone.has(w) && Atomics.load(i32, ack + i + 1) !== gen && w.isAlive());
    while (pending() && Date.now() < until) {
      Atomics.wait(i32, c + CTRL.DONE, Atomics.load(i32, c + CTRL.DONE), CTRL.SLICE_MS);
    }
  }

  private restartPool(): void {
    const start = this.startWorkers;
    if (!start || this.restarting) return;
    this.restarting = start().then(
      (workers) => {
        if (this.disposed) return workers.forEach((w) => w.terminate());
        // the new workers start at the current job number: that is the last one each has acknowledged
        const { i32 } = this.view();
        const gen = Atomics.load(i32, (CTRL.OFFSET >> 2) + CTRL.GEN);
        workers.forEach((_, i) => Atomics.store(i32, ((CTRL.OFFSET + CTRL.ACK_BYTE) >> 2) + i + 1, gen));
        this.workers = workers;
      },
      () => {}, // the pool stays down: the kernels keep running on this thread, with the same bits
    ).finally(() => {
      this.restarting = null;
    });
  }

  private view(): { f32: Float32Array; i32: Int32Array; f64: Float64Array } {
    const buffer = this.memory.buffer;
    if (!this.views || this.views.buffer !== buffer) {
      this.views = { buffer, f32: new Float32Array(buffer), i32: new Int32Array(buffer), f64: new Float64Array(buffer) };
    }
    return this.views;
  }

  /** Makes [0, end) addressable, growing the memory (and so renewing the views) if needed. */
  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    if (end > 65536 * PAGE) throw new RangeError(`wasm backend: ${end} bytes exceed the 4 GiB of wasm32 memory`);
    const pages = Math.ceil((end - have) / PAGE);
    try {
      this.memory.grow(pages);
    } catch (e) {
      throw memoryError(`growing it from ${mib(have)} to ${mib(have + pages * PAGE)}`, e);
    }
  }

  /** Grows the memory once to hold the weights about to be prepared and an arena (pages never written cost nothing). */
  reserveWeights(bytes: number): void {
    this.live();
    try {
      this.ensure(Math.min(this.top + bytes + COL_CHUNK_BYTES, 65536 * PAGE));
    } catch {
      // only a hint: the prepare calls grow what they need, and say so if they cannot
    }
  }

  /** Permanent (weights). Only between ops, as it moves the arena. */
  private alloc(bytes: number): number {
    const p = this.top;
    this.ensure(p + bytes);
    this.top = align16(p + bytes);
    this.arena = this.top;
    return p;
  }

  /** n floats of the current op's arena, uninitialised. */
  private reserve(n: number): number {
    const p = this.arena;
    this.ensure(p + n * 4);
    this.arena = align16(p + n * 4);
    return p;
  }

  /** The bytes [p, p + n) of wasm memory. */
  private bytes(p: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, p, n);
  }

  /** A tensor's stored bytes copied (or read from its file) into wasm memory, for the prepare call that packs them. */
  private pushStored(stored: StoredBytes): number {
    const p = this.staging(stored.byteLength);
    stored.copyTo(this.bytes(p, stored.byteLength));
    return p;
  }

  /**
   * n bytes of scratch at the end of the memory, when it has room above the arena (reserveWeights grew it), else in
   * the arena. The end's pages are written once and reused by every tensor staged there: staged in the arena, each
   * would land on fresh pages, and a page fault costs more than the read (about 10 µs a page on a VM), paid on this
   * thread; the packed copies' pages are instead faulted by the kernels, on every thread.
   */
  private staging(n: number): number {
    const end = this.memory.buffer.byteLength, p = (end - n) & ~15;
    if (p >= this.arena + COL_CHUNK_BYTES) return p;
    return this.reserve(Math.ceil(n / 4));
  }

  /** Weights about to be packed, in the staging scratch. */
  private stage(data: Float32Array): number {
    const p = this.staging(data.byteLength);
    this.write(p, data);
    return p;
  }

  private push(data: Float32Array): number {
    const p = this.reserve(data.length);
    this.write(p, data);
    return p;
  }

  private write(p: number, data: Float32Array): void {
    this.view().f32.set(data, p >>> 2);
  }

  /** n floats of the arena for the current op's result, which takeOutput then copies out. */
  private reserveOutput(n: number): number {
    const p = this.reserve(n);
    this.output = { p, n, early: null };
    return p;
  }

  /** The current op's result as a new array: the one a parallel run made early, or a copy made now. */
  private takeOutput(): Float32Array {
    const { p, n, early } = this.output!;
    this.output = null;
    const src = this.view().f32.subarray(p >>> 2, (p >>> 2) + n);
    const out = early ?? this.resultArray(n);
    return out ? (out.set(src), out) : src.slice();
  }
}

/**
 * A new array of n floats whose pages are already written. Most of the cost of copying an op's output out of wasm
 * memory is the page faults of a fresh allocation (measured: 0.59 ms for 800 KB, of which the copy is 0.02 ms), and
 * the copy is serial on this thread; made while the workers compute (in run), those faults are parallel.
 */
function faulted(n: number): Float32Array {
  return new Float32Array(n).fill(0);
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function align16(n: number): number {
  return Math.ceil(n / 16) * 16;
}


