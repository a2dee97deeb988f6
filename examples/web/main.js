// The page: picks an image and labels, hands them to worker.js (the model runs there), shows what comes back.
const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
const pending = new Map();
let image = null; // ArrayBuffer of the chosen file
let runs = 0;

worker.onmessage = ({ data }) => {
  pending.get(data.id)?.(data);
  pending.delete(data.id);
};
worker.onerror = (e) => setStatus("error", `worker: ${e.message}`);

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

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
  $("run").disabled = false;
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
$("threads").addEventListener("change", () => image && classify());

function classify() {
  const labels = $("labels").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (!image) return setStatus("idle", "choose an image");
  if (labels.length === 0) return setStatus("error", "type at least one label");
  const id = ++runs;
  const threads = Number($("threads").value);
  setStatus("running", `running on ${threads} thread${threads > 1 ? "s" : ""}…`);
  $("status").dataset.run = String(id);
  $("run").disabled = true;
  return new Promise((resolve) => {
    pending.set(id, (reply) => {
      if (id !== runs) return resolve(); // a newer run is under way: only the latest is shown
      $("run").disabled = false;
      if (reply.error) setStatus("error", reply.error);
      else show(reply.result);
      $("result").dataset.run = String(id);
      $("result").textContent = JSON.stringify(reply.error ? { error: reply.error } : reply.result, null, 2);
      resolve();
    });
    worker.postMessage({ id, type: "run", image: image.slice(0), labels, threads });
  });
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
    `load ${ms(t.load)} · preprocess ${ms(t.preprocess)} · image ${ms(t.image)} · text ${ms(t.text)} · zero-shot ${ms(t.zeroShot)} ` +
    `(${r.backend}, ${r.threads} thread${r.threads > 1 ? "s" : ""})`;
  $("details").hidden = false;
  setStatus("done", `done on ${r.threads} thread${r.threads > 1 ? "s" : ""}`);
}
