// Child process of the kill -9 test: appends batches of rows to a collection forever, printing the row count after
// each batch's transaction has returned.
import { writeSync } from "node:fs";
import { CollectionDb } from "../../src/collection/db.js";
import { collectionRow } from "./collection_rows.js";

const [file, dimArg, batchArg] = process.argv.slice(2);
const dim = Number(dimArg);
const batch = Number(batchArg);
const db = CollectionDb.open(file, { dim });
let n = db.count();
writeSync(1, `open ${n}\n`);
for (;;) {
  const rows = [];
  for (let i = n; i < n + batch; i++) rows.push(collectionRow(i, dim));
  db.upsert(rows);
  n += batch;
  writeSync(1, `committed ${n}\n`);
}
