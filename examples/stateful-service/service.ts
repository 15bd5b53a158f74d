/**
 * The geo-redundant stateful service of the .NET seed article, on Ballot: a ledger of integer ids
 * to string states, replicated by Raft. GET /{id} is answered locally; PUT /{id} with
 * {"state": "..."} (and every other non-GET) is redirected to the leader; every answer says
 * {"leader", "current", "id", "state"}. Members come from a static list on the command line; state
 * survives restarts in --data-dir.
 *
 *   node dist/examples/stateful-service/service.js --id n1 --listen http://0.0.0.0:8080 \
 *        --data-dir ./data/n1 --members n1=http://10.0.0.1:8080,n2=http://10.0.0.2:8080,n3=http://10.0.0.3:8080
 *
 * (An application outside this repository imports the same names from "ballot".)
 */
import * as http from "node:http";
import { parseArgs } from "node:util";
import { RaftNode, type StateMachine } from "../../src/index.js";
import { redirectToLeader } from "../../src/server/middleware.js";

/** The replicated ledger. Deterministic: it only ever changes through apply(). */
class Ledger implements StateMachine<void> {
  readonly states = new Map<number, string>();
  apply(command: Uint8Array): void {
    const { id, state } = JSON.parse(new TextDecoder().decode(command)) as { id: number; state: string };
    this.states.set(id, state);
  }
  *snapshot(): Iterable<Uint8Array> {
    yield new TextEncoder().encode(JSON.stringify([...this.states]));
  }
  restore(chunks: Iterable<Uint8Array>): void {
    const parts: Uint8Array[] = [...chunks];
    this.states.clear();
    for (const [id, state] of JSON.parse(Buffer.concat(parts).toString("utf8")) as [number, string][])
      this.states.set(id, state);
  }
}

const { values } = parseArgs({
  options: {
    id: { type: "string" },
    listen: { type: "string" },
    "data-dir": { type: "string" },
    members: { type: "string" },
    "heartbeat-interval": { type: "string" },
    "election-timeout": { type: "string" },
  },
});
const fail = (msg: string): never => {
  console.error(`stateful-service: ${msg}`);
  process.exit(2);
};
const id = values.id ?? process.env.SERVICE_ID ?? fail("--id is required");
const dataDir = values["data-dir"] ?? process.env.SERVICE_DATA_DIR ?? fail("--data-dir is required");
const membersText =
  values.members ?? process.env.SERVICE_MEMBERS ?? fail("--members is required (id=URL,...)");
const members = new Map(
  membersText.split(",").map((m) => {
    const [mid, url] = m.split("=");
    return [mid ?? "", url ?? ""] as const;
  }),
);
const self = members.get(id) ?? fail(`--members does not list ${id}`);
const listen = new URL(values.listen ?? process.env.SERVICE_LISTEN ?? self);
const ms = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) fail(`${name} must be milliseconds`);
  return Number(v);
};
// Across regions: heartbeat about the RTT to the farthest member, election timeout about ten times it.
const heartbeatIntervalMs = ms(
  values["heartbeat-interval"] ?? process.env.SERVICE_HEARTBEAT_INTERVAL,
  "--heartbeat-interval",
);
const electionTimeoutMs = ms(
  values["election-timeout"] ?? process.env.SERVICE_ELECTION_TIMEOUT,
  "--election-timeout",
);

const ledger = new Ledger();
const node = await RaftNode.start({
  id,
  members,
  dataDir,
  stateMachine: ledger,
  heartbeatIntervalMs,
  electionTimeoutMs,
  logger: { info: () => {}, warn: console.warn, error: console.error },
});
const toLeader = redirectToLeader(node);

const answer = (
  res: http.ServerResponse,
  status: number,
  ledgerId: number | null,
  body: Record<string, unknown> = {},
): void => {
  const text = JSON.stringify({
    leader: node.leaderInfo?.url ?? null,
    current: self,
    id: ledgerId,
    state: ledgerId === null ? null : (ledger.states.get(ledgerId) ?? null),
    ...body,
  });
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(`${text}\n`);
};

const server = http.createServer((req, res) => {
  const m = /^\/(\d{1,15})$/.exec(new URL(req.url ?? "/", "http://x").pathname);
  if (!m) return answer(res, 404, null, { error: "use /{id} with an integer id" });
  const ledgerId = Number(m[1]);
  if (req.method === "GET") return answer(res, ledger.states.has(ledgerId) ? 200 : 404, ledgerId);
  if (toLeader(req, res)) return; // every non-GET goes to the leader
  if (req.method !== "PUT") return answer(res, 405, ledgerId, { error: "use GET or PUT" });
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (d: string) => {
    body += d;
    if (body.length > 65_536) req.destroy();
  });
  req.on("end", () => {
    let state: unknown;
    try {
      const parsed = JSON.parse(body) as Record<string, unknown>;
      if (Object.keys(parsed).some((k) => k !== "state")) throw new Error();
      state = parsed.state;
    } catch {
      return answer(res, 400, ledgerId, { error: 'send {"state": "..."} as JSON' });
    }
    if (typeof state !== "string") return answer(res, 400, ledgerId, { error: "state must be a string" });
    node.propose(new TextEncoder().encode(JSON.stringify({ id: ledgerId, state }))).then(
      () => answer(res, 200, ledgerId),
      (e: Error) => answer(res, e.name === "OutcomeUnknownError" ? 504 : 503, ledgerId, { error: e.message }),
    );
  });
});
node.attach(server); // the consensus protocol shares the service's port
server.listen(Number(listen.port || 80), listen.hostname, () =>
  console.log(`stateful-service ${id} on ${listen.href}`),
);

const stop = async (): Promise<void> => {
  await node.stop();
  server.close();
  process.exit(0);
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
