/**
 * The one error type of `ballot/client`. Owns the mapping from a server's error body
 * (`{"error": {"code", "message", ...}}`) to a thrown error; must never invent a server code for
 * a server answer, and never turn an unknown outcome into a success or a failure.
 */

/**
 * Codes the client itself produces (server codes are passed through unchanged):
 * - `outcome_unknown` (status 504): a write may or may not have been applied (also a server code).
 * - `unavailable` (status 503): no endpoint could serve the request before the deadline; nothing was applied.
 * - `lease_expired` (status 0): a lease's deadline passed on the client's clock; it may be gone.
 * - `lease_lost` (status 0): the server no longer knows a lease, or it was revoked.
 * - `leadership_lost` (status 0): an election holder lost or gave up leadership.
 * - `invalid_response` (status 0): the server answered something the client cannot read.
 * - `invalid_argument` (status 0): the call was wrong before anything was sent.
 */
export type ClientErrorCode =
  | "outcome_unknown"
  | "unavailable"
  | "lease_expired"
  | "lease_lost"
  | "leadership_lost"
  | "invalid_response"
  | "invalid_argument";

/** An error answered by a Ballot server, or decided by the client about one. */
export class BallotClientError extends Error {
  override readonly name = "BallotClientError";
  /** The HTTP status (0 when the client decided without a server answer). */
  readonly status: number;
  /** The server's error code (e.g. `precondition_failed`, `stale_token`, `compacted`), or a {@link ClientErrorCode}. */
  readonly code: string;
  /** The other fields of the server's error object (e.g. `revision`, `fencingToken`, `compactRevision`). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    status: number,
    code: string,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** For `compacted` (410): the oldest revision the node can still resume a watch from. */
  get compactRevision(): number | undefined {
    const v = this.details.compactRevision;
    return typeof v === "number" ? v : undefined;
  }
}

/** Builds the error for a non-2xx answer from its status and parsed body. */
export function errorFromResponse(
  status: number,
  body: unknown,
  fallback = "request failed",
): BallotClientError {
  if (typeof body === "object" && body !== null && "error" in body) {
    const e = (body as { error: unknown }).error;
    if (typeof e === "object" && e !== null) {
      const { code, message, ...rest } = e as Record<string, unknown>;
      return new BallotClientError(
        status,
        typeof code === "string" ? code : `http_${status}`,
        typeof message === "string" ? message : fallback,
        rest,
      );
    }
  }
  const text = typeof body === "string" && body.length > 0 ? body.slice(0, 200) : fallback;
  return new BallotClientError(status, `http_${status}`, text);
}
