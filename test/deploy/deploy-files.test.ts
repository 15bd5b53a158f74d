/**
 * The deployment files (systemd unit, Dockerfile, Kubernetes manifest) pass flags and BALLOT_*
 * variables to `ballot start`; this checks that every one of them exists in the CLI, so the files
 * cannot rot when a flag is renamed. It also checks the probes point at real routes, and that
 * every flag of `ballot start` is in the usage text and parses from its BALLOT_* variable.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { envName, parseFlags } from "../../src/cli/flags.js";
import { main, START_FLAGS } from "../../src/cli/main.js";

const root = new URL("../../../", import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), "utf8");
const startFlags = new Set([...START_FLAGS.values, ...(START_FLAGS.booleans ?? [])]);
const startEnv = new Set([...startFlags].map(envName));
/** Variables Ballot sets for others (ballot elect's CMD), not settings. */
const OUTPUTS = new Set(["BALLOT_FENCING_TOKEN", "BALLOT_ELECTION"]);

function checkEnv(file: string, text: string): number {
  let n = 0;
  for (const m of text.matchAll(/\bBALLOT_[A-Z0-9_]+/g)) {
    if (OUTPUTS.has(m[0])) continue;
    assert.ok(startEnv.has(m[0]), `${file}: ${m[0]} is not a setting of ballot start`);
    n++;
  }
  return n;
}

function checkFlags(file: string, args: string[]): void {
  assert.equal(args[0], "start", `${file}: runs '${args[0]}', not 'ballot start'`);
  for (const a of args.slice(1)) {
    if (!a.startsWith("--")) continue;
    const name = a.slice(2).split("=")[0]!;
    assert.ok(startFlags.has(name), `${file}: --${name} is not a flag of ballot start`);
  }
}

