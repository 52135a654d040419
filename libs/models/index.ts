export * from "./states.js";
export * from "./job.js";
export * from "./fields.js";
