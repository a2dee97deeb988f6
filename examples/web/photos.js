// "Search your photos": picks a folder, has the worker index it (embeddings in IndexedDB, by the loaded model) and
// search it, and shows the best images. The worker does the work (worker.js: index, search, summary, clear).
const $ = (id) => document.getElementById(id);

/** ask(message, transfer, onProgress) → { reply }: the page's channel to the worker; ready(): the latest model load. */
export function setupPhotos({ ask, ready }) {
  let picked = new Map(); // path → File of the folder(s) picked since the page opened: full-size results
  let urls = []; // object URLs of the results shown
  let indexRuns = 0, searches = 0;
  let indexing = false;

  const status = (el, state, text) => {
    $(el).dataset.state = state;
    $(el).textContent = text;
  };
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function showSummary(s) {
    if (!s.model) return status("photos-summary", "idle", "no model loaded");
    const others = s.others ? ` (${s.others} more embedded by another model: pick the folder again to embed them with this one)` : "";
    status("photos-summary", "ready", `${plural(s.photos, "photo")} indexed with ${s.model}${others}.`);
    $("photos-summary").dataset.photos = String(s.photos);
    showFailed(s.failed);
  }

  function showFailed(failed) {
    $("photos-failed-box").hidden = failed.length === 0;
    $("photos-failed-title").textContent = `${plural(failed.length, "file")} could not be indexed`;
    $("photos-failed").replaceChildren(...failed.map(({ path, error }) => {
      const li = document.createElement("li");
      li.textContent = `${path}: ${error}`;
      li.dataset.path = path;
      return li;
    }));
  }

  /** The collection as the loaded model sees it; called after each model load. */
  async function refresh() {
    clearResults();
    status("photos-search-status", "idle", "");
    if (!(await ready())) return status("photos-summary", "idle", "no model loaded");
    const reply = await ask({ type: "summary" }).reply;
    if (reply.error) status("photos-summary", "error", reply.error);
    else showSummary(reply.result);
  }

  /** files: [{ path, file }] with the picked folder's name first in each path. */
  async function index(files) {
    if (!files.length) return status("photos-status", "error", "the folder is empty");
    const id = ++indexRuns;
    indexing = true;
    for (const f of files) picked.set(f.path, f.file);
    status("photos-status", "indexing", `waiting for the model…`);
    $("photos-status").dataset.run = String(id);
    $("photos-cancel").hidden = false;
    const bar = $("photos-bar");
    try {
      if (!(await ready())) return status("photos-status", "error", "no model loaded: choose one above");
      status("photos-status", "indexing", `reading ${plural(files.length, "file")}…`);
      const onProgress = ({ done, total, failed, filesPerSec }) => {
        bar.hidden = false;
        bar.max = Math.max(total, 1);
        bar.value = done;
        status("photos-status", "indexing",
          `embedding ${done} / ${total} · ${filesPerSec.toFixed(1)} files/s${failed ? ` · ${failed} failed` : ""}`);
      };
      const reply = await ask({ type: "index", files }, [], onProgress).reply;
      if (reply.error) return status("photos-status", "error", `indexing stopped: ${reply.error}`);
      const r = reply.result;
      const parts = [`${plural(r.embedded, "file")} embedded in ${r.seconds.toFixed(1)} s (${r.filesPerSec.toFixed(1)} files/s)`];
      if (r.unchanged) parts.push(`${r.unchanged} unchanged`);
      if (r.removed) parts.push(`${r.removed} gone from the folder, removed`);
      if (r.failed.length) parts.push(`${r.failed.length} failed`);
      if (r.skipped.length) parts.push(`${plural(r.skipped.length, "other file")} skipped (not PNG or JPEG)`);
      status("photos-status", "done", `${r.cancelled ? "stopped: " : ""}${parts.join(", ")}.`);
      showSummary(r.collection);
    } finally {
      bar.hidden = true;
      $("photos-cancel").hidden = true;
      indexing = false;
    }
  }

  function clearResults() {
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
    $("photos-results").replaceChildren();
  }

  function showHits(hits) {
    clearResults();
    let missing = 0;
    for (const { path, score, thumbnail } of hits) {
      const figure = document.createElement("figure");
      figure.dataset.path = path;
      figure.dataset.score = String(score);
      figure.title = `${path}: cosine ${score} — click for similar photos`;
      const source = picked.get(path) ?? thumbnail;
      if (source) {
        const url = URL.createObjectURL(source);
        urls.push(url);
        figure.append(Object.assign(document.createElement("img"), { src: url, alt: path, loading: "lazy" }));
      } else {
        missing++;
        figure.append(Object.assign(document.createElement("div"), { className: "missing", textContent: "pick the folder again to see it" }));
      }
      const caption = document.createElement("figcaption");
      caption.append(Object.assign(document.createElement("span"), { className: "score", textContent: score.toFixed(3) }), ` ${path}`);
      figure.append(caption);
      figure.addEventListener("click", () => search({ path }, `photos like ${path}`));
      $("photos-results").append(figure);
    }
    return missing;
  }

  /** query: { text } | { image, name } | { path }; the latest search is the one shown. */
  async function search(query, what) {
    const id = ++searches;
    $("photos-search-status").dataset.run = String(id);
    status("photos-search-status", "searching", indexing ? `${what}: after the indexing…` : `${what}: searching…`);
    if (!(await ready())) return status("photos-search-status", "error", "no model loaded: choose one above");
    const reply = await ask({ type: "search", query, k: 12 }, query.image ? [query.image] : []).reply;
    if (id !== searches) return;
    if (reply.error) return status("photos-search-status", "error", reply.error);
    const { hits, ms, searched } = reply.result;
    if (searched === 0) {
      clearResults();
      return status("photos-search-status", "done", "nothing indexed with this model yet: pick a folder");
    }
    const missing = showHits(hits);
    status("photos-search-status", "done",
      `${what}: best ${hits.length} of ${plural(searched, "photo")} (exact cosine, ${ms.toFixed(1)} ms)` +
        (missing ? `; ${missing} without a thumbnail: pick the folder again to see them` : ""));
  }

  // a folder, through the File System Access API where there is one, else the webkitdirectory input
  async function* walk(dir, prefix) {
    for await (const [name, handle] of dir.entries()) {
      const path = `${prefix}/${name}`;
      if (handle.kind === "file") yield { path, file: await handle.getFile() };
      else yield* walk(handle, path);
    }
  }
  $("photos-pick").addEventListener("click", async () => {
    if (!window.showDirectoryPicker) return $("photos-dir").click();
    let dir;
    try {
      dir = await window.showDirectoryPicker({ id: "clip-ts-photos" });
    } catch (e) {
      if (e.name !== "AbortError") status("photos-status", "error", `could not open the folder: ${e.message}`);
      return;
    }
    const files = [];
    try {
      status("photos-status", "indexing", `listing ${dir.name}…`);
      for await (const f of walk(dir, dir.name)) files.push(f);
    } catch (e) {
      return status("photos-status", "error", `could not list ${dir.name}: ${e.message}`);
    }
    await index(files);
  });
  $("photos-dir").addEventListener("change", async () => {
    const files = Array.from($("photos-dir").files, (file) => ({ path: file.webkitRelativePath || file.name, file }));
    $("photos-dir").value = ""; // the same folder again is a change too
    await index(files);
  });
  $("photos-cancel").addEventListener("click", () => ask({ type: "cancel" }));
  $("photos-clear").addEventListener("click", async () => {
    if (indexing) return;
    picked = new Map();
    const reply = await ask({ type: "clear" }).reply;
    clearResults();
    status("photos-status", "idle", reply.error ? reply.error : "the collection is forgotten");
    if (!reply.error) showSummary(reply.result);
  });
  const searchText = () => {
    const text = $("photos-query").value.trim();
    if (!text) return status("photos-search-status", "error", "type what to look for");
    search({ text }, `“${text}”`);
  };
  $("photos-search").addEventListener("click", searchText);
  $("photos-query").addEventListener("keydown", (e) => e.key === "Enter" && searchText());
  $("photos-image").addEventListener("change", async () => {
    const file = $("photos-image").files[0];
    if (!file) return;
    let image;
    try {
      image = await file.arrayBuffer();
    } catch (e) {
      return status("photos-search-status", "error", `${file.name}: ${e.message}`);
    }
    await search({ image, name: file.name }, `photos like ${file.name}`);
  });

  return { refresh };
}
