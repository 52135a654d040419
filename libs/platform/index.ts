/** Batch-environment node discovery, MPI launch commands, batch-scheduler adapters, finding executables. */
export * from "./nodes.js";
export * from "./mpi.js";
export * from "./schedulers.js";
export * from "./gpus.js";
export * from "./executable.js";
