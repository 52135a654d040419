export * from "./states.js";
export * from "./job.js";
export * from "./fields.js";
export * from "./commandline.js";
export * from "./workdir.js";
export * from "./snapshot.js";
export * from "./tags.js";
export * from "./reports.js";
