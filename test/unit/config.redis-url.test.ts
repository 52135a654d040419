import { test } from "node:test";
import assert from "node:assert/strict";
import { checkQueuePrefix, parseRedisUrl, redactUrl } from "../../libs/config/index.js";
import { ConfigError } from "../../libs/errors/index.js";
import { queueName } from "../../libs/queue/names.js";

test("redis:// and a bare host:port stay what ioredis reads, unchanged", () => {
  for (const url of ["redis://127.0.0.1:6379", "redis://:p%40ss@h:1/2", "rediss://h:6380", "REDIS://h:1", "127.0.0.1:6379"]) {
    assert.deepEqual(parseRedisUrl(url), { kind: "single", url });
  }
});

/** [what the case shows, URL, what parseRedisUrl gives besides the URL itself] */
const GOOD: Array<[string, string, object]> = [
  [
    "redis-cluster:// names seed nodes, with a percent-encoded password",
    "redis-cluster://:s3cr%2Ft%40x@10.0.0.1:7000,10.0.0.2:7001, [::1]:7002",
    { kind: "cluster", nodes: [{ host: "10.0.0.1", port: 7000 }, { host: "10.0.0.2", port: 7001 }, { host: "::1", port: 7002 }], password: "s3cr/t@x" },
  ],
  ["redis-cluster:// with a user; the port defaults to 6379", "redis-cluster://me:pw@node", { kind: "cluster", nodes: [{ host: "node", port: 6379 }], username: "me", password: "pw" }],
  [
    "redis-sentinel:// names the Sentinels and the master group",
    "redis-sentinel://:pw@s1:26379,s2/mymaster",
    { kind: "sentinel", sentinels: [{ host: "s1", port: 26379 }, { host: "s2", port: 26379 }], masterName: "mymaster", password: "pw" },
  ],
];

for (const [what, url, want] of GOOD) {
  test(what, () => {
    assert.deepEqual(parseRedisUrl(url), { url, ...want });
  });
}

const BAD: Array<[string, RegExp]> = [
  ["redis-cluster://", /names no host/],
  ["redis-cluster://:hunter2@", /names no host/],
  ["redis-cluster://h:0", /no valid port/],
  ["redis-cluster://h:99999", /no valid port/],
  ["redis-cluster://h:", /no valid port/],
  ["redis-cluster://h:7000,,h:7001", /'' is not host:port/],
  ["redis-cluster://h:x", /'h:x' is not host:port/],
  ["redis-cluster://h:7000/0", /cluster has no database number/],
  ["redis-cluster://h:7000?tls=true", /options after/],
  ["redis-cluster://:%zz@h:7000", /password is not percent-encoded/],
  ["redis-sentinel://:hunter2@h:26379", /names no master group/],
  ["redis-sentinel://h:26379/", /names no master group/],
  ["redis-sentinel://h:26379/my%20master", /master name 'my master' may use/],
  ["redis-clustr://:hunter2@h:7000", /unknown scheme 'redis-clustr:\/\/'/],
  ["mongodb://h:27017", /unknown scheme 'mongodb:\/\/'/],
];

test("a URL of no known form is one ConfigError line that names the fault, the forms, and never the password", () => {
  for (const [url, why] of BAD) {
    assert.throws(
      () => parseRedisUrl(url),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, `${url}: ${String(e)}`);
        assert.match(e.message, why, url);
        assert.match(e.message, /^Redis URL '.*' is not valid: /, url);
        assert.doesNotMatch(e.message + (e.hint ?? ""), /hunter2|\n/, url);
        assert.match(e.hint ?? "", /redis-cluster:\/\/\[:password@\]host:port\[,host:port…\]/);
        return true;
      },
    );
  }
});

test("passwords of cluster and Sentinel URLs are masked where URLs are shown", () => {
  assert.equal(redactUrl("redis-cluster://:hunter2@h1:7000,h2:7001"), "redis-cluster://:***@h1:7000,h2:7001");
  assert.equal(redactUrl("redis-sentinel://u:hunter2@s1:26379,s2:26380/mymaster"), "redis-sentinel://u:***@s1:26379,s2:26380/mymaster");
});

test("each workflow's queue is its own hash tag; a braced prefix is refused on a cluster only", () => {
  assert.equal(queueName("wf-A"), "{wf-A}");
  assert.notEqual(queueName("a"), queueName("b"));
  const cluster = parseRedisUrl("redis-cluster://h:7000");
  assert.throws(() => checkQueuePrefix(cluster, "{balsam}"), (e: unknown) => e instanceof ConfigError && /one hash slot/.test(e.message));
  checkQueuePrefix(cluster, "balsam");
  checkQueuePrefix(parseRedisUrl("redis://h:6379"), "{balsam}");
  checkQueuePrefix(parseRedisUrl("redis-sentinel://h/m"), "{balsam}");
});
