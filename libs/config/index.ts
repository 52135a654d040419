export * from "./settings.js";
export * from "./redact.js";
export * from "./redis-url.js";
