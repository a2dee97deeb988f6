// A one-line progress bar on stderr, drawn only when stderr is a terminal (never into pipes, logs or tests).

export interface ProgressSink {
  write(s: string): void;
  isTTY: boolean;
  columns?: number;
}

const REDRAW_MS = 100;

/** "items" counts, "files" counts with the rate and the time left, "bytes" MiB, "download" MiB with the rate and
 *  the time left (and no bar while the total is unknown, total 0). */
export type ProgressUnit = "bytes" | "items" | "files" | "download";

export class Progress {
  private last = -Infinity;
  private drawn = false;
  /** The first sample, where the rate is measured from (a resumed download starts past zero). */
  private first?: { t: number; done: number };

  constructor(
    private readonly sink: ProgressSink,
    private readonly label: string,
    private readonly total: number,
    private readonly unit: ProgressUnit = "items",
    private readonly now: () => number = Date.now,
  ) {}

  update(done: number): void {
    if (!this.sink.isTTY || (!(this.total > 0) && this.unit !== "download")) return;
    const t = this.now();
    this.first ??= { t, done };
    if (!(this.total > 0 && done >= this.total) && t - this.last < REDRAW_MS) return;
    this.last = t;
    this.sink.write(`\r${this.render(done, t)}\x1b[K`);
    this.drawn = true;
  }

  /** Erases the bar so the next output starts on a clean line. */
  finish(): void {
    if (this.drawn) this.sink.write("\r\x1b[K");
    this.drawn = false;
  }

  render(done: number, t = this.now()): string {
    if (this.unit === "download") return this.renderDownload(done, t);
    if (this.unit === "files") return this.renderFiles(done, t);
    const frac = Math.min(1, Math.max(0, done / this.total));
    const count = this.unit === "bytes" ? `${mib(done)}/${mib(this.total)} MiB` : `${done}/${this.total}`;
    return this.bar(frac, `${String(Math.floor(frac * 100)).padStart(3)}% ${count}`);
  }

  private bar(frac: number, text: string): string {
    const width = Math.max(10, Math.min(40, (this.sink.columns ?? 80) - this.label.length - text.length - 5));
    const full = Math.round(frac * width);
    return `${this.label} [${"#".repeat(full)}${".".repeat(width - full)}] ${text}`;
  }

  private renderFiles(done: number, t: number): string {
    const first = this.first ?? { t, done };
    const seconds = (t - first.t) / 1000;
    const rate = seconds >= 0.5 ? (done - first.done) / seconds : undefined;
    const frac = Math.min(1, Math.max(0, done / this.total));
    const speed = rate === undefined ? "" : `  ${rate.toFixed(rate < 10 ? 1 : 0)} files/s`;
    const eta = rate && rate > 0 && done < this.total ? `  ETA ${clock((this.total - done) / rate)}` : "";
    return this.bar(frac, `${String(Math.floor(frac * 100)).padStart(3)}% ${done}/${this.total}${speed}${eta}`);
  }

  private renderDownload(done: number, t: number): string {
    const first = this.first ?? { t, done };
    const seconds = (t - first.t) / 1000;
    const rate = seconds >= 0.5 ? (done - first.done) / seconds : undefined;
    const speed = rate === undefined ? "" : `  ${mib(rate)} MiB/s`;
    if (!(this.total > 0)) return `${this.label} ${mib(done)} MiB${speed}`;
    const frac = Math.min(1, Math.max(0, done / this.total));
    const eta = rate && rate > 0 && done < this.total ? `  ETA ${clock((this.total - done) / rate)}` : "";
    return this.bar(frac, `${String(Math.floor(frac * 100)).padStart(3)}% ${mib(done)}/${mib(this.total)} MiB${speed}${eta}`);
  }
}

/** A progress callback for a download (as the hub's onProgress), drawing a download bar; finish() erases it. */
export function downloadProgress(sink: ProgressSink, label: string, now: () => number = Date.now): {
  onProgress: (done: number, total: number | undefined) => void;
  finish: () => void;
} {
  let bar: Progress | undefined;
  let shownTotal: number | undefined;
  return {
    onProgress(done, total) {
      if (!bar || total !== shownTotal) {
        bar?.finish();
        bar = new Progress(sink, label, total ?? 0, "download", now);
        shownTotal = total;
      }
      bar.update(done);
    },
    finish: () => bar?.finish(),
  };
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0);
}

/** Seconds as m:ss or h:mm:ss. */
function clock(s: number): string {
  const t = Math.ceil(s);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = String(t % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}
