// A one-line progress bar on stderr, drawn only when stderr is a terminal (never into pipes, logs or tests).

export interface ProgressSink {
  write(s: string): void;
  isTTY: boolean;
  columns?: number;
}

const REDRAW_MS = 100;

export class Progress {
  private last = -Infinity;
  private drawn = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly label: string,
    private readonly total: number,
    private readonly unit: "bytes" | "items" = "items",
    private readonly now: () => number = Date.now,
  ) {}

  update(done: number): void {
    if (!this.sink.isTTY || !(this.total > 0)) return;
    const t = this.now();
    if (done < this.total && t - this.last < REDRAW_MS) return;
    this.last = t;
    this.sink.write(`\r${this.render(done)}\x1b[K`);
    this.drawn = true;
  }

  /** Erases the bar so the next output starts on a clean line. */
  finish(): void {
    if (this.drawn) this.sink.write("\r\x1b[K");
    this.drawn = false;
  }

  render(done: number): string {
    const frac = Math.min(1, Math.max(0, done / this.total));
    const count = this.unit === "bytes" ? `${mib(done)}/${mib(this.total)} MiB` : `${done}/${this.total}`;
    const text = `${this.label} ${String(Math.floor(frac * 100)).padStart(3)}% ${count}`;
    const width = Math.max(10, Math.min(40, (this.sink.columns ?? 80) - text.length - 4));
    const full = Math.round(frac * width);
    return `${this.label} [${"#".repeat(full)}${".".repeat(width - full)}] ${text.slice(this.label.length + 1)}`;
  }
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0);
}
