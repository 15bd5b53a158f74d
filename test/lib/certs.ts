/**
 * Test certificates made at run time with the openssl command: a CA, certificates it signs for
 * member ids, and a second CA for "wrong CA" cases. Owns a temporary directory and removes it.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), "ballot-pki-"));
  private serial = 1;

  /** Creates a self-signed CA named `name`; returns its certificate file. */
  ca(name: string): string {
    openssl(
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-subj",
        `/CN=${name}`,
      ]),
      this.dir,
    );
    return join(this.dir, `${name}.crt`);
  }

  /** A certificate signed by CA `ca` for `file`, with the given subjectAltNames (e.g. `DNS:n1`, `IP:127.0.0.1`) and CN. */
  issue(ca: string, file: string, cn: string, sans: string[]): CertFiles {
    openssl(
      ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-keyout",
        `${file}.key`,
        "-out",
        `${file}.csr`,
        "-subj",
        `/CN=${cn}`,
      ]),
      this.dir,
    );
    const ext = [
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(",")}`] : []),
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
    ].join("\n");
    writeFileSync(join(this.dir, `${file}.ext`), `${ext}\n`);
    openssl(
      ["x509", "-req", "-in", `${file}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`]
        .concat(["-set_serial", String(this.serial++), "-out", `${file}.crt`, "-days", "2"])
        .concat(["-extfile", `${file}.ext`]),
      this.dir,
    );
    return { cert: join(this.dir, `${file}.crt`), key: join(this.dir, `${file}.key`) };
  }

  /** A node's certificate: names `id` (DNS) and 127.0.0.1 (IP), as docs/operations.md advises. */
  member(ca: string, id: string, file = id): CertFiles {
    return this.issue(ca, file, id, [`DNS:${id}`, "IP:127.0.0.1"]);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
