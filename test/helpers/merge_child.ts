// Child process of the merge kill -9 test: merges its arguments (OUT PART...) with --force, printing its progress.
import { writeSync } from "node:fs";
import { mergeCollections } from "../../src/collection/merge.js";

const [out, ...parts] = process.argv.slice(2);
writeSync(1, "start\n");
const r = mergeCollections(parts, out!, { force: true, batch: 100, onProgress: (n) => writeSync(1, `wrote ${n}\n`) });
writeSync(1, `done ${r.rows}\n`);
