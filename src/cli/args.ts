// Argument parsing for the commands: node:util parseArgs in strict mode, with its errors turned into one-line
// usage errors, plus the checks every command repeats (integers, choices, required options).
import { parseArgs } from "node:util";

/** Bad command-line usage: exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A user-facing failure (missing file, bad content): exit status 1, one line, no stack. */
export class CliError extends Error {
  override name = "CliError";
}

export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

export type Values<O extends OptionSpec> = {
  [K in keyof O]?: O[K]["type"] extends "boolean" ? (O[K]["multiple"] extends true ? boolean[] : boolean)
    : O[K]["multiple"] extends true ? string[] : string;
};

export const HELP_OPTION = { help: { type: "boolean", short: "h" } } as const;

export function parse<O extends OptionSpec>(
  argv: readonly string[], options: O, positionals: boolean,
): { values: Values<O> & { help?: boolean }; positionals: string[] } {
  try {
    const r = parseArgs({ args: [...argv], options: { ...options, ...HELP_OPTION }, strict: true, allowPositionals: positionals, tokens: true });
    // parseArgs keeps the last of a repeated option: a second --labels would silently replace the first.
    const seen = new Set<string>();
    for (const t of r.tokens) {
      if (t.kind !== "option" || options[t.name]?.type !== "string" || options[t.name]?.multiple) continue;
      if (seen.has(t.name)) throw new UsageError(`--${t.name} given more than once; it takes one value`);
      seen.add(t.name);
    }
    return { values: r.values as Values<O> & { help?: boolean }, positionals: r.positionals };
  } catch (e) {
    const err = e as Error & { code?: string };
    switch (err.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown option ${quoted(err.message) ?? err.message}`);
      case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
        throw new UsageError(`unexpected argument ${quoted(err.message) ?? ""}: this command takes options only`);
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
        throw new UsageError(err.message.replace(/^Option/, "option").split(". ")[0]);
      default:
        throw e;
    }
  }
}

/** The first '…'-quoted word of a parseArgs message. */
function quoted(message: string): string | undefined {
  return /'([^']*)'/.exec(message)?.[1];
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new UsageError(`missing ${flag}`);
  return value;
}

export function integer(value: string | undefined, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`${flag} must be an integer in [${min}, ${max}], got "${value}"`);
  }
  return Number(value);
}

export function number(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (value.trim() === "" || !Number.isFinite(x) || x < 0) throw new UsageError(`${flag} must be a non-negative number, got "${value}"`);
  return x;
}

export function choice<T extends string>(value: string | undefined, flag: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${choices.join(", ")}, got "${value}"`);
  return value as T;
}
