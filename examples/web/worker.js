// Runs clip-ts off the page's main thread: with more than one thread, the wasm backend waits for its workers
// with Atomics.wait, which only a worker may call. One model is kept loaded: a "load" replaces it, a "run" uses it.
import { assumedSettings, loadInBrowser, zeroShot } from "../../dist/browser/clip-ts.js";

let loaded = null; // { name, clip: LoadedClip }

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
  const options = { threads, config, vocab: vocab && new Uint8Array(vocab), onProgress, baseUrl: baseUrl || undefined };
  const clip = source.kind === "embedded"
    ? await loadInBrowser(undefined, { threads })
    : await loadInBrowser(source.kind === "url" ? source.name : new Uint8Array(source.weights), options);
  const name = source.kind === "embedded" ? "the built-in tiny model" : source.name;
  loaded = { name, clip };
  return {
    model: name,
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

/** clip-ts's errors are one line already; anything else is made one. */
const oneLine = (e) => String(e?.message ?? e).replace(/\s*\n\s*/g, " ").trim();

// one message at a time: a run must not find its model disposed by a load that came after it
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      self.postMessage({ id: data.id, result: await (data.type === "load" ? load(data) : run(data)) });
    } catch (e) {
      self.postMessage({ id: data.id, error: oneLine(e) });
    }
  });
};
