// The page: picks a model, an image and labels, hands them to worker.js (the model runs there), shows what comes back.
import { setupPhotos } from "./photos.js";

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
const pending = new Map(); // message id → reply handler (progress replies keep it)
let image = null; // ArrayBuffer of the chosen file
let messages = 0;
let runs = 0; // id of the latest run
let loads = 0; // id of the latest load
let choice = { kind: "embedded" }; // or { kind: "url", name } or { kind: "file", file }
let modelReady = null; // resolves to true when the latest load succeeded
/** A mirror for the named models (?baseUrl=http://host/prefix), as CLIP_TS_MODEL_BASE_URL in Node. */
const baseUrl = new URLSearchParams(location.search).get("baseUrl") ?? undefined;

worker.onmessage = ({ data }) => {
  const handler = pending.get(data.id);
  if (data.progress) return handler?.(data);
  handler?.(data);
  pending.delete(data.id);
};
worker.onerror = (e) => setStatus("error", `worker: ${e.message}`);

function ask(message, transfer = [], onProgress) {
  const id = ++messages;
  return {
    id,
    reply: new Promise((resolve) => {
      pending.set(id, (reply) => (reply.progress ? onProgress?.(reply.progress) : resolve(reply)));
      worker.postMessage({ id, ...message }, transfer);
    }),
  };
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function setModelStatus(state, text) {
  $("model-status").dataset.state = state;
  $("model-status").textContent = text;
}

const mib = (n) => (n / 1048576).toFixed(n < 10485760 ? 2 : 1);

/** Reads a File, naming it in the error. */
async function readFile(file, what) {
  try {
    return await file.arrayBuffer();
  } catch (e) {
    throw new Error(`${what} "${file.name}": ${e.message}`);
  }
}

/** Loads the chosen model in the worker (the checkpoint, config and vocab files are read again each time: the page
 *  keeps the File objects, not their bytes), then classifies the image if there is one. */
async function loadModel() {
  const id = ++loads;
  const threads = Number($("threads").value);
  $("run").disabled = true;
  if (image) { // a run follows the load: say so at once, so that no one reads the last result as the next
    setStatus("running", "waiting for the model…");
    delete $("status").dataset.run;
  }
  $("model-progress").hidden = true;
  $("model-assumed").hidden = true;
  const label = choice.kind === "embedded" ? "the built-in model" : choice.kind === "url" ? choice.name : choice.file.name;
  setModelStatus("loading", `loading ${label}…`);
  $("model-status").dataset.load = String(id);
  let done;
  modelReady = new Promise((r) => (done = r));
  let reply;
  try {
    const message = { type: "load", threads, baseUrl, source: { kind: "embedded" } };
    const transfer = [];
    if (choice.kind !== "embedded") {
      const configFile = $("config-file").files[0], vocabFile = $("vocab-file").files[0];
      if (configFile) {
        const text = new TextDecoder().decode(await readFile(configFile, "config"));
        try {
          message.config = JSON.parse(text);
        } catch (e) {
          throw new Error(`config "${configFile.name}" is not JSON (${e.message})`);
        }
      }
      if (vocabFile) transfer.push((message.vocab = await readFile(vocabFile, "vocab")));
      if (choice.kind === "url") message.source = { kind: "url", name: choice.name };
      else {
        message.source = { kind: "bytes", name: choice.file.name, weights: await readFile(choice.file, "checkpoint") };
        transfer.push(message.source.weights); // moved, not copied
      }
    }
    const onProgress = ({ done: d, total }) => {
      if (id !== loads) return;
      $("model-progress").hidden = false;
      $("model-progress").textContent = total ? `downloaded ${mib(d)} / ${mib(total)} MiB (${Math.floor((100 * d) / total)}%)` : `downloaded ${mib(d)} MiB`;
    };
    reply = await ask(message, transfer, onProgress).reply;
  } catch (e) {
    reply = { error: e.message };
  }
  if (id !== loads) return done(false); // a newer choice is being loaded
  if (reply.error) {
    setModelStatus("error", `could not load ${label}: ${reply.error}`);
    setStatus("idle", "no model loaded: choose another");
    $("probs").replaceChildren(); // the last model's results are not this one's
    $("details").hidden = true;
    done(false);
    return photos.refresh();
  }
  const r = reply.result;
  setModelStatus("ready", `${r.model}: ${r.summary} — loaded in ${(r.loadMs / 1000).toFixed(2)} s (${r.backend}, ${r.threads} thread${r.threads > 1 ? "s" : ""})`);
  if (r.assumed.length) {
    $("model-assumed").hidden = false;
    $("model-assumed").textContent = `⚠ assumed (no config says otherwise): ${r.assumed.join("; ")}. ` +
      "If it is an open_clip or Hugging Face model, add its config.json.";
  }
  $("run").disabled = !image;
  done(true);
  photos.refresh();
  if (image) await classify();
}

$("model-file").addEventListener("change", () => {
  const file = $("model-file").files[0];
  if (!file) return;
  choice = { kind: "file", file };
  $("model-name").value = "";
  loadModel();
});
const loadByName = () => {
  const name = $("model-name").value.trim();
  if (!name) return setModelStatus("error", "type a model name (ViT-B/32, RN50, …) or a URL");
  choice = { kind: "url", name };
  $("model-file").value = "";
  loadModel();
};
$("model-fetch").addEventListener("click", loadByName);
$("model-name").addEventListener("keydown", (e) => e.key === "Enter" && loadByName());
$("model-embedded").addEventListener("click", () => {
  choice = { kind: "embedded" };
  $("model-file").value = "";
  loadModel();
});
// the config and vocab belong to the chosen checkpoint: a change reloads it
for (const input of ["config-file", "vocab-file"]) $(input).addEventListener("change", () => choice.kind !== "embedded" && loadModel());

if (!crossOriginIsolated) {
  $("isolation").hidden = false;
  $("isolation").textContent =
    "This page is not cross-origin isolated (COOP/COEP headers missing), so wasm memory cannot be shared: 1 thread only. " +
    "Serve it with node examples/web/serve.mjs.";
  for (const o of $("threads").options) o.disabled = o.value !== "1";
}

/** Shows and classifies an image; the status says at once that a new result is coming. */
async function useImage(bytes, name) {
  setStatus("reading", `reading ${name}…`);
  delete $("status").dataset.run;
  let buffer;
  try {
    buffer = await bytes;
  } catch (e) {
    return setStatus("error", `${name}: ${e.message}`);
  }
  image = buffer;
  const url = URL.createObjectURL(new Blob([buffer]));
  $("preview").onload = () => URL.revokeObjectURL(url);
  $("preview").src = url;
  $("preview").alt = name;
  $("preview").hidden = false;
  await classify();
}

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (file) await useImage(file.arrayBuffer(), file.name);
});

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer.files[0];
  if (file) await useImage(file.arrayBuffer(), file.name);
});

