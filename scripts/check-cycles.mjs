// Fails when the product's modules import each other in a cycle (as bullmq's
// `madge --circular`): dependencies point one way (DESIGN §2). Reads the
// TypeScript sources with the compiler the project already has, so it needs
// no build and no extra package. Type-only imports count too: a cycle of
// types is still two modules that cannot be understood apart.
import ts from "typescript";
import { readdirSync, readFileSync, statSync, existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = resolve(new URL("..", import.meta.url).pathname);
const dirs = (process.argv.slice(2).length ? process.argv.slice(2) : ["libs", "services", "cli", "bench", "examples"]).map((d) => join(root, d));

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith(".ts") && !p.endsWith(".d.ts") ? [p] : [];
  });
}

/** The relative imports and re-exports of one file, resolved to .ts files. */
function importsOf(file) {
  const src = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, false);
  const out = [];
  for (const s of src.statements) {
    const spec = (ts.isImportDeclaration(s) || ts.isExportDeclaration(s)) && s.moduleSpecifier && ts.isStringLiteral(s.moduleSpecifier) ? s.moduleSpecifier.text : undefined;
    if (!spec?.startsWith(".")) continue;
    const target = resolve(dirname(file), spec.replace(/\.js$/, ".ts"));
    if (existsSync(target)) out.push(target);
  }
  return out;
}

const files = dirs.filter(existsSync).flatMap(walk);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

// Tarjan's strongly connected components: each one of two or more files is a cycle.
let index = 0;
const idx = new Map(), low = new Map(), stack = [], on = new Set(), cycles = [];
function visit(v) {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  on.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!idx.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const scc = [];
    let w;
    do {
      w = stack.pop();
      on.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) cycles.push(scc);
  }
}
for (const f of graph.keys()) if (!idx.has(f)) visit(f);

if (cycles.length) {
  console.error(`check-cycles: ${cycles.length} import cycle(s):`);
  for (const c of cycles) console.error(`  ${c.map((f) => relative(root, f)).sort().join(" <-> ")}`);
  process.exit(1);
}
console.log(`check-cycles: no import cycles in ${files.length} files`);
