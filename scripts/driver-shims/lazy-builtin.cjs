// A Node built-in module loaded on first use (scripts/bundle-cli.mjs).
//
// Why: the mongodb driver requires http (cloud credential helpers), tls and
// dns (TLS and mongodb+srv:// connections) and zlib (compression) when it
// loads; a `balsam` command on a plain mongodb:// URL uses none of them, and
// loading them cost ~15 ms of its start-up (zlib alone ~4 ms). The driver
// only reads their properties when it calls them (`tls.connect(...)`,
// `dns.promises.resolveSrv(...)`), which this proxy forwards to the real
// module, loaded then. The `functions` it reads at load time only to keep
// for later (`promisify(zlib.inflate.bind(zlib))`) are handed out as
// functions that load the module when called.
"use strict";

module.exports = function lazyBuiltin(name, functions = []) {
  let real;
  const load = () => (real ??= require(name));
  const late = new Map();
  const lateFunction = (key) => {
    if (!late.has(key)) late.set(key, (...args) => load()[key](...args));
    return late.get(key);
  };
  return new Proxy(
    {},
    {
      get: (_t, key) => (real === undefined && functions.includes(key) ? lateFunction(key) : load()[key]),
      has: (_t, key) => key in load(),
      ownKeys: () => Reflect.ownKeys(load()),
      getOwnPropertyDescriptor: (_t, key) => {
        const d = Reflect.getOwnPropertyDescriptor(load(), key);
        return d && { ...d, configurable: true };
      },
    },
  );
};
