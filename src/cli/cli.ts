// The command dispatcher: argv → command; every failure becomes one line on stderr and a non-zero status.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CliError, UsageError } from "./args.js";
import { packageRoot, type Command, type Io } from "./common.js";
import { embedImage } from "./embed_image.js";
import { embedText } from "./embed_text.js";
import { exportCommand } from "./export.js";
import { indexCommand } from "./index_cmd.js";
import { logits } from "./logits.js";
import { merge } from "./merge.js";
import { models } from "./models.js";
import { parity } from "./parity.js";
import { preprocessCommand } from "./preprocess.js";
import { searchCommand } from "./search.js";
import { summary } from "./summary.js";
import { tokenize } from "./tokenize.js";
import { zeroShotCommand } from "./zero_shot.js";

export const COMMANDS: readonly Command[] = [embedImage, embedText, logits, tokenize, preprocessCommand, zeroShotCommand, indexCommand, searchCommand, merge, exportCommand, summary, parity, models];

function usage(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: clip-ts <command> [options]   (clip-ts help <command> for its options)
       clip-ts --version

OpenAI's CLIP in TypeScript. Without --model, commands use the embedded tiny model.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join("\n")}
`;
}

/** Runs one command line; returns the exit status (0 ok, 1 failure, 2 usage error). */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || (name === "help" && rest.length === 0)) {
    io.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    io.stdout.write(`${JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")).version}\n`);
    return 0;
  }
  if (name === "help") {
    if (rest.length > 1) {
      io.stderr.write(`clip-ts help: takes one command name, got ${rest.length}\n`);
      return 2;
    }
    const command = find(rest[0]!, io);
    if (!command) return 2;
    io.stdout.write(`${command.help}\n`);
    return 0;
  }
  const command = find(name, io);
  if (!command) return 2;
  try {
    await command.run(rest, io);
    return 0;
  } catch (e) {
    const usageError = e instanceof UsageError;
    const known = usageError || e instanceof CliError;
    const message = known ? (e as Error).message : `internal error: ${(e as Error)?.message ?? String(e)}`;
    io.stderr.write(`clip-ts ${name}: ${message.replace(/\s*\n\s*/g, " ")}${usageError ? ` (see clip-ts ${name} --help)` : ""}\n`);
    if (!known && process.env.CLIP_TS_DEBUG) io.stderr.write(`${(e as Error)?.stack}\n`);
    return usageError ? 2 : 1;
  }
}

/** The command of that name, or undefined after saying on stderr that there is none. */
function find(name: string, io: Io): Command | undefined {
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) io.stderr.write(`clip-ts: unknown command "${name}" (commands: ${COMMANDS.map((c) => c.name).join(", ")})\n`);
  return command;
}

/** An Io that keeps what the command writes: for running commands in-process (tests, scripts). */
export function memoryIo(cwd = process.cwd(), isTTY = false): Io & { out(): string; err(): string } {
  const out: string[] = [], err: string[] = [];
  return {
    stdout: { write: (s: string) => void out.push(s) },
    stderr: { write: (s: string) => void err.push(s), isTTY, columns: 80 },
    cwd,
    out: () => out.join(""),
    err: () => err.join(""),
  };
}