// examples.json lists the images of examples/ (a static host cannot list a folder)
fetch("examples.json").then((r) => (r.ok ? r.json() : [])).then((names) => {
  for (const name of names) $("examples").add(new Option(name, name));
  $("examples-wrap").hidden = names.length === 0;
}).catch(() => {});
$("examples").addEventListener("change", async () => {
  const name = $("examples").value;
  if (!name) return;
  await useImage(fetch(`../${name}`).then((r) => {
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    return r.arrayBuffer();
  }), name);
});

$("run").addEventListener("click", () => classify());
// a model runs on the threads it was loaded with: other threads, another load (a named model comes from the cache)
$("threads").addEventListener("change", () => loadModel());

/** Whether the latest load (if others came while waiting) succeeded. */
async function latestModel() {
  let ready, awaited;
  do ready = await (awaited = modelReady); while (awaited !== modelReady);
  return ready;
}

const photos = setupPhotos({ ask, ready: latestModel });

async function classify() {
  const labels = $("labels").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (!image) return setStatus("idle", "choose an image");
  if (labels.length === 0) return setStatus("error", "type at least one label");
  const id = ++runs;
  $("status").dataset.run = String(id);
  setStatus("running", "waiting for the model…");
  $("run").disabled = true;
  const ready = await latestModel();
  if (id !== runs) return;
  if (!ready) return setStatus("idle", "no model loaded: choose another");
  const threads = Number($("threads").value);
  setStatus("running", `running on ${threads} thread${threads > 1 ? "s" : ""}…`);
  const reply = await ask({ type: "run", image: image.slice(0), labels }).reply;
  if (id !== runs) return; // a newer run is under way: only the latest is shown
  $("run").disabled = false;
  if (reply.error) setStatus("error", reply.error);
  else show(reply.result);
  $("result").dataset.run = String(id);
  $("result").textContent = JSON.stringify(reply.error ? { error: reply.error } : reply.result, null, 2);
}

function show(r) {
  const table = $("probs");
  table.replaceChildren();
  const order = r.labels.map((_, i) => i).sort((a, b) => r.probs[b] - r.probs[a]);
  for (const i of order) {
    const row = table.insertRow();
    row.insertCell().textContent = r.labels[i];
    row.insertCell().textContent = `${(100 * r.probs[i]).toFixed(2)}%`;
    const bar = row.insertCell();
    bar.className = "bar";
    bar.append(Object.assign(document.createElement("div"), { style: `width:${(100 * r.probs[i]).toFixed(1)}%` }));
  }
  $("image-sha").textContent = r.imageSha256;
  $("text-sha").textContent = r.textSha256;
  const t = r.timingsMs;
  const ms = (x) => `${x.toFixed(1)} ms`;
  $("timings").textContent =
    `preprocess ${ms(t.preprocess)} · image ${ms(t.image)} · text ${ms(t.text)} · zero-shot ${ms(t.zeroShot)} ` +
    `(${r.backend}, ${r.threads} thread${r.threads > 1 ? "s" : ""})`;
  $("details").hidden = false;
  setStatus("done", `${r.model}: done on ${r.threads} thread${r.threads > 1 ? "s" : ""}`);
}

loadModel();
