/** Batch-environment node discovery and MPI launch commands. */
export * from "./nodes.js";
export * from "./mpi.js";
