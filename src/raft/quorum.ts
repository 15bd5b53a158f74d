/**
 * Majority arithmetic: the commit index a set of voters has reached and the result of a vote.
 * Owns nothing but counting; must never look at roles, terms or the log.
 */

/** The largest value that a majority of `voters` has reached (missing voters count as 0). */
export function majorityValue(voters: readonly string[], valueAt: (id: string) => number): number {
  const n = voters.length;
  if (n === 0) return Number.POSITIVE_INFINITY;
  const values = new Array<number>(n);
  for (let i = 0; i < n; i++) values[i] = valueAt(voters[i]!);
  values.sort((a, b) => b - a);
  return values[n >> 1]!;
}

export type VoteResult = "won" | "lost" | "pending";

/** Tallies granted/rejected votes among `voters`. */
export function voteResult(voters: readonly string[], votes: ReadonlyMap<string, boolean>): VoteResult {
  const need = (voters.length >> 1) + 1;
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  if (granted >= need) return "won";
  if (voters.length - rejected < need) return "lost";
  return "pending";
}
