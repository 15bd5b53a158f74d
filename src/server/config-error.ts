/**
 * The error for configuration problems the operator must fix. Its own module so the CLI can tell
 * it apart without loading the server's modules for commands that never start one.
 */

/** Thrown for configuration problems the operator must fix; the CLI prints the message and exits 2. */
export class ConfigError extends Error {
  readonly code = "BALLOT_ERR_CONFIG";
}