describe("deployment files name only flags the CLI has", () => {
  it("systemd unit", () => {
    const text = read("deploy/systemd/ballot@.service");
    assert.ok(checkEnv("ballot@.service", text) >= 3);
    const exec = /^ExecStart=.*\bballot (.*)$/m.exec(text);
    assert.ok(exec, "ExecStart runs ballot");
    checkFlags("ballot@.service", exec[1]!.trim().split(/\s+/));
  });

  it("Dockerfile: settings, command, health check on /ready, non-root, data volume", () => {
    const text = read("Dockerfile");
    assert.ok(checkEnv("Dockerfile", text) >= 3);
    const cmd = /^CMD (\[.*\])$/m.exec(text);
    assert.ok(cmd);
    checkFlags("Dockerfile", JSON.parse(cmd[1]!) as string[]);
    assert.match(text, /^ENTRYPOINT \["node", "dist\/src\/cli\/main.js"\]$/m);
    assert.match(text, /HEALTHCHECK[\s\S]*\/ready/);
    assert.match(text, /^USER ballot$/m);
    assert.match(text, /^VOLUME \/data$/m);
  });

  it("Kubernetes manifest: settings, args, probes, members found from the headless Service's SRV records", () => {
    const text = read("deploy/kubernetes/ballot.yaml");
    assert.ok(checkEnv("ballot.yaml", text) >= 6);
    const args = /^\s+args: (\[.*\])$/m.exec(text);
    assert.ok(args);
    checkFlags("ballot.yaml", JSON.parse(args[1]!) as string[]);
    assert.match(text, /path: \/ready/);
    assert.match(text, /path: \/health/);
    assert.doesNotMatch(text, /BALLOT_MEMBERS/, "no typed member list");
    const replicas = Number(/replicas: (\d+)/.exec(text)?.[1]);
    const value = (name: string) => new RegExp(`name: ${name}\\n\\s+value: "?([^"\\s]+)"?`).exec(text)?.[1];
    assert.equal(
      Number(value("BALLOT_BOOTSTRAP_EXPECT")),
      replicas,
      "--bootstrap-expect is the replica count",
    );
    // The SRV records of a headless Service are _<port name>._tcp.<service>.<namespace>.svc...
    const service = /kind: Service\nmetadata:\n\s+name: (\S+)/.exec(text)?.[1];
    const portName = /kind: Service[\s\S]*?ports:\n\s+- name: (\S+)/.exec(text)?.[1];
    assert.equal(portName, "ballot", "the port name makes the _ballot._tcp record");
    assert.equal(value("BALLOT_DISCOVERY"), `dns+srv:${service}.$(POD_NAMESPACE).svc.cluster.local`);
    assert.equal(
      value("BALLOT_ADVERTISE"),
      `http://$(POD_NAME).${service}.$(POD_NAMESPACE).svc.cluster.local:2379`,
    );
  });

  it("docker compose example: three nodes found by DNS (one network alias), same flags as the CLI", () => {
    const text = read("deploy/compose/docker-compose.yml");
    assert.ok(checkEnv("docker-compose.yml", text) >= 9);
    const services = [...text.matchAll(/^ {2}(n\d+):$/gm)].map((m) => m[1]);
    assert.deepEqual(services, ["n1", "n2", "n3"]);
    assert.match(text, /^x-ballot: &ballot\n[\s\S]*?aliases: \[ballot-nodes\]/m, "the shared name");
    assert.equal((text.match(/<<: \*ballot/g) ?? []).length, 3, "every node carries it");
    assert.equal((text.match(/BALLOT_DISCOVERY: dns:ballot-nodes/g) ?? []).length, 3);
    assert.equal((text.match(/BALLOT_BOOTSTRAP_EXPECT: "3"/g) ?? []).length, 3);
    for (const id of services) assert.match(text, new RegExp(`BALLOT_ADVERTISE: http://${id}:2379`));
  });

  it("Terraform example: with discovery_zone, a private DNS zone with one A record per VM, and ballot start finds them", () => {
    const main = read("deploy/terraform/main.tf");
    const init = read("deploy/terraform/cloud-init-discovery.yaml.tftpl");
    assert.ok(checkEnv("cloud-init-discovery.yaml.tftpl", init) >= 6);
    // The zone answers inside every region's network, and its one name lists every VM's address.
    assert.match(
      main,
      /resource "azurerm_private_dns_zone" "members" \{\s+count += local\.discovery \? 1 : 0/,
    );
    assert.match(
      main,
      /"azurerm_private_dns_zone_virtual_network_link" "members" \{[\s\S]*?count += local\.discovery \? length\(var\.regions\) : 0[\s\S]*?azurerm_virtual_network\.node\[count\.index\]\.id/,
    );
    assert.match(
      main,
      /"azurerm_private_dns_a_record" "members" \{[\s\S]*?name += var\.discovery_record[\s\S]*?records += \[for ip in azurerm_public_ip\.node : ip\.ip_address\]/,
    );
    // What the template is given is what it uses, and the node advertises the address DNS lists.
    const given =
      /templatefile\("\$\{path\.module\}\/cloud-init-discovery\.yaml\.tftpl", \{([\s\S]*?)\}\)/.exec(main);
    assert.ok(given, "the discovery template is rendered");
    const vars = new Set([...given[1]!.matchAll(/^\s*(\w+)\s*=/gm)].map((m) => m[1]));
    const used = new Set([...init.matchAll(/\$\{(?:indent\(\d+, )?(\w+)/g)].map((m) => m[1]));
    assert.deepEqual([...used].sort(), [...vars].sort());
    assert.match(
      given[1]!,
      /advertise += "http:\/\/\$\{azurerm_public_ip\.node\[count\.index\]\.ip_address\}:\$\{var\.port\}"/,
    );
    assert.match(given[1]!, /discovery += "dns:\$\{local\.discovery_name\}"/);
    assert.match(given[1]!, /expect += length\(var\.regions\)/);
    assert.match(init, /^ {6}BALLOT_DISCOVERY=\$\{discovery\}$/m);
    assert.match(init, /^ {6}BALLOT_BOOTSTRAP_EXPECT=\$\{expect\}$/m);
    assert.doesNotMatch(init, /BALLOT_MEMBERS/);
    // The unit runs `ballot` from PATH: the package is installed globally.
    assert.match(init, /npm install --global --omit=dev ballot@/);
  });
});

describe("every flag of ballot start is documented and settable", () => {
  it("the usage text names every flag", async () => {
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    try {
      await main(["help"]);
    } finally {
      console.log = log;
    }
    const usage = lines.join("\n");
    for (const f of startFlags) assert.ok(usage.includes(`--${f}`), `--${f} is missing from the usage text`);
  });

  it("booleans parse from the flag and from BALLOT_*, --follower-read-leases included", () => {
    for (const f of START_FLAGS.booleans ?? []) {
      assert.equal(parseFlags([`--${f}`], START_FLAGS, {}).flags.get(f), "true");
      assert.equal(parseFlags([], START_FLAGS, { [envName(f)]: "true" }).flags.get(f), "true");
      assert.equal(parseFlags([], START_FLAGS, { [envName(f)]: "false" }).flags.get(f), "false");
    }
    assert.ok(START_FLAGS.booleans.includes("follower-read-leases"));
    assert.match(read("deploy/systemd/ballot@.service"), /BALLOT_FOLLOWER_READ_LEASES=true/);
  });
});
