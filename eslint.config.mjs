import tseslint from "typescript-eslint";

// Only adapters import drivers (STYLE.md): the store's collections, mongodb, bullmq and ioredis stay behind libs/store and libs/queue.
const STORE_INSIDES = { group: ["**/store/collections.js", "**/store/collections"], message: "the store's collections are private to libs/store: call a named operation" };
const MONGODB = { name: "mongodb", message: "only libs/store talks to MongoDB: call a named operation from libs/store" };
const BULLMQ = { name: "bullmq", message: "only libs/queue talks to BullMQ: use libs/queue's port" };
const IOREDIS = { name: "ioredis", message: "only libs/queue talks to Redis: use libs/queue" };
const fence = (paths, patterns) => ({ "no-restricted-imports": ["error", { paths, patterns }] });

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", ".cache/**", "bin/**", "scripts/**"] },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // A promise nobody awaits is a lost job.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", ignoreRestSiblings: true }],
      ...fence([MONGODB, BULLMQ, IOREDIS], [STORE_INSIDES]),
    },
  },
  { files: ["libs/store/**/*.ts"], rules: fence([BULLMQ, IOREDIS], []) },
  { files: ["libs/queue/**/*.ts"], rules: fence([MONGODB], [STORE_INSIDES]) },
  // The raw-driver baseline the bench compares jobs.addMany with, and the peers' bench reading Redis's own INFO (commands, pid) as the tests inspect servers.
  { files: ["bench/run.ts", "bench/peers.ts"], rules: fence([MONGODB], [STORE_INSIDES]) },
  {
    // node:test's test()/describe() return promises the runner itself awaits.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-floating-promises": "off", "@typescript-eslint/no-non-null-assertion": "off" },
  },
  // Tests set up and inspect real servers with their drivers (the conformance tests are about the server itself).
  { files: ["test/**/*.ts"], rules: { "no-restricted-imports": "off" } },
);
