/**
 * TLS for clients and peers with real processes and certificates made at run time by openssl: a
 * mutual-TLS cluster works end to end (CLI, BallotClient, forwarded writes), and every refusal
 * (plain HTTP, an untrusted server, a peer from another CA, a peer with another member's
 * certificate, bad TLS files) is clear and changes nothing.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { BallotClient, httpsFetch } from "../../src/client/index.js";
import { type CertFiles, TestPki } from "../lib/certs.js";
import { CLI, call, freePorts, ProcCluster, sleep } from "./procs.js";

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the ballot command without any BALLOT_* variable of the test's own environment. */
function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("BALLOT_")));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...clean, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Polls until `f` returns a value (not undefined), or fails with `what` after `ms`. */
async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await f();
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("TLS for clients and peers", { timeout: 120_000 }, () => {
  const pki = new TestPki();
  const certs = new Map<string, CertFiles>();
  let ca: string;
  let otherCa: string;
  let n9: CertFiles;
  let n3OtherCa: CertFiles;
  let caPem: Buffer;
  let tlsFetch: typeof fetch;
  let c: ProcCluster;

  const logLine = (ids: string[], re: RegExp) => () =>
    ids.flatMap((id) => c.logs.get(id) ?? []).find((l) => re.test(l));

  before(async () => {
    ca = pki.ca("ca");
    otherCa = pki.ca("other-ca");
    for (const id of ["n1", "n2", "n3"]) certs.set(id, pki.member("ca", id));
    n9 = pki.member("ca", "n9");
    n3OtherCa = pki.member("other-ca", "n3", "n3-other-ca");
    caPem = readFileSync(ca);
    tlsFetch = httpsFetch({ ca: caPem });
    c = await ProcCluster.start({
      https: true,
      electionTimeoutMs: 400,
      extraArgs: ["--forward-writes"],
      nodeArgs: (id) => ["--cert", certs.get(id)!.cert, "--key", certs.get(id)!.key, "--ca", ca],
      fetch: tlsFetch,
    });
  });
  after(async () => {
    await c?.stop();
    pki.remove();
  });

  const get = (id: string, key: string, consistency = "linearizable") =>
    call(`${c.url(id)}/v1/kv/${key}?consistency=${consistency}`, "GET", undefined, {}, false, tlsFetch);
  const put = (id: string, key: string, value: unknown) =>
    call(`${c.url(id)}/v1/kv/${key}`, "PUT", { value }, {}, false, tlsFetch);

  it("a 3-node cluster with mutual TLS elects, replicates and forwards; the CLI and BallotClient work with the CA", async () => {
    const leader = await c.waitForLeader(10_000);
    for (const id of c.ids) {
      assert.ok(logLine([id], /serving on https:\/\//)(), `${id} serves HTTPS`);
      assert.equal(logLine([id], /without TLS/)(), undefined, `${id} does not warn about plain HTTP`);
    }
    assert.equal((await put(leader, "a", 1)).status, 200);
    const follower = c.ids.find((id) => id !== leader)!;
    // A write to a follower is forwarded to the leader, over TLS with the follower's certificate.
    assert.equal((await put(follower, "b", 2)).status, 200);
    for (const id of c.ids) {
      assert.equal((await get(id, "a")).body.value, 1, `read a from ${id}`);
      assert.equal((await get(id, "b")).body.value, 2, `read b from ${id}`);
    }

    const endpoints = c.ids.map((id) => c.url(id)).join(",");
    const putCli = await cli(["put", "cli", '"yes"', "--endpoints", endpoints, "--ca", ca]);
    assert.equal(putCli.code, 0, putCli.stderr);
    const getCli = await cli(["get", "cli", "--endpoints", c.url(follower)], { BALLOT_CA: ca });
    assert.equal(getCli.code, 0, getCli.stderr);
    assert.equal(JSON.parse(getCli.stdout).value, "yes");
    const backup = pki.path("backup.snap");
    const save = await cli(["snapshot", "save", backup, "--endpoints", c.url(leader), "--ca", ca]);
    assert.equal(save.code, 0, save.stderr);
    assert.ok(JSON.parse(save.stdout).revision >= 3, save.stdout);

    const client = new BallotClient({ endpoints: c.ids.map((id) => c.url(id)), ca: caPem });
    try {
      assert.equal((await client.put("lib", { ok: true })).key, "lib");
      assert.deepEqual((await client.get("lib"))?.value, { ok: true });
      assert.equal((await client.status()).members.length, 3);
    } finally {
      client.close();
    }
  });

  it("refuses a plain-HTTP client on the TLS port; nothing is written", async () => {
    const leader = await c.waitForLeader();
    const plain = c.url(leader).replace("https://", "http://");
    await assert.rejects(call(`${plain}/v1/kv/plain`, "PUT", { value: 1 }), /fetch failed/);
    assert.equal((await get(leader, "plain")).status, 404);
  });

  it("a client that does not trust the CA is refused with a certificate error; nothing is written", async () => {
    const leader = await c.waitForLeader();
    for (const extra of [[], ["--ca", otherCa]]) {
      const r = await cli(["put", "untrusted", "1", "--endpoints", c.url(leader), ...extra]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /certificate/, r.stderr);
      assert.match(r.stderr, /--ca/, "the message says what to do");
    }
    const client = new BallotClient({ endpoints: [c.url(leader)], timeoutMs: 1500 });
    try {
      await assert.rejects(client.put("untrusted", 1), (e: Error & { code?: string }) => {
        assert.match(e.message, /certificate/);
        // The handshake failed before any request left: the write was certainly not applied.
        assert.equal(e.code, "unavailable");
        return true;
      });
    } finally {
      client.close();
    }
    assert.equal((await get(leader, "untrusted")).status, 404);
  });

  /** Replaces n3 with a process started with `more` arguments; waits until n1 and n2 agree on a leader. */
  const restartN3 = async (more: string[]): Promise<string> => {
    await c.signal("n3", "SIGKILL");
    c.logs.set("n3", []);
    c.spawn("n3", more);
    return c.waitForLeader(10_000, ["n3"]);
  };

  it("a peer whose certificate comes from another CA cannot join the peer stream", async () => {
    const leader = await restartN3(["--cert", n3OtherCa.cert, "--key", n3OtherCa.key]);
    await until("n3 to be warned at start", logLine(["n3"], /not issued by a certificate in --ca/));
    // n3 campaigns (it hears no leader) and is refused by n1 and n2; the leader will not dial it.
    const refusal = await until(
      "a refusal of n3's stream",
      logLine(["n1", "n2"], /refused a peer stream from 'n3': its certificate is not trusted/),
    );
    assert.doesNotMatch(refusal, /PRIVATE KEY/);
    await until("n3 to be told", logLine(["n3"], /refused the peer stream: 403/));
    await until(
      "the leader to refuse n3's certificate",
      logLine([leader], /refused to send to peer n3 .*: its certificate failed the check/),
    );
    // The cluster goes on without it.
    assert.equal((await put(leader, "without-n3", 1)).status, 200);
    const other = httpsFetch({ ca: readFileSync(otherCa) });
    const local = await call(
      `${c.url("n3")}/v1/kv/without-n3?consistency=local`,
      "GET",
      undefined,
      {},
      false,
      other,
    );
    assert.equal(local.status, 404, "n3 never received the write");
    const st = await call(`${c.url(leader)}/v1/cluster`, "GET", undefined, {}, false, tlsFetch);
    const n3 = st.body.members.find((m: { id: string }) => m.id === "n3");
    assert.ok(n3.matchIndex < st.body.commitIndex, "n3 is not replicating");
  });

  it("a peer presenting another member's certificate (n3 with n9's) is refused; n1 and n2 still commit; n3 recovers with its own", async () => {
    const leader = await restartN3(["--cert", n9.cert, "--key", n9.key]);
    await until("n3 to be warned at start", logLine(["n3"], /certificate names 'n9', not its id 'n3'/));
    await until(
      "a refusal naming both ids",
      logLine(["n1", "n2"], /refused a peer stream from 'n3': its certificate names 'n9'/),
    );
    await until(
      "the leader to refuse to send to an impostor",
      logLine([leader], /refused to send to peer n3 .*: its certificate names 'n9', not 'n3'/),
    );
    assert.equal((await put(leader, "still", 1)).status, 200);
    const follower = c.ids.find((id) => id !== leader && id !== "n3")!;
    assert.equal((await get(follower, "still")).body.value, 1);
    assert.equal((await get("n3", "still", "local")).status, 404, "n3 never received the write");

    // With its own certificate, n3 catches up: the refusals were about certificates only.
    await restartN3([]);
    await until("n3 to catch up", async () =>
      (await get("n3", "still", "local").catch(() => undefined))?.status === 200 ? true : undefined,
    );
    assert.equal((await get("n3", "without-n3", "local")).body.value, 1);
  });

  it("--join over TLS: a node with another id's certificate is refused and nothing changes; with its own it becomes a voter", async () => {
    const leader = await c.waitForLeader(10_000);
    const [port] = await freePorts(1);
    const url = `https://127.0.0.1:${port}`;
    const n4 = pki.member("ca", "n4");
    const joinArgs = (cert: CertFiles) => [
      "start",
      "--id",
      "n4",
      "--data-dir",
      `${c.dir}/n4-${cert === n4 ? "own" : "n9"}`,
      "--listen",
      url,
      "--join",
      c.url(leader),
      "--cert",
      cert.cert,
      "--key",
      cert.key,
      "--ca",
      ca,
      "--election-timeout",
      "400",
    ];
    // n9's certificate under the id n4: the leader dials it as n4 and refuses it.
    const refused = await cli(joinArgs(n9));
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(`${refused.stdout}${refused.stderr}`, /member_identity_mismatch.*names 'n9'/);
    const members = async () =>
      (await call(`${c.url(leader)}/v1/cluster`, "GET", undefined, {}, false, tlsFetch)).body.members as {
        id: string;
        voter: boolean;
      }[];
    assert.deepEqual((await members()).map((m) => m.id).sort(), ["n1", "n2", "n3"]);

    const p = spawn(process.execPath, [CLI, ...joinArgs(n4)], { stdio: "ignore" });
    try {
      await until("n4 to join and be promoted", async () =>
        (await members()).some((m) => m.id === "n4" && m.voter) ? true : undefined,
      );
      assert.equal((await put(leader, "after-n4", 4)).status, 200);
      const r = await until("n4 to have the write", async () => {
        const x = await call(
          `${url}/v1/kv/after-n4?consistency=local`,
          "GET",
          undefined,
          {},
          false,
          tlsFetch,
        );
        return x.status === 200 ? x : undefined;
      });
      assert.equal(r.body.value, 4);
      const gone = await call(
        `${c.url(leader)}/v1/cluster/members/n4`,
        "DELETE",
        undefined,
        {},
        true,
        tlsFetch,
      );
      assert.equal(gone.status, 200, JSON.stringify(gone.body));
    } finally {
      p.kill("SIGKILL");
    }
  });

  it("bad TLS settings stop `ballot start` with exit code 2 and one line that never holds the key", async () => {
    const n1 = certs.get("n1")!;
    const n2 = certs.get("n2")!;
    const keyText = readFileSync(n1.key, "utf8");
    const keyLines = keyText.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
    const base = ["start", "--id", "n1", "--data-dir", pki.path("bad-config")];
    const https = ["--members", "n1=https://127.0.0.1:1,n2=https://127.0.0.1:2"];
    const cases: [string, string[], RegExp][] = [
      [
        "missing key file",
        [...https, "--cert", n1.cert, "--key", pki.path("nope.key")],
        /--key .*nope\.key: no such file/,
      ],
      [
        "key of another cert",
        [...https, "--cert", n1.cert, "--key", n2.key],
        /does not match the certificate/,
      ],
      ["a certificate as the key", [...https, "--cert", n1.cert, "--key", n1.cert], /not a PEM private key/],
      ["a key as the certificate", [...https, "--cert", n1.key, "--key", n1.key], /not a PEM certificate/],
      ["--cert without --key", [...https, "--cert", n1.cert], /--cert needs --key/],
      [
        "--cert with an http URL",
        ["--members", "n1=http://127.0.0.1:1", "--cert", n1.cert, "--key", n1.key],
        /https:\/\/ listen URL/,
      ],
      [
        "https without a certificate",
        ["--members", "n1=https://127.0.0.1:1"],
        /an https:\/\/ URL needs --cert and --key/,
      ],
      [
        "an http peer beside TLS",
        ["--members", "n1=https://127.0.0.1:1,n2=http://127.0.0.1:2", "--cert", n1.cert, "--key", n1.key],
        /every member URL must be https/,
      ],
    ];
    for (const [what, args, re] of cases) {
      const r = await cli([...base, ...args]);
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, `${what}: one line: ${r.stderr}`);
      assert.match(r.stderr, re, what);
      assert.doesNotMatch(r.stderr, /PRIVATE KEY/, what);
      for (const l of keyLines) assert.ok(!r.stderr.includes(l), `${what}: no key material`);
    }
  });
});
