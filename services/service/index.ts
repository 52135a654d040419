/** `balsam service` and launcher batch jobs (`submit-launch`, `ls queues`). */
export { BalsamService, type ServiceOptions, type PassSummary } from "./service.js";
export { decideLaunch, type PolicyDecision, type PolicyInput, type WorkBucket } from "./policy.js";
export {
  BALSAM_BIN,
  checkWorkToDo,
  ensureTemplate,
  findOnPath,
  newLaunchId,
  refreshLaunchStates,
  resolveScheduler,
  resolveSubmitLaunchOptions,
  runCommand,
  submitLaunch,
  type LaunchChange,
  type RefreshResult,
  type ResolvedSubmitLaunch,
  type SubmitContext,
  type SubmitLaunchOptions,
} from "./launches.js";
