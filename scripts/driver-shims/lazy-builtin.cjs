// A Node built-in module loaded on first use (scripts/bundle-cli.mjs).
//
// Why: the mongodb driver requires http (cloud credential helpers), tls and
// dns (TLS and mongodb+srv:// connections) when it loads; a `balsam` command
// on a plain mongodb:// URL uses none of them, and loading them cost ~15 ms
// of its start-up. The driver only reads their properties when it calls
// them (`tls.connect(...)`, `dns.promises.resolveSrv(...)`), which this
// proxy forwards to the real module, loaded then.
"use strict";

module.exports = function lazyBuiltin(name) {
  let real;
  const load = () => (real ??= require(name));
  return new Proxy(
    {},
    {
      get: (_t, key) => load()[key],
      has: (_t, key) => key in load(),
      ownKeys: () => Reflect.ownKeys(load()),
      getOwnPropertyDescriptor: (_t, key) => {
        const d = Reflect.getOwnPropertyDescriptor(load(), key);
        return d && { ...d, configurable: true };
      },
    },
  );
};
