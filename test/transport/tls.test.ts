/**
 * Which member ids a certificate names (transport/tls.ts): DNS or `ballot:member:` URI
 * subjectAltNames, exactly; the CN only without such names. And the start-up checks of TLS files.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import {
  altNames,
  certificateNamesMember,
  describeNames,
  loadTlsFiles,
  memberNames,
  tlsWarnings,
} from "../../src/transport/tls.js";
import { TestPki } from "../lib/certs.js";

describe("a certificate names a member id", () => {
  it("by a DNS subjectAltName equal to the id", () => {
    const cert = { subjectaltname: "DNS:n1, IP Address:127.0.0.1", subject: { CN: "other" } };
    assert.ok(certificateNamesMember(cert, "n1"));
    assert.ok(!certificateNamesMember(cert, "n2"));
    assert.ok(!certificateNamesMember(cert, "127.0.0.1"), "an IP address is not a member id");
    assert.ok(!certificateNamesMember(cert, "other"), "the CN does not count beside subjectAltNames");
  });

  it("by a URI subjectAltName ballot:member:<id>, and no other URI", () => {
    const cert = { subjectaltname: "URI:ballot:member:n2, URI:https://n3/" };
    assert.ok(certificateNamesMember(cert, "n2"));
    assert.ok(!certificateNamesMember(cert, "n3"));
    assert.deepEqual(memberNames(cert), ["n2"]);
  });

  it("by the subject CN only when there is no DNS or URI subjectAltName", () => {
    assert.ok(certificateNamesMember({ subject: { CN: "n3" } }, "n3"));
    assert.ok(certificateNamesMember({ subjectaltname: "IP Address:10.0.0.3", subject: { CN: "n3" } }, "n3"));
    assert.ok(certificateNamesMember({ subject: { CN: ["x", "n3"] } }, "n3"));
    assert.ok(!certificateNamesMember({}, "n3"), "a missing certificate names nobody");
  });

  it("exactly: no case folding, no wildcards, no empty id, no names smuggled in quoted values", () => {
    assert.ok(!certificateNamesMember({ subjectaltname: "DNS:N1" }, "n1"));
    assert.ok(!certificateNamesMember({ subjectaltname: "DNS:*.example.com" }, "n1.example.com"));
    assert.ok(!certificateNamesMember({ subjectaltname: "DNS:*" }, "n1"));
    assert.ok(!certificateNamesMember({ subject: { CN: "" } }, ""));
    // Node quotes a value with a comma as JSON: it is one name, not two.
    const sneaky = { subjectaltname: 'DNS:"a, DNS:n1", URI:"x, URI:ballot:member:n1"' };
    assert.deepEqual(altNames(sneaky.subjectaltname), [
      { type: "DNS", value: "a, DNS:n1" },
      { type: "URI", value: "x, URI:ballot:member:n1" },
    ]);
    assert.ok(!certificateNamesMember(sneaky, "n1"));
  });

  it("describes the names for log lines", () => {
    assert.equal(describeNames({ subjectaltname: "DNS:n9, IP Address:127.0.0.1" }), "'n9'");
    assert.equal(describeNames({ subjectaltname: "IP Address:127.0.0.1" }), "no member id");
  });
});

describe("TLS files, with certificates made by openssl", () => {
  const pki = new TestPki();
  const ca = pki.ca("ca");
  const n1 = pki.issue("ca", "n1", "n1", ["DNS:n1.example.com", "URI:ballot:member:n1", "IP:127.0.0.1"]);
  const n2 = pki.member("ca", "n2");
  after(() => pki.remove());

  it("reads the names of a real certificate", () => {
    const legacy = new X509Certificate(readFileSync(n1.cert)).toLegacyObject();
    assert.ok(certificateNamesMember(legacy, "n1"));
    assert.ok(certificateNamesMember(legacy, "n1.example.com"));
    assert.ok(!certificateNamesMember(legacy, "n2"));
  });

  it("loads a matching set, and warns when the certificate does not name the node", () => {
    const m = loadTlsFiles({ cert: n1.cert, key: n1.key, ca })!;
    assert.deepEqual(tlsWarnings(m, "n1"), []);
    assert.match(tlsWarnings(m, "n2").join("\n"), /names 'n1.example.com', 'n1', not its id 'n2'/);
    assert.match(tlsWarnings({ cert: m.cert, key: m.key }, "n1").join("\n"), /without --ca/);
    assert.equal(loadTlsFiles({}), undefined);
  });

  it("refuses missing partners, unreadable files, mismatched keys and junk, naming files but not contents", () => {
    const junk = pki.path("junk.pem");
    writeFileSync(junk, "not pem at all");
    const cases: [Parameters<typeof loadTlsFiles>[0], RegExp][] = [
      [{ cert: n1.cert }, /--cert needs --key/],
      [{ key: n1.key }, /--key needs --cert and --key/],
      [{ ca }, /--ca needs --cert and --key/],
      [{ cert: n1.cert, key: pki.path("missing.key") }, /--key .*missing\.key: no such file/],
      [{ cert: n1.cert, key: n2.key }, /does not match the certificate/],
      [{ cert: n1.cert, key: junk }, /junk\.pem: not a PEM private key/],
      [{ cert: junk, key: n1.key }, /junk\.pem: not a PEM certificate file/],
      [{ cert: n1.cert, key: n1.key, ca: n1.key }, /--ca .*: not a PEM certificate file/],
    ];
    const key = readFileSync(n1.key, "utf8");
    for (const [files, re] of cases) {
      assert.throws(
        () => loadTlsFiles(files),
        (e: Error) => {
          assert.match(e.message, re);
          assert.ok(!e.message.includes("PRIVATE KEY") && !e.message.includes(key.split("\n")[1]!));
          return true;
        },
      );
    }
  });

  it("refuses an expired certificate", () => {
    const later = new Date(Date.now() + 10 * 86_400_000);
    assert.throws(() => loadTlsFiles({ cert: n1.cert, key: n1.key }, later), /expired on/);
  });
});
