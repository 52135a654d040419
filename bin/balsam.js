#!/usr/bin/env node
// The built CLI lives in dist/; `npm run build` (or `npm test`) produces it.
import("../dist/cli/index.js").catch((err) => {
  if (err && err.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("dist/cli")) {
    console.error("balsam: not built yet; run `npm run build` in " + new URL("..", import.meta.url).pathname);
    process.exitCode = 1;
    return;
  }
  throw err;
});
