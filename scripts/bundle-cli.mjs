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
// - services/**: the launcher finds dist/native/balsam-spawn and the service
//   finds bin/balsam.js relative to their own files (import.meta.url), and
//   these long-running commands do not need a fast start;
// - libs/errors: one copy of the error classes for both, so the CLI's
//   `instanceof UsageError` (exit code 2) holds for errors the services throw.
//
// The drivers (the mongodb driver; bullmq with ioredis; zod) are bundled apart,
// as CommonJS files dist/bundle/drivers/<group>-<hash>.cjs, which the CLI
// loads through V8's code cache (cli/code-cache.ts): compiling the mongodb
// driver was most of what a small `balsam ls` did. In the ESM bundle,
// `import ... from "mongodb"` resolves to a small module that loads that
// file and re-exports its names; the chunk holding it is the one a command
// imports when it needs the driver.
//
// dist/bundle/manifest.json says which packages each output file holds, so
// test/unit/cli.startup.test.ts can tell that `--help` loads no driver.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
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

/** Packages bundled apart, by group: one CommonJS file per group, so bullmq and ioredis share one ioredis. */
// zod (settings validation; `zod` itself for the web API's schemas) is grouped the same way: the launcher's
// dist/libs/config imported a second copy of it from node_modules (~0.04 s of CPU per launcher start, measured).
const DRIVER_GROUPS = { mongodb: ["mongodb"], queue: ["bullmq", "ioredis"], zod: ["zod", "zod/mini", "zod/v4/locales/en.js"] };
const driverFile = {};
const driverPackages = {};
function packagesOf(inputs) {
  const packages = new Set();
  for (const input of inputs) {
    // A driver module of a package's subpath (zod/mini) counts as the package.
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input) ?? /^balsam-driver:((?:@[^/]+\/)?[^/]+)/.exec(input);
    if (m) packages.add(m[1]);
  }
  return [...packages].sort();
}
const loader = join(root, "dist", "cli", "code-cache.js");
/**
 * whatwg-url (with tr46's Unicode tables: a quarter of the mongodb driver's
 * bundle) is what mongodb-connection-string-url parses URLs with; Node's own
 * URL implements the same WHATWG standard. test/unit/driver-url.test.ts
 * checks both parse connection strings alike.
 */
const nodeUrl = {
  name: "node-url",
  setup(b) {
    b.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: "whatwg-url", namespace: "node-url" }));
    b.onLoad({ filter: /.*/, namespace: "node-url" }, () => ({ loader: "js", contents: "module.exports = { URL: globalThis.URL, URLSearchParams: globalThis.URLSearchParams };" }));
  },
};
/**
 * What the mongodb driver loads only when it needs it (the why is in each
 * file of scripts/driver-shims/): saslprep's Unicode tables, and the
 * built-ins http, tls, dns and zlib. test/unit/cli.driver-shims.test.ts checks
 * the shims behave as what they stand for.
 */
const shims = join(root, "scripts", "driver-shims");
const lazyDriverParts = {
  name: "lazy-driver-parts",
  setup(b) {
    b.onResolve({ filter: /^@mongodb-js\/saslprep$/ }, (args) => (args.importer === join(shims, "saslprep.cjs") ? undefined : { path: join(shims, "saslprep.cjs") }));
    b.onResolve({ filter: /^(node:)?(http|tls|dns|zlib)$/ }, (args) => ({ path: args.path.replace(/^node:/, ""), namespace: "lazy-builtin" }));
    b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, (args) => ({
      resolveDir: root,
      loader: "js",
      // The driver's compression module binds zlib.inflate/deflate when it loads.
      contents: `module.exports = require(${JSON.stringify(join(shims, "lazy-builtin.cjs"))})(${JSON.stringify(args.path)}, ${JSON.stringify(args.path === "zlib" ? ["inflate", "deflate"] : [])});`,
    }));
  },
};
mkdirSync(join(outdir, "drivers"), { recursive: true });
for (const [group, pkgs] of Object.entries(DRIVER_GROUPS)) {
  const r = await build({
    stdin: { contents: `module.exports = { ${pkgs.map((p) => `${JSON.stringify(p)}: require(${JSON.stringify(p)})`).join(", ")} };`, resolveDir: root, loader: "js" },
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    write: false,
    outfile: join(outdir, "drivers", `${group}.cjs`),
    logLevel: "warning",
    legalComments: "none",
    minifyWhitespace: true,
    metafile: true,
    plugins: group === "mongodb" ? [nodeUrl, lazyDriverParts] : [nodeUrl],
  });
  const text = r.outputFiles[0].text;
  // The hash names the cache too, so a rebuilt driver never meets an old cache.
  const name = `${group}-${createHash("sha256").update(text).digest("hex").slice(0, 12)}.cjs`;
  writeFileSync(join(outdir, "drivers", name), text);
  for (const p of pkgs) driverFile[p] = `drivers/${name}`;
  driverPackages[`drivers/${name}`] = packagesOf(Object.keys(r.metafile.inputs));
}

