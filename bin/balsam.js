#!/usr/bin/env node
// The built CLI lives in dist/; `npm run build` (or `npm test`) produces it:
// tsc compiles to dist/cli/, then scripts/bundle-cli.mjs bundles that into
// dist/bundle/, which starts faster (see that script). A bundle older than
// the compiled files (a bare `tsc` since) is stale: the compiled files run.
import { statSync } from "node:fs";

const dist = new URL("../dist/", import.meta.url);
const mtime = (p) => {
  try {
    return statSync(new URL(p, dist)).mtimeMs;
  } catch {
    return undefined;
  }
};
const bundled = mtime("bundle/balsam.js");
const compiled = mtime("cli/index.js");
const main = bundled !== undefined && (compiled === undefined || bundled >= compiled) ? "../dist/bundle/balsam.js" : "../dist/cli/index.js";

import(main).catch((err) => {
  if (err && err.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes(main.slice(3))) {
    console.error("balsam: not built yet; run `npm run build` in " + new URL("..", import.meta.url).pathname);
    process.exitCode = 1;
    return;
  }
  throw err;
});
