// @mongodb-js/saslprep as the bundled mongodb driver sees it (scripts/bundle-cli.mjs).
//
// Why: loading the real package inflates its Unicode tables and builds
// bitfields from them (zlib + memory-pager): ~12 ms of every `balsam`
// command that connects, for a function called only at a SCRAM-SHA-256
// login. And SASLprep (RFC 4013) leaves printable ASCII unchanged: it maps
// only non-ASCII characters (B.1, C.1.2), NFKC fixes ASCII, and the only
// ASCII it prohibits are the control characters (C.2.1). Balsam's own
// passwords are base64url. Anything else goes to the real package, loaded then.
// test/unit/cli.driver-shims.test.ts compares the two.
"use strict";

let full;

function saslprep(input, opts) {
  if (typeof input === "string" && /^[\x20-\x7e]*$/.test(input)) return input;
  full ??= require("@mongodb-js/saslprep");
  return full(input, opts);
}
saslprep.saslprep = saslprep;
saslprep.default = saslprep;
module.exports = saslprep;
