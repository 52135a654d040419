import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_MAX_LEASE_LAPSES, SettingsSchema, resolveMaxLeaseLapses } from "../../libs/config/index.js";
import { ConfigError } from "../../libs/errors/index.js";

const base = { version: 1, mongoUrl: "local", redisUrl: "local", dbName: "balsam" };

test("maxLeaseLapses: settings default 5, the settings file's value, then BALSAM_MAX_LEASE_LAPSES", () => {
  assert.equal(DEFAULT_MAX_LEASE_LAPSES, 5);
  assert.equal(SettingsSchema.parse(base).maxLeaseLapses, 5);
  const settings = SettingsSchema.parse({ ...base, maxLeaseLapses: 3 });
  assert.equal(resolveMaxLeaseLapses(settings, {}), 3);
  assert.equal(resolveMaxLeaseLapses(settings, { BALSAM_MAX_LEASE_LAPSES: "8" }), 8);
  assert.equal(resolveMaxLeaseLapses(undefined, {}), 5);
});

test("a bad maxLeaseLapses is refused in the settings file and in the environment", () => {
  assert.equal(SettingsSchema.safeParse({ ...base, maxLeaseLapses: 0 }).success, false);
  assert.equal(SettingsSchema.safeParse({ ...base, maxLeaseLapses: 2.5 }).success, false);
  for (const bad of ["0", "-1", "two", "1.5"]) {
    assert.throws(() => resolveMaxLeaseLapses(undefined, { BALSAM_MAX_LEASE_LAPSES: bad }), (e: unknown) => e instanceof ConfigError && e.message.includes(`not '${bad}'`), bad);
  }
});
