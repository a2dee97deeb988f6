// Runs clip-ts off the page's main thread: with more than one thread, the wasm backend waits for its workers
// with Atomics.wait, which only a worker may call. One model is kept loaded: a "load" replaces it, a "run" uses it.
import {
  assumedSettings, BrowserCollection, EMBEDDED_MODEL_URLS, fetchBytes, fetchModelBytes, loadInBrowser, normalize, zeroShot,
} from "../../dist/browser/clip-ts.js";

let loaded = null; // { name, clip: LoadedClip, sha256: hex SHA-256 of the weights }

async function sha256Hex(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** "ViT 64 px, patch 8, 4 layers × 64; text 2 layers × 64, 628 tokens; embeddings 64" */
function describe(c) {
  const v = c.vision;
  const vision = v.kind === "resnet"
    ? `ResNet ${c.imageResolution} px, layers ${v.layers.join("-")}, width ${v.width}`
    : `ViT ${c.imageResolution} px, patch ${v.patchSize}, ${v.layers} layers × ${v.width}`;
  return `${vision}; text ${c.transformerLayers} layers × ${c.transformerWidth}, ${c.vocabSize} tokens; embeddings ${c.embedDim}`;
}

/**
 * source: { kind: "embedded" } | { kind: "url", name } (a name of clip.load or a URL) | { kind: "bytes", name, weights }.
 * The previous model is disposed first, so that two large models are never held at once; after a failure none is.
 */
async function load({ id, source, config, vocab, threads, baseUrl }) {
  if (loaded) loaded.clip.model.dispose();
  loaded = null;
  const t0 = performance.now();
  let last = 0;
  const onProgress = (done, total) => {
    const now = performance.now();
    if (now - last < 100 && done !== total) return; // a message per chunk would flood the page
    last = now;
    self.postMessage({ id, progress: { done, total } });
  };
  const options = { threads, config, vocab: vocab && new Uint8Array(vocab) };
  // the weights' SHA-256 names the model in the photo collection: the bytes are fetched here to be hashed once
  let weights, clip;
  if (source.kind === "embedded") {
    weights = await fetchBytes(EMBEDDED_MODEL_URLS.weights);
    clip = await loadInBrowser(undefined, { threads });
  } else {
    weights = source.kind === "url"
      ? await fetchModelBytes(source.name, { onProgress, baseUrl: baseUrl || undefined })
      : new Uint8Array(source.weights);
    const sha256 = await sha256Hex(weights); // before loading, which may keep views of the bytes
    clip = await loadInBrowser(weights, options);
    weights = sha256;
  }
  const sha256 = typeof weights === "string" ? weights : await sha256Hex(weights);
  const name = source.kind === "embedded" ? "the built-in tiny model" : source.name;
  loaded = { name, clip, sha256 };
  return {
    model: name,
    sha256,
    summary: describe(clip.model.config),
    assumed: assumedSettings(clip.model.config), // none for the built-in model: its card says them all
    threads: clip.model.backend.threads ?? 1,
    backend: clip.model.backend.name,
    loadMs: performance.now() - t0,
  };
}

async function run({ image, labels }) {
  if (!loaded) throw new Error("no model is loaded: choose one");
  const clip = loaded.clip;
  const t1 = performance.now();
  const pixels = clip.preprocess(new Uint8Array(image));
  const t2 = performance.now();
  const imageFeatures = clip.model.encodeImage(pixels);
  const t3 = performance.now();
  const prompts = labels.map((label) => `a photo of a ${label}.`); // zeroShot's default template
  const textFeatures = clip.model.encodeText(clip.tokenize(prompts));
  const t4 = performance.now();
  const [probs] = zeroShot(clip.model, clip.tokenizer, pixels, labels);
  const t5 = performance.now();
  return {
    model: loaded.name,
    threads: clip.model.backend.threads ?? 1,
    backend: clip.model.backend.name,
    crossOriginIsolated: self.crossOriginIsolated === true,
    labels,
    prompts,
    probs,
    pixelsSha256: await sha256Hex(pixels.data),
    imageSha256: await sha256Hex(imageFeatures.data),
    textSha256: await sha256Hex(textFeatures.data),
    imageShape: imageFeatures.shape,
    textShape: textFeatures.shape,
    timingsMs: { preprocess: t2 - t1, image: t3 - t2, text: t4 - t3, zeroShot: t5 - t4 },
  };
}

// ---- search your photos: the collection lives in IndexedDB (src/collection/browser_store.ts) ----

const IMAGE_FILE = /\.(png|jpe?g)$/i;
const MAX_FILE_BYTES = 256 << 20; // read whole: a larger "photo" is refused, not loaded
const BATCH = 4; // images per encodeImage call: a batch gives the same bits as one at a time
const THUMB = 160; // px, width of the stored thumbnails
let store = null;
let cancelled = false;
const collection = async () => (store ??= await BrowserCollection.open());

function needModel() {
  if (!loaded) throw new Error("no model is loaded: choose one");
  return loaded;
}

/** The files embedded by the loaded model, by other models, and the failed ones. */
async function summary() {
  const col = await collection();
  const counts = await col.models();
  const { failed } = await col.entries();
  const sha = loaded?.sha256;
  let others = 0;
  for (const [m, n] of counts) if (m !== sha) others += n;
  return { model: loaded?.name ?? null, modelSha256: sha ?? null, photos: counts.get(sha) ?? 0, others, failed: failed.map(({ path, error }) => ({ path, error })) };
}

/** A small JPEG for the results after a reload, decoded by the browser (display only; embeddings never see it). */
async function thumbnail(file) {
  if (typeof OffscreenCanvas === "undefined") return undefined;
  try {
    const bitmap = await createImageBitmap(file, { resizeWidth: THUMB, resizeQuality: "medium" });
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    return await canvas.convertToBlob({ type: "image/jpeg", quality: 0.8 });
  } catch {
    return undefined; // the browser cannot show it: no thumbnail, the embedding stands
  }
}

/** files: [{ path, file }] of a picked folder. Embeds what is new or changed with the loaded model, in batches;
 *  a file that fails is listed, and the rest go on. */
async function index({ id, files }) {
  const { clip, sha256 } = needModel();
  const col = await collection();
  cancelled = false;
  const images = [], skipped = [];
  for (const f of files) (IMAGE_FILE.test(f.path) ? images : skipped).push(f);
  const plan = await col.plan(images.map(({ path, file }) => ({ path, file, size: file.size, lastModified: file.lastModified })), sha256);
  if (plan.removed.length) await col.remove(plan.removed);
  const failed = plan.failed.map(({ path, error }) => ({ path, error, before: true }));
  const total = plan.embed.length;
  const t0 = performance.now();
  let done = 0, embedded = 0, last = 0;
  const progress = (force) => {
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    const seconds = (now - t0) / 1000;
    self.postMessage({ id, progress: { done, total, embedded, failed: failed.length, filesPerSec: seconds > 0 ? done / seconds : 0 } });
  };
  progress(true);
  const r = clip.model.config.imageResolution, plane = 3 * r * r;
  let batch = [];
  const flush = async () => {
    if (!batch.length) return;
    const n = batch.length;
    const pixels = { data: new Float32Array(n * plane), shape: [n, 3, r, r] };
    batch.forEach((b, i) => pixels.data.set(b.pixels.data, i * plane));
    let features;
    try {
      features = normalize(clip.model.encodeImage(pixels));
    } catch (e) {
      const error = oneLine(e);
      await col.fail(batch.map((b) => ({ ...b.meta, modelSha256: sha256, error })));
      failed.push(...batch.map((b) => ({ path: b.meta.path, error })));
      batch = [];
      return;
    }
    const E = features.shape[1];
    const entries = [];
    for (const [i, b] of batch.entries()) {
      entries.push({ ...b.meta, modelSha256: sha256, embedding: features.data.slice(i * E, (i + 1) * E), thumbnail: await thumbnail(b.file) });
    }
    await col.put(entries);
    embedded += n;
    batch = [];
  };
  for (const f of plan.embed) {
    if (cancelled) break;
    const meta = { path: f.path, size: f.size, lastModified: f.lastModified };
    try {
      if (f.file.size > MAX_FILE_BYTES) throw new Error(`${(f.file.size / 1048576).toFixed(0)} MiB is more than the ${MAX_FILE_BYTES >> 20} MiB read for a photo`);
      const bytes = new Uint8Array(await f.file.arrayBuffer());
      batch.push({ meta, file: f.file, pixels: clip.preprocess(bytes) }); // clip-ts's decoders: Node's bits
    } catch (e) {
      const error = oneLine(e);
      await col.fail([{ ...meta, modelSha256: sha256, error }]);
      failed.push({ path: f.path, error });
    }
    if (batch.length === BATCH) await flush();
    done++;
    progress(false);
  }
  await flush();
  progress(true);
  const seconds = (performance.now() - t0) / 1000;
  return {
    embedded, unchanged: plan.unchanged, removed: plan.removed.length, failed, cancelled,
    skipped: skipped.map((f) => f.path), total, seconds, filesPerSec: seconds > 0 ? done / seconds : 0,
    collection: await summary(),
  };
}

/** query: { text } | { image: ArrayBuffer, name } | { path } (a file of the collection). */
async function search({ query, k }) {
  const { clip, sha256 } = needModel();
  const col = await collection();
  let q;
  if (query.text !== undefined) q = normalize(clip.model.encodeText(clip.tokenize([query.text]))).data;
  else if (query.image !== undefined) q = normalize(clip.model.encodeImage(clip.preprocess(new Uint8Array(query.image)))).data;
  else if ((q = await col.embedding(query.path, sha256)) === undefined) throw new Error(`${query.path} is not in the collection for this model`);
  const t0 = performance.now();
  const hits = await col.search(q, k, sha256);
  const ms = performance.now() - t0;
  for (const h of hits) h.thumbnail = (await col.thumbnail(h.path)) ?? null;
  return { hits, ms, searched: (await col.models()).get(sha256) ?? 0 };
}

async function clear() {
  await (await collection()).clear();
  return summary();
}

/** clip-ts's errors are one line already; anything else is made one. */
const oneLine = (e) => String(e?.message ?? e).replace(/\s*\n\s*/g, " ").trim();

// one message at a time: a run must not find its model disposed by a load that came after it
let queue = Promise.resolve();
const HANDLERS = { load, run, index, search, summary, clear };
self.onmessage = ({ data }) => {
  if (data.type === "cancel") { // at once, between two files of an index
    cancelled = true;
    return self.postMessage({ id: data.id, result: true });
  }
  queue = queue.then(async () => {
    try {
      const handler = HANDLERS[data.type];
      if (!handler) throw new Error(`unknown message type ${JSON.stringify(data.type)}`);
      self.postMessage({ id: data.id, result: await handler(data) });
    } catch (e) {
      self.postMessage({ id: data.id, error: oneLine(e) });
    }
  });
};
