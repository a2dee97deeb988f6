// Runs clip-ts off the page's main thread: with more than one thread, the wasm backend waits for its workers
// with Atomics.wait, which only a worker may call. One model is kept loaded, for the last thread count asked.
import { loadInBrowser, zeroShot } from "../../dist/browser/clip-ts.js";

let loaded = null; // { threads, clip: Promise<LoadedClip> }

async function sha256Hex(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function getClip(threads) {
  if (loaded?.threads !== threads) {
    if (loaded) (await loaded.clip.catch(() => null))?.model.dispose();
    loaded = { threads, clip: loadInBrowser(undefined, { threads }) };
  }
  return loaded.clip;
}

async function run({ image, labels, threads }) {
  const t0 = performance.now();
  const clip = await getClip(threads);
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
    timingsMs: { load: t1 - t0, preprocess: t2 - t1, image: t3 - t2, text: t4 - t3, zeroShot: t5 - t4 },
  };
}

// one run at a time: a run must not find its model disposed by a later run that asked for other threads
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    try {
      self.postMessage({ id: data.id, result: await run(data) });
    } catch (e) {
      self.postMessage({ id: data.id, error: String(e?.message ?? e) });
    }
  });
};