/** Each driver package, in the ESM bundle, is a module re-exporting what its CommonJS file exports. */
const requireHere = createRequire(join(root, "package.json"));
/**
 * Whether `import x from pkg` gives the CommonJS build's `default` (a package
 * with an ESM build of its own, e.g. zod's locales: a function) rather than
 * its whole `module.exports` (Node's interop for a CommonJS-only package).
 */
const esmDefault = {};
for (const pkg of Object.values(DRIVER_GROUPS).flat()) {
  const cjs = requireHere(pkg);
  esmDefault[pkg] = "default" in cjs && (await import(pkg)).default !== cjs;
}
/** That module's source: `loaderSpec` imports cli/code-cache.js, `fileSpec` is the driver file relative to the module. */
function driverModule(pkg, loaderSpec, fileSpec) {
  const names = Object.keys(requireHere(pkg)).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== "default");
  return [
    `import { requireCached } from ${JSON.stringify(loaderSpec)};`,
    `import { fileURLToPath } from "node:url";`,
    `const m = requireCached(fileURLToPath(new URL(${JSON.stringify(fileSpec)}, import.meta.url)))[${JSON.stringify(pkg)}];`,
    esmDefault[pkg] ? `export default m.default;` : `export default m;`,
    // Bound apart and exported by name: zod exports `null`, `enum`, `function`…, which no `export const` can name.
    ...names.map((n, i) => `const e${i} = m.${n};`),
    `export { ${names.map((n, i) => `e${i} as ${n}`).join(", ")} };`,
  ].join("\n");
}
/** dist/bundle/drivers/<this>: a package's ESM module, its subpath's slashes made dashes (zod-mini.mjs). */
function esmFileName(pkg) {
  return `${pkg.replace(/\//g, "-")}.mjs`;
}
/** A name as a regex matching it literally (zod/v4/locales/en.js has a dot). */
const literally = (name) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** The packages' names as one regex alternation. */
const driverAlternation = () => Object.keys(driverFile).map(literally).join("|");
const driverShims = {
  name: "driver-shims",
  setup(b) {
    const filter = new RegExp(`^(${driverAlternation()})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: "balsam-driver" }));
    // dist/libs as rewritten by an earlier bundling (the end of this script), when no tsc ran since.
    const byFile = Object.fromEntries(Object.keys(driverFile).map((k) => [esmFileName(k), k]));
    const rewritten = new RegExp(`/bundle/drivers/(${Object.keys(byFile).map(literally).join("|")})$`);
    b.onResolve({ filter: rewritten }, (args) => ({ path: byFile[rewritten.exec(args.path)[1]], namespace: "balsam-driver" }));
    b.onLoad({ filter: /.*/, namespace: "balsam-driver" }, (args) => ({ resolveDir: root, loader: "js", contents: driverModule(args.path, loader, "./" + driverFile[args.path]) }));
  },
};

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
  plugins: [keepOnDisk, driverShims],
  // `report --png`'s plotting (vega, vega-lite) and its native PNG renderer
  // (@resvg/resvg-js: a .node binary esbuild cannot bundle) load from
  // node_modules when that command runs; no other command loads them.
  external: ["vega", "vega-lite", "@resvg/resvg-js"],
  metafile: true,
  logLevel: "warning",
  legalComments: "none",
});

const manifest = {};
for (const [file, out] of Object.entries(result.metafile.outputs)) manifest[relative(outdir, join(root, file))] = packagesOf(Object.keys(out.inputs));
Object.assign(manifest, driverPackages);
writeFileSync(join(outdir, "manifest.json"), JSON.stringify(manifest, null, 1) + "\n");

// The unbundled parts (dist/services, and the dist/libs they import) load
// the same driver files as the bundle, through small ESM modules
// dist/bundle/drivers/<package>.mjs: importing the packages from
// node_modules as well loaded, compiled and kept a second, unused copy of
// the mongodb driver and of bullmq with ioredis in every launcher and
// service — measured, ~0.5 s of a launcher's 1.3 s of start-up CPU. The
// compiled files' `from "mongodb"` (and the like) are rewritten to them; a
// bare `tsc` since puts the node_modules imports back, which work as before.
const driverEsm = {};
for (const pkg of Object.keys(driverFile)) {
  const file = join(outdir, "drivers", esmFileName(pkg));
  writeFileSync(file, driverModule(pkg, relative(dirname(file), loader).split(sep).join("/"), "./" + basename(driverFile[pkg])) + "\n");
  driverEsm[pkg] = file;
}
const driverImport = new RegExp(`(\\bfrom\\s*|\\bimport\\s*\\(\\s*)"(${driverAlternation()})"`, "g");
function rewriteDriverImports(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) rewriteDriverImports(p);
    else if (name.endsWith(".js")) {
      const text = readFileSync(p, "utf8");
      const out = text.replace(driverImport, (_, lead, pkg) => {
        const rel = relative(dirname(p), driverEsm[pkg]).split(sep).join("/");
        return `${lead}${JSON.stringify(rel.startsWith(".") ? rel : `./${rel}`)}`;
      });
      if (out !== text) writeFileSync(p, out);
    }
  }
}
// dist/libs whole: the services import more of it than libs/errors, the part kept unbundled for the CLI's sake.
for (const d of ["services", "libs"]) rewriteDriverImports(join(root, "dist", d));
