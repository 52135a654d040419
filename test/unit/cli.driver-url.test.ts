import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { requireCached } from "../../cli/code-cache.js";

/**
 * The bundled mongodb driver (scripts/bundle-cli.mjs) parses connection
 * strings with Node's own WHATWG URL instead of the whatwg-url package.
 * Both must read every connection string alike: same options, same
 * credentials, same refusals.
 */
const DRIVERS = fileURLToPath(new URL("../../bundle/drivers/", import.meta.url));
const file = readdirSync(DRIVERS).find((f) => /^mongodb-[0-9a-f]+\.cjs$/.test(f));
type Mongo = typeof import("mongodb");
const original = createRequire(import.meta.url)("mongodb") as Mongo;

const URLS = [
  "mongodb://127.0.0.1:27017",
  "mongodb://127.0.0.1:40123/?directConnection=true",
  "mongodb://balsam:s3cr%2Ft%40x@127.0.0.1:40123/admin?authSource=admin&authMechanism=SCRAM-SHA-256",
  "mongodb://u:p@h1:1,h2:2,[::1]:3/db?replicaSet=rs0&readPreference=secondaryPreferred&w=majority&retryWrites=false",
  "mongodb+srv://u:p@cluster0.example.net/db?w=majority&readPreference=nearest&readPreferenceTags=dc:ny",
  "mongodb://%2Ftmp%2Fmongodb-27017.sock/?serverSelectionTimeoutMS=500",
  "mongodb://host.example.org/?TLS=true&tlsAllowInvalidCertificates=true&appName=balsam%20cli",
  "mongodb://user@host/?authMechanism=MONGODB-X509",
  "mongodb://h/?compressors=zlib&zlibCompressionLevel=4&maxPoolSize=3&connectTimeoutMS=100",
  "mongodb://ÉxAmple.org:1/d",
  "mongodb://h/d?readPreferenceTags=dc:ny,rack:1&readPreferenceTags=",
  "mongodb://h:99999",
  "mongodb://@h",
  "mongodb://u:p:q@h",
  "mongodb://h/?unknownOption=1",
  "mongodb://h/?w=1&w=2",
  "http://h",
  "mongodb://",
];

function parse(m: Mongo, url: string): unknown {
  try {
    const o = new m.MongoClient(url).options as unknown as Record<string, unknown>;
    const { credentials, hosts, ...rest } = o;
    return {
      hosts: (hosts as Array<{ toString(): string }>).map(String),
      credentials: credentials ? JSON.parse(JSON.stringify(credentials)) : null,
      ...Object.fromEntries(
        Object.entries(rest)
          .filter(([, v]) => ["string", "number", "boolean"].includes(typeof v))
          .sort(),
      ),
    };
  } catch (err) {
    return { error: (err as Error).name };
  }
}

describe("the bundled mongodb driver reads connection strings as the original", () => {
  test("a driver bundle exists", () => assert.ok(file, `no mongodb-*.cjs in ${DRIVERS}; run npm run build`));
  for (const url of URLS) {
    test(url, { skip: file === undefined }, () => {
      process.env.BALSAM_CODE_CACHE = "0";
      const bundled = (requireCached(DRIVERS + file) as { mongodb: Mongo }).mongodb;
      assert.deepEqual(parse(bundled, url), parse(original, url));
    });
  }
});
