/**
 * The errors RaftNode gives callers, each with a stable `code` to switch on. Owns nothing else.
 */

/** This node is not the leader; retry at `leaderUrl` (null when no leader is known). */
export class NotLeaderError extends Error {
  readonly code = "BALLOT_ERR_NOT_LEADER";
  constructor(
    readonly leaderId: string | null,
    readonly leaderUrl: string | null,
  ) {
    super(
      leaderId
        ? `not the leader; the leader is ${leaderId} at ${leaderUrl ?? "an unknown URL"}`
        : "not the leader, and no leader is known",
    );
    this.name = "NotLeaderError";
  }
}

/** Nothing was proposed and nothing was applied; it is safe to retry (e.g. a leadership transfer or backpressure). */
export class UnavailableError extends Error {
  readonly code = "BALLOT_ERR_UNAVAILABLE";
  constructor(message: string) {
    super(message);
    this.name = "UnavailableError";
  }
}

/** The proposal was made but its fate is unknown (it may still be applied): do not retry blindly. */
export class OutcomeUnknownError extends Error {
  readonly code = "BALLOT_ERR_OUTCOME_UNKNOWN";
  constructor(message: string) {
    super(message);
    this.name = "OutcomeUnknownError";
  }
}

/** The proposal was definitely not applied: another entry took its place in the log. */
export class ProposalDroppedError extends Error {
  readonly code = "BALLOT_ERR_PROPOSAL_DROPPED";
  constructor(index: number) {
    super(`the proposal at index ${index} was replaced by a new leader's entry and will never be applied`);
    this.name = "ProposalDroppedError";
  }
}

/** The node was stopped. */
export class StoppedError extends Error {
  readonly code = "BALLOT_ERR_STOPPED";
  constructor() {
    super("the node is stopped");
    this.name = "StoppedError";
  }
}

/**
 * A membership change was refused and nothing changed: `reason` says why (`config_pending`,
 * `invalid_config_change`, `learner_behind`, `quorum_at_risk`).
 */
export class MembershipError extends Error {
  readonly code = "BALLOT_ERR_MEMBERSHIP";
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "MembershipError";
  }
}

/**
 * Refused for overload before anything reached the log: nothing was applied, retry after
 * `retryAfterMs`. A kind of UnavailableError, so code that retries those retries this too; the
 * HTTP API answers it 429.
 */
export class OverloadedError extends UnavailableError {
  constructor(
    message: string,
    /** What is over its bound: in-flight proposals, queued requests, or the event loop's lag. */
    readonly reason: "proposals" | "requests" | "event_loop_lag",
    /** How long the caller should wait before trying again. */
    readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = "OverloadedError";
  }
}
