// Bundles the compiled CLI (dist/cli/index.js) with esbuild into
// dist/bundle/: balsam.js, what every command loads, and chunks that a
// command's action imports when it runs (the drivers among them).
//
// Why: Node 20 has no compile cache, and loading the CLI as ~300 separate
// files (our ~50 modules, the mongodb driver's ~200, zod's, commander's)
// cost more than the work of a small `balsam ls`: measured on 2 cores,
// `ls` of 1,000 jobs 549 → 430 ms of CPU, `--help` 120 → 90 ms.
//
// Kept out of the bundle, loaded from dist/ as compiled:
// - services/**: the launcher finds its spawner thread and the service
//   finds bin/balsam.js beside their own files (import.meta.url), and
//   these long-running commands do not need a fast start;
// - libs/errors: one copy of the error classes for both, so the CLI's
//   `instanceof UsageError` (exit code 2) holds for errors the services throw.
// dist/bundle/manifest.json says which packages each output file holds, so
// test/unit/cli.startup.test.ts can tell that `--help` loads no driver.
import { build } from "esbuild";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist", "bundle");
const entry = join(root, "dist", "cli", "index.js");
if (!existsSync(entry)) {
  console.error("bundle-cli: dist/cli/index.js is missing; run `tsc -p tsconfig.json` first");
  process.exit(1);
}
const unbundled = [join(root, "dist", "services") + sep, join(root, "dist", "libs", "errors") + sep];

/** Relative imports of the unbundled parts stay imports, of the files in dist/. */
const keepOnDisk = {
  name: "keep-on-disk",
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const target = resolve(args.resolveDir, args.path);
      if (!unbundled.some((d) => target.startsWith(d))) return undefined;
      return { path: "./" + relative(outdir, target).split(sep).join("/"), external: true };
    });
  },
};

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { balsam: entry },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  chunkNames: "chunk-[hash]",
  // CommonJS packages (the mongodb driver) call require() for Node's own modules.
  banner: { js: "import { createRequire as __balsamRequire } from 'node:module'; const require = __balsamRequire(import.meta.url);" },
  plugins: [keepOnDisk],
  metafile: true,
  logLevel: "warning",
  legalComments: "none",
});

const manifest = {};
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  const packages = new Set();
  for (const input of Object.keys(out.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    if (m) packages.add(m[1]);
  }
  manifest[relative(outdir, join(root, file))] = [...packages].sort();
}
writeFileSync(join(outdir, "manifest.json"), JSON.stringify(manifest, null, 1) + "\n");
