import type { Registry } from "prom-client";
import type { Balsam } from "../../libs/client/index.js";
import type { FinishedFeed, StatesPoller } from "./live.js";

/** What every route of one `balsam web` server shares. */
export interface WebContext {
  balsam: Balsam;
  token: string;
  feed: FinishedFeed;
  states: StatesPoller;
  metrics: Registry;
  /** A launcher whose heartbeat is older than this is shown as not alive. */
  leaseTtlMs: number;
  version: string;
}
