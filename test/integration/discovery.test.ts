/**
 * Discovery with real processes, a real DNS server (dnsmasq serving A and SRV records on a
 * loopback port) and a real etcd: three nodes form one cluster from DNS alone in several start
 * orders (one late); a fourth node added to DNS joins and is promoted, while a record pointing at
 * a node of another cluster is refused and logged; a restarted member ignores what DNS says now; a
 * member that lost its data is refused; SRV records (with --discovery-srv-name) and etcd
 * registrations form clusters too, and a stopped node's etcd registration goes away.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type DnsServer, startDns } from "../lib/dns-server.js";
import { type EtcdServer, startEtcd } from "../lib/etcd-server.js";
import { CLI, call, freePorts, sleep } from "./procs.js";

/** `ballot start` processes with whatever flags a test gives. */
class Nodes {
  readonly dir = mkdtempSync(join(tmpdir(), "ballot-disc-"));
  readonly procs = new Map<string, ChildProcess>();
  readonly logs = new Map<string, string[]>();
  readonly exits = new Map<string, Promise<number | null>>();

  start(id: string, args: string[]): ChildProcess {
    const p = spawn(
      process.execPath,
      [
        CLI,
        "start",
        "--id",
        id,
        "--data-dir",
        join(this.dir, id),
        "--election-timeout",
        "500",
        "--log-format",
        "pretty",
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const log: string[] = [];
    this.logs.set(id, log);
    const keep = (d: Buffer) => log.push(...d.toString().split("\n").filter(Boolean));
    p.stdout!.on("data", keep);
    p.stderr!.on("data", keep);
    this.procs.set(id, p);
    this.exits.set(id, new Promise((r) => p.once("exit", (code) => r(code))));
    return p;
  }

  log(id: string): string {
    return (this.logs.get(id) ?? []).join("\n");
  }

  async kill(id: string, sig: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const p = this.procs.get(id);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill(sig);
    await this.exits.get(id);
  }

  wipe(id: string): void {
    rmSync(join(this.dir, id), { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((id) => this.kill(id)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  tail(): string {
    return [...this.logs].map(([id, l]) => `--- ${id}\n${l.slice(-12).join("\n")}`).join("\n");
  }
}

interface ClusterView {
  clusterId: string;
  leader: { id: string } | null;
  members: { id: string; url: string; voter: boolean }[];
}

/** Polls until every URL answers the same cluster with a leader and `want` voters; returns it. */
async function waitForCluster(
  urls: string[],
  want: string[],
  nodes: Nodes,
  timeoutMs = 30_000,
): Promise<ClusterView> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const views = await Promise.all(
      urls.map((u) =>
        call(`${u}/v1/cluster`).then(
          (r) => (r.status === 200 ? (r.body as ClusterView) : null),
          () => null,
        ),
      ),
    );
    const v = views[0];
    const voters = (c: ClusterView) =>
      c.members
        .filter((m) => m.voter)
        .map((m) => m.id)
        .sort()
        .join(",");
    if (
      v?.leader &&
      views.every(
        (x) =>
          x && x.clusterId === v.clusterId && x.leader?.id === v.leader?.id && voters(x) === want.join(","),
      )
    )
      return v;
    last = JSON.stringify(
      views.map((x) => x && { id: x.clusterId, leader: x.leader?.id, voters: voters(x) }),
    );
    await sleep(100);
  }
  throw new Error(`no agreed cluster of ${want.join(",")} within ${timeoutMs} ms: ${last}\n${nodes.tail()}`);
}

async function waitFor<T>(
  what: string,
  f: () => Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await f().catch(() => null);
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const NAME = "nodes.ballot.test";
const ip = (i: number) => `127.0.0.${10 + i}`;

describe("discovery from DNS A records", { timeout: 200_000 }, () => {
  let dns: DnsServer;
  let port: number;
  before(async () => {
    [port] = (await freePorts(1)) as [number];
    dns = await startDns({ hosts: { [NAME]: [1, 2, 3].map(ip) } });
    urls = [1, 2, 3].map((i) => `http://${ip(i)}:${port}`);
  });
  after(async () => {
    await dns.stop();
  });

  const args = (i: number, more: string[] = []) => [
    "--listen",
    `http://${ip(i)}:${port}`,
    "--discovery",
    `dns:${NAME}`,
    "--dns-server",
    dns.address,
    "--bootstrap-expect",
    "3",
    ...more,
  ];
  let urls: string[] = [];

  // Every start order of the three (the "in every order"), the last one late each time.
  for (const order of [
    [1, 2, 3],
    [1, 3, 2],
    [2, 1, 3],
    [2, 3, 1],
    [3, 1, 2],
    [3, 2, 1],
  ]) {
    it(`forms one cluster of exactly the three found, started in order n${order.join(", n")} (the last one 1.5 s late)`, async () => {
      const nodes = new Nodes();
      try {
        nodes.start(`n${order[0]}`, args(order[0]!));
        nodes.start(`n${order[1]}`, args(order[1]!));
        await sleep(1500);
        nodes.start(`n${order[2]}`, args(order[2]!));
        const c = await waitForCluster(urls, ["n1", "n2", "n3"], nodes);
        assert.deepEqual(
          c.members.map((m) => `${m.id}=${m.url}`).sort(),
          [1, 2, 3].map((i) => `n${i}=http://${ip(i)}:${port}`),
        );
        const put = await call(`${urls[0]}/v1/kv/hello`, "PUT", { value: order.join("") }, {}, true);
        assert.equal(put.status, 200);
        for (const u of urls) {
          const got = await waitFor("the write on every node", async () => {
            const r = await call(`${u}/v1/kv/hello?consistency=local`);
            return r.status === 200 && r.body.value === order.join("") ? r : null;
          });
          assert.equal(got.status, 200);
        }
        assert.match(
          nodes.log(`n${order[0]}`),
          /forming a new cluster with n1, n2, n3|was formed with this node/,
        );
      } finally {
        await nodes.stop();
      }
    });
  }

  it("a fourth node added to DNS joins and is promoted; a record pointing at another cluster's node is refused and logged; a restarted member ignores DNS; a member that lost its data is refused", async () => {
    const nodes = new Nodes();
    try {
      for (const i of [1, 2, 3]) nodes.start(`n${i}`, args(i));
      const c = await waitForCluster(urls, ["n1", "n2", "n3"], nodes);

      // Another cluster (its own token) on 127.0.0.15, listed in the same DNS name.
      const otherUrl = `http://${ip(5)}:${port}`;
      nodes.start("x1", ["--members", `x1=${otherUrl}`, "--cluster-token", "other"]);
      await waitForCluster([otherUrl], ["x1"], nodes);
      await dns.setRecords({ hosts: { [NAME]: [1, 2, 3, 4, 5].map(ip) } });

      nodes.start("n4", args(4));
      const all = [...urls, `http://${ip(4)}:${port}`];
      const c4 = await waitForCluster(all, ["n1", "n2", "n3", "n4"], nodes, 40_000);
      assert.equal(c4.clusterId, c.clusterId, "n4 joined the cluster that was there");
      assert.match(
        nodes.log("n4"),
        new RegExp(`refused ${otherUrl.replaceAll(".", "\\.")}: it is x1, a member of cluster other-`),
      );
      assert.match(nodes.log("n4"), /joining it/);
      const other = await call(`${otherUrl}/v1/cluster`);
      assert.deepEqual(
        (other.body as ClusterView).members.map((m) => m.id),
        ["x1"],
        "the other cluster is untouched",
      );

      // A restarted member: DNS now lists only n1, and the flag asks for 5 nodes: nothing changes.
      await dns.setRecords({ hosts: { [NAME]: [ip(1)] } });
      await nodes.kill("n2", "SIGTERM");
      nodes.start("n2", args(2, ["--bootstrap-expect", "5"]));
      const again = await waitForCluster(all, ["n1", "n2", "n3", "n4"], nodes);
      assert.equal(again.clusterId, c.clusterId);
      assert.match(nodes.log("n2"), /recovering it, not discovering/);

      // A member that lost its data must not come back under its old id. (A follower: the evidence
      // is the leader's replication progress, which a leader elected after the loss does not have.)
      await dns.setRecords({ hosts: { [NAME]: [1, 2, 3, 4].map(ip) } });
      const leader = again.leader!.id;
      const victim = ["n1", "n2", "n3"].find((id) => id !== leader)!;
      await nodes.kill(victim);
      nodes.wipe(victim);
      nodes.start(victim, args(Number(victim.slice(1))));
      const code = await Promise.race([nodes.exits.get(victim)!, sleep(20_000).then(() => "still running")]);
      assert.equal(code, 2, `${victim} exits with a usage error\n${nodes.log(victim)}`);
      assert.match(nodes.log(victim), /already replicated to .* must not return under its old id/);
      const after3 = await call(`http://${ip(4)}:${port}/v1/cluster`);
      assert.equal((after3.body as ClusterView).members.length, 4, "membership unchanged");
    } finally {
      await nodes.stop();
    }
  });

  it("refuses bad discovery flags with a clear message and starts nothing", async () => {
    const nodes = new Nodes();
    try {
      const cases: [string[], RegExp][] = [
        [["--listen", urls[0]!, "--discovery", "dns:bad_name..x"], /not a DNS name/],
        [["--listen", urls[0]!, "--discovery", "consul:x"], /use dns:NAME/],
        [
          ["--listen", urls[0]!, "--discovery", `dns:${NAME}`, "--dns-server", "localhost"],
          /must be an IP address and port/,
        ],
        [
          ["--listen", urls[0]!, "--discovery", `dns:${NAME}`, "--members", `n9=${urls[0]}`],
          /replaces --members/,
        ],
        [["--members", `n9=${urls[0]}`, "--bootstrap-expect", "3"], /only applies with --discovery/],
        [["--listen", urls[0]!, "--discovery", "etcd:http://127.0.0.1:1/"], /give a key prefix/],
        [["--listen", urls[0]!, "--discovery", `dns:${NAME}`, "--bootstrap-expect", "0"], /bootstrap-expect/],
      ];
      for (const [i, [a, re]] of cases.entries()) {
        const id = `n9${i}`;
        nodes.start(id, a);
        assert.equal(await nodes.exits.get(id), 2, nodes.log(id));
        assert.match(nodes.log(id), re);
      }
    } finally {
      await nodes.stop();
    }
  });
});

describe("discovery from DNS SRV records", { timeout: 120_000 }, () => {
  it("forms a cluster from _ballot-<name>._tcp records (host and port each), ignoring another name's records", async () => {
    const ports = await freePorts(4);
    const domain = "srv.ballot.test";
    const dns = await startDns({
      hosts: { "a.srv.ballot.test": ["127.0.0.1"], "b.srv.ballot.test": ["127.0.0.1"] },
      srv: [
        { name: `_ballot-blue._tcp.${domain}`, target: "a.srv.ballot.test", port: ports[0]! },
        { name: `_ballot-blue._tcp.${domain}`, target: "b.srv.ballot.test", port: ports[1]! },
        { name: `_ballot-blue._tcp.${domain}`, target: "127.0.0.1", port: ports[2]! },
        { name: `_ballot._tcp.${domain}`, target: "127.0.0.1", port: ports[3]! },
      ],
    });
    const nodes = new Nodes();
    try {
      const urls = ports.slice(0, 3).map((p) => `http://127.0.0.1:${p}`);
      for (const [i, u] of urls.entries())
        nodes.start(`s${i + 1}`, [
          "--listen",
          u,
          "--discovery",
          `dns+srv:${domain}`,
          "--discovery-srv-name",
          "blue",
          "--dns-server",
          dns.address,
          "--bootstrap-expect",
          "3",
        ]);
      const c = await waitForCluster(urls, ["s1", "s2", "s3"], nodes);
      assert.deepEqual(c.members.map((m) => m.url).sort(), [...urls].sort());
    } finally {
      await nodes.stop();
      await dns.stop();
    }
  });
});

describe("discovery through an existing etcd", { timeout: 120_000 }, () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd.stop();
  });

  const registered = async (prefix: string): Promise<string[]> => {
    const dir = `${prefix}/members/`;
    const end = `${prefix}/members0`; // '/' + 1
    const r = await fetch(`${etcd.endpoint}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({
        key: Buffer.from(dir).toString("base64"),
        range_end: Buffer.from(end).toString("base64"),
      }),
    });
    const b = (await r.json()) as { kvs?: { key: string }[] };
    return (b.kvs ?? []).map((kv) => Buffer.from(kv.key, "base64").toString().slice(dir.length)).sort();
  };

  it("forms a cluster from registrations under a prefix; a stopped node's registration goes away; garbage under the prefix is ignored", async () => {
    const prefix = "/ballot/prod";
    // Something that is not a registration, under the prefix: never a member.
    await fetch(`${etcd.endpoint}/v3/kv/put`, {
      method: "POST",
      body: JSON.stringify({
        key: Buffer.from(`${prefix}/members/junk`).toString("base64"),
        value: Buffer.from("{not json").toString("base64"),
      }),
    });
    const ports = await freePorts(3);
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const nodes = new Nodes();
    try {
      for (const [i, u] of urls.entries())
        nodes.start(`e${i + 1}`, [
          "--listen",
          u,
          "--discovery",
          `etcd:${etcd.endpoint}${prefix}`,
          "--bootstrap-expect",
          "3",
        ]);
      await waitForCluster(urls, ["e1", "e2", "e3"], nodes);
      assert.deepEqual(await registered(prefix), ["e1", "e2", "e3", "junk"]);
      await nodes.kill("e3", "SIGTERM");
      await waitFor("e3's registration to go", async () => !(await registered(prefix)).includes("e3"));
    } finally {
      await nodes.stop();
    }
  });
});
