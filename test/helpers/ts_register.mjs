// `node --import ./test/helpers/ts_register.mjs`: the hooks of ts_hooks.mjs, in this process and its workers.
import { register } from "node:module";

register("./ts_hooks.mjs", import.meta.url);
