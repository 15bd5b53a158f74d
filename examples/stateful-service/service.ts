/**
 * The geo-redundant stateful service of the .NET seed article, on Ballot: a ledger of integer ids
 * to string states, replicated by Raft. GET /{id} is answered locally; PUT /{id} with
 * {"state": "..."} (and every other non-GET) is redirected to the leader; every answer says
 * {"leader", "current", "id", "state"}. Members come from a static list on the command line; state
 * survives restarts in --data-dir.
 *
 * Beyond the seed, accounts with balances: GET/PUT /accounts/{name} ({"balance": n}) and
 * POST /transfer {"from", "to", "amount"}, which moves money between two accounts atomically with
 * a transaction (compare both accounts' revisions, then write both balances, as one log entry), so
 * concurrent transfers through any instance never create or lose money.
 *
 *   node dist/examples/stateful-service/service.js --id n1 --listen http://0.0.0.0:8080 \
 *        --data-dir ./data/n1 --members n1=http://10.0.0.1:8080,n2=http://10.0.0.2:8080,n3=http://10.0.0.3:8080
 *
 * (An application outside this repository imports the same names from "ballot".)
 */
import * as http from "node:http";
import { parseArgs } from "node:util";
import { KvStore, RaftNode } from "../../src/index.js";
import { encodeCommand, type KvCommand, type KvResult } from "../../src/kv/commands.js";
import { redirectToLeader } from "../../src/server/middleware.js";

/**
 * The replicated ledger is Ballot's own key-value store (deterministic: it changes only through
 * apply): `state/{id}` holds an id's state, `acct/{name}` an account's balance.
 */
const ledger = new KvStore();
const stateOf = (id: number): string | null => {
  const kv = ledger.get(`state/${id}`);
  return kv ? (JSON.parse(kv.value) as string) : null;
};
const balanceOf = (name: string): { balance: number; revision: number } | null => {
  const kv = ledger.get(`acct/${name}`);
  return kv ? { balance: JSON.parse(kv.value) as number, revision: kv.modRevision } : null;
};

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

const node = await RaftNode.start<KvResult>({
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
    state: ledgerId === null ? null : stateOf(ledgerId),
    ...body,
  });
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(`${text}\n`);
};

/** Reads a small JSON object body; null (and a 400 sent) when it is not one. */
const readJson = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<Record<string, unknown> | null> =>
  new Promise((resolve) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      body += d;
      if (body.length > 65_536) req.destroy();
    });
    req.on("end", () => {
      try {
        const parsed = JSON.parse(body) as unknown;
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error();
        resolve(parsed as Record<string, unknown>);
      } catch {
        answer(res, 400, null, { error: "send a JSON object" });
        resolve(null);
      }
    });
  });

const propose = (cmd: KvCommand): Promise<KvResult> => node.propose(encodeCommand(cmd));
const proposalFailed = (res: http.ServerResponse, e: Error): void =>
  answer(res, e.name === "OutcomeUnknownError" ? 504 : 503, null, { error: e.message });

const ACCOUNT = /^\/accounts\/([a-z0-9_-]{1,64})$/;
const isAmount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

const account = (res: http.ServerResponse, status: number, name: string): void => {
  const a = balanceOf(name);
  answer(res, status, null, { account: name, balance: a?.balance ?? null });
};

/**
 * Moves `amount` from one account to another: read both balances, then one transaction that
 * writes both only if neither changed since (their revisions compared). A transfer that lost a
 * race is retried on the new balances; none is ever applied twice or half.
 */
async function transfer(
  from: string,
  to: string,
  amount: number,
): Promise<{ status: number; body: Record<string, unknown> }> {
  for (let attempt = 0; attempt < 64; attempt++) {
    const a = balanceOf(from);
    const b = balanceOf(to);
    if (!a || !b) return { status: 404, body: { error: `no account '${a ? to : from}'` } };
    if (a.balance < amount) return { status: 409, body: { error: "insufficient funds", balance: a.balance } };
    const r = await propose({
      op: "txn",
      compare: [
        { key: `acct/${from}`, target: "revision", op: "==", value: a.revision },
        { key: `acct/${to}`, target: "revision", op: "==", value: b.revision },
      ],
      success: [
        { put: { key: `acct/${from}`, value: JSON.stringify(a.balance - amount) } },
        { put: { key: `acct/${to}`, value: JSON.stringify(b.balance + amount) } },
      ],
      failure: [],
    });
    if (r.ok && r.txn?.succeeded)
      return {
        status: 200,
        body: {
          from: { account: from, balance: a.balance - amount },
          to: { account: to, balance: b.balance + amount },
          revision: r.revision,
          attempts: attempt + 1,
        },
      };
  }
  return { status: 503, body: { error: "too much contention on these accounts; retry" } };
}

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  const acct = ACCOUNT.exec(path);
  if (path === "/transfer" || acct) {
    if (req.method === "GET" && acct) return account(res, balanceOf(acct[1]!) ? 200 : 404, acct[1]!);
    if (toLeader(req, res)) return;
    const o = await readJson(req, res);
    if (!o) return;
    if (acct) {
      if (req.method !== "PUT") return answer(res, 405, null, { error: "use GET or PUT" });
      if (Object.keys(o).some((k) => k !== "balance") || !isAmount(o.balance))
        return answer(res, 400, null, { error: 'send {"balance": n}, n a non-negative integer' });
      return propose({ op: "put", key: `acct/${acct[1]}`, value: JSON.stringify(o.balance) }).then(
        () => account(res, 200, acct[1]!),
        (e: Error) => proposalFailed(res, e),
      );
    }
    if (req.method !== "POST") return answer(res, 405, null, { error: "use POST" });
    const { from, to, amount } = o;
    const name = /^[a-z0-9_-]{1,64}$/;
    if (
      Object.keys(o).some((k) => !["from", "to", "amount"].includes(k)) ||
      typeof from !== "string" ||
      typeof to !== "string" ||
      !name.test(from) ||
      !name.test(to) ||
      from === to ||
      !isAmount(amount) ||
      amount === 0
    )
      return answer(res, 400, null, {
        error: 'send {"from", "to", "amount"}: two different account names and a positive integer',
      });
    return transfer(from, to, amount).then(
      (r) => answer(res, r.status, null, r.body),
      (e: Error) => proposalFailed(res, e),
    );
  }
  const m = /^\/(\d{1,15})$/.exec(path);
  if (!m)
    return answer(res, 404, null, { error: "use /{id} with an integer id, /accounts/{name} or /transfer" });
  const ledgerId = Number(m[1]);
  if (req.method === "GET") return answer(res, stateOf(ledgerId) !== null ? 200 : 404, ledgerId);
  if (toLeader(req, res)) return; // every non-GET goes to the leader
  if (req.method !== "PUT") return answer(res, 405, ledgerId, { error: "use GET or PUT" });
  const o = await readJson(req, res);
  if (!o) return;
  if (Object.keys(o).some((k) => k !== "state"))
    return answer(res, 400, ledgerId, { error: 'send {"state": "..."} as JSON' });
  if (typeof o.state !== "string") return answer(res, 400, ledgerId, { error: "state must be a string" });
  propose({ op: "put", key: `state/${ledgerId}`, value: JSON.stringify(o.state) }).then(
    () => answer(res, 200, ledgerId),
    (e: Error) => proposalFailed(res, e),
  );
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
