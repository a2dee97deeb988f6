#!/usr/bin/env node
// The clip-ts executable (package.json "bin").
import { runCli } from "./cli.js";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: Object.assign({ write: (s: string) => process.stderr.write(s) }, {
    isTTY: process.stderr.isTTY === true,
    columns: process.stderr.columns,
  }),
  cwd: process.cwd(),
});
