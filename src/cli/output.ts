// Output files are replaced whole or not at all: the bytes go to a temporary file in the target's directory,
// are flushed to disk, and only then renamed over the target. A write that fails (disk full, a file-size
// limit) leaves the previous file as it was and removes the temporary one.
import { randomBytes } from "node:crypto";
import * as nodeFs from "node:fs";
import { basename, dirname, join } from "node:path";
import { CliError } from "./args.js";

/** The file-system calls an output goes through; tests pass ones that fail. */
export type OutputFs = Pick<typeof nodeFs,
  "openSync" | "writeSync" | "fsyncSync" | "closeSync" | "renameSync" | "unlinkSync" | "statSync" | "realpathSync" | "accessSync" | "fchmodSync">;

export class OutputFile {
  private fd: number | null = null;
  /** Whether the temporary file is ours to remove. */
  private created = false;

  private constructor(
    private readonly fs: OutputFs, private readonly what: string, private readonly shown: string,
    private readonly target: string, private readonly temp: string | null, private readonly existed: boolean,
  ) {}

  /**
   * Starts replacing `path` (absolute; `shown` is how the user wrote it). Devices and pipes (/dev/stdout) cannot
   * be renamed over, so they are written in place.
   */
  static open(path: string, shown: string, what = "--out", fs: OutputFs = nodeFs): OutputFile {
    const fail = (e: unknown) => new CliError(`${what}: cannot write "${shown}" (${reason(e)})`);
    let stat: nodeFs.Stats | undefined, target = path;
    try {
      stat = fs.statSync(path, { throwIfNoEntry: false });
      if (stat?.isFile()) {
        target = fs.realpathSync(path); // through a symbolic link, the file it points to is the one replaced
        fs.accessSync(target, nodeFs.constants.W_OK); // a read-only file stays protected
      }
    } catch (e) {
      throw fail(e);
    }
    if (stat?.isDirectory()) throw new CliError(`${what}: "${shown}" is a directory, expected a file`);
    if (stat && !stat.isFile()) {
      const out = new OutputFile(fs, what, shown, path, null, true);
      out.fd = out.attempt("write", () => fs.openSync(path, "w"));
      return out;
    }
    const temp = join(dirname(target), `.${basename(target)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
    const out = new OutputFile(fs, what, shown, target, temp, stat !== undefined);
    out.fd = out.attempt("create", () => fs.openSync(temp, "wx", 0o666));
    out.created = true;
    if (stat) out.attempt("write", () => fs.fchmodSync(out.fd!, stat.mode & 0o7777)); // the replaced file's permissions
    return out;
  }

  write(bytes: Uint8Array): void {
    const fd = this.fd!;
    this.attempt("write", () => {
      for (let off = 0; off < bytes.length;) {
        const n = this.fs.writeSync(fd, bytes, off, bytes.length - off);
        if (n <= 0) throw new Error(`write returned ${n}`);
        off += n;
      }
    });
  }

  /** Flushes the bytes to disk and puts the file in place. */
  commit(): void {
    const fd = this.fd!;
    this.attempt("write", () => {
      if (this.temp !== null) this.fs.fsyncSync(fd);
      this.fd = null;
      this.fs.closeSync(fd);
      if (this.temp !== null) this.fs.renameSync(this.temp, this.target);
      this.created = false;
    });
    if (this.temp !== null) syncDirectory(this.fs, dirname(this.target));
  }

  /** Removes the temporary file; the target is as it was. Safe to call more than once. */
  abort(): void {
    if (this.fd !== null) {
      try {
        this.fs.closeSync(this.fd);
      } catch { /* the output is abandoned anyway */ }
      this.fd = null;
    }
    if (this.temp !== null && this.created) {
      this.created = false;
      try {
        this.fs.unlinkSync(this.temp);
      } catch { /* renamed or never created */ }
    }
  }

  private attempt<T>(verb: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      this.abort();
      const kept = this.temp === null ? "" : this.existed ? `; "${this.shown}" is left as it was` : "; nothing was written";
      throw new CliError(`${this.what}: cannot ${verb} "${this.shown}" (${reason(e)})${kept}`);
    }
  }
}

/** Writes `fill`'s bytes to path as one replacement: all of them, or none and the old file kept. */
export function writeFileAtomic(path: string, shown: string, fill: (out: OutputFile) => void, what = "--out", fs: OutputFs = nodeFs): void {
  const out = OutputFile.open(path, shown, what, fs);
  try {
    fill(out);
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  }
}

/** The rename is durable once the directory is flushed; where that is not possible the file is still in place. */
function syncDirectory(fs: OutputFs, dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* closed */ }
  }
}

function reason(e: unknown): string {
  const { code, message } = e as { code?: string; message?: string };
  const text = describe(code);
  return text === undefined ? message ?? String(e) : `${text}, ${code}`;
}

function describe(code: string | undefined): string | undefined {
  switch (code) {
    case "ENOENT": return "no such directory";
    case "ENOTDIR": return "a parent is not a directory";
    case "EACCES": case "EPERM": return "permission denied";
    case "ENOSPC": return "no space left on the device";
    case "EDQUOT": return "disk quota exceeded";
    case "EFBIG": return "file too large";
    case "EROFS": return "read-only file system";
    case "EIO": return "input/output error";
    default: return undefined;
  }
}
