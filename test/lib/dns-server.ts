/**
 * A real DNS server for tests: Debian's dnsmasq (installed by scripts/install-dnsmasq.sh) on a
 * free loopback UDP/TCP port, answering only from a hosts file (A/AAAA) and SRV lines the test
 * writes, with no upstream and no cache. Owns the process and its directory and always removes
 * them; must never touch a resolver it did not start, nor skip when dnsmasq is missing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Resolver } from "node:dns/promises";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "../integration/procs.js";

export interface DnsRecords {
  /** name → addresses (A or AAAA). */
  readonly hosts?: Readonly<Record<string, readonly string[]>>;
  /** SRV records: record name, target host, port. */
  readonly srv?: readonly { readonly name: string; readonly target: string; readonly port: number }[];
}

export interface DnsServer {
  /** For `--dns-server`: `127.0.0.1:PORT`. */
  readonly address: string;
  /** Replaces the records (dnsmasq is restarted on the same port, so SRV lines change too). */
  setRecords(r: DnsRecords): Promise<void>;
  stop(): Promise<void>;
}

function findDnsmasq(): string {
  for (const p of ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"]) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  throw new Error(
    "dnsmasq was not found: the discovery tests need a real DNS server. Install it with `bash scripts/install-dnsmasq.sh` (as root; Debian's dnsmasq-base).",
  );
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid, "SIGKILL");
});

export async function startDns(records: DnsRecords): Promise<DnsServer> {
  const bin = findDnsmasq();
  const dir = mkdtempSync(join(tmpdir(), "ballot-dns-"));
  const [port] = await freePorts(1);
  let proc: ChildProcess | null = null;
  const write = (r: DnsRecords) => {
    const hosts = Object.entries(r.hosts ?? {}).flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}`));
    writeFileSync(join(dir, "hosts"), `${hosts.join("\n")}\n`);
    const conf = [
      `port=${port}`,
      "listen-address=127.0.0.1",
      "bind-interfaces",
      "no-resolv",
      "no-hosts",
      "no-poll",
      "cache-size=0",
      "local-ttl=0",
      "user=root",
      // Authoritative for every name: an unknown one is NXDOMAIN, not REFUSED (there is no upstream).
      "local=/#/",
      `addn-hosts=${join(dir, "hosts")}`,
      ...(r.srv ?? []).map((s) => `srv-host=${s.name},${s.target},${s.port}`),
    ];
    writeFileSync(join(dir, "dnsmasq.conf"), `${conf.join("\n")}\n`);
  };
  const start = async (r: DnsRecords) => {
    write(r);
    const p = spawn(
      bin,
      ["--keep-in-foreground", `--conf-file=${join(dir, "dnsmasq.conf")}`, "--pid-file="],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let err = "";
    p.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    live.add(p);
    proc = p;
    // Ready once it answers (a name it does not know is an answer too).
    const probe = new Resolver({ timeout: 300, tries: 1 });
    probe.setServers([`127.0.0.1:${port}`]);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`dnsmasq exited ${p.exitCode}: ${err}`);
      try {
        await probe.resolve4("ready.invalid");
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOTFOUND" || code === "ENODATA" || code === "EREFUSED") return;
      }
      if (Date.now() > deadline) throw new Error(`dnsmasq did not answer on port ${port}: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill = async () => {
    const p = proc;
    proc = null;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
      p.kill("SIGKILL");
    });
    live.delete(p);
  };
  await start(records);
  return {
    address: `127.0.0.1:${port}`,
    async setRecords(r) {
      await kill();
      await start(r);
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
