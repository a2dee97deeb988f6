// `node --import ./test/helpers/ts_register.mjs test/helpers/run_source.mjs SOURCE`: runs SOURCE, an ES module
// whose imports are absolute URLs (such as file: URLs of the TypeScript sources), as the program.
await import(`data:text/javascript,${encodeURIComponent(process.argv[2] ?? "")}`);
