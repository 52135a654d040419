export * from "./settings.js";
export * from "./redact.js";
