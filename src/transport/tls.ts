/**
 * TLS for a node's one port: loading and checking the certificate, key and CA files, the options
 * of the HTTPS server and of the node's own outbound connections (peer streams, forwarded
 * requests), and the rule that ties a certificate to a member id. Must never put key material (or
 * any file's contents) in an error message or a log line: file paths only.
 *
 * A certificate names member `id` when it has a subjectAltName `DNS:<id>` or
 * `URI:ballot:member:<id>`, compared exactly (case-sensitive, no wildcards); the subject CN counts
 * only in a certificate with neither kind of subjectAltName (as in hostname verification, RFC 6125).
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as https from "node:https";
import * as tls from "node:tls";

/** PEM material for a node (or a client): its certificate (chain), its private key, and the CA(s) it trusts. */
export interface TlsMaterial {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The CA certificate(s) peers and clients are checked against. Absent: no client certificates are asked for. */
  readonly ca?: string | Buffer;
}

/** Where the material comes from (`--cert`, `--key`, `--ca`); paths appear in errors, contents never. */
export interface TlsFiles {
  readonly cert?: string;
  readonly key?: string;
  readonly ca?: string;
}

/** A TLS setting the operator must fix; `ballot start` prints it and exits 2. */
export class TlsConfigError extends Error {
  readonly code = "BALLOT_ERR_TLS_CONFIG";
}

/** The member-id prefix of a URI subjectAltName: `ballot:member:n1` names member n1. */
export const MEMBER_URI_PREFIX = "ballot:member:";

/** Reads a file for a flag; the error says which flag and path, and why, in one line. */
function readFor(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : code === "EISDIR"
            ? "it is a directory"
            : `cannot read it (${code ?? "error"})`;
    throw new TlsConfigError(`${flag} ${path}: ${why}`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM bundle; throws (naming the flag and path) when there is none or one is damaged. */
export function parseCertificates(pem: string | Buffer, flag: string, path: string): X509Certificate[] {
  const blocks = pem.toString("latin1").match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new TlsConfigError(`${flag} ${path}: not a PEM certificate file`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw new TlsConfigError(`${flag} ${path}: holds a damaged certificate`);
    }
  });
}

/** Reads a CA bundle (for `--ca` of the client commands too). */
export function loadCa(path: string, flag = "--ca"): Buffer {
  const ca = readFor(flag, path);
  parseCertificates(ca, flag, path);
  return ca;
}

/**
 * Loads and checks `--cert`, `--key` and `--ca`: undefined when none is given. Throws a
 * TlsConfigError for a flag without its partner, an unreadable or invalid file, a key that does
 * not match the certificate, or an expired certificate.
 */
export function loadTlsFiles(files: TlsFiles, now = new Date()): TlsMaterial | undefined {
  if (files.cert === undefined && files.key === undefined && files.ca === undefined) return undefined;
  if (files.cert === undefined)
    throw new TlsConfigError(
      `${files.key !== undefined ? "--key" : "--ca"} needs --cert and --key (or BALLOT_CERT and BALLOT_KEY)`,
    );
  if (files.key === undefined) throw new TlsConfigError("--cert needs --key (or BALLOT_KEY)");
  const cert = readFor("--cert", files.cert);
  const key = readFor("--key", files.key);
  const ca = files.ca === undefined ? undefined : loadCa(files.ca);
  const leaf = parseCertificates(cert, "--cert", files.cert)[0]!;
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    // The crypto error is not passed on: no part of the file should reach a message.
    throw new TlsConfigError(
      `--key ${files.key}: not a PEM private key (or an encrypted one: Ballot needs it unencrypted)`,
    );
  }
  if (!leaf.checkPrivateKey(privateKey))
    throw new TlsConfigError(`--key ${files.key} does not match the certificate in --cert ${files.cert}`);
  if (new Date(leaf.validTo).getTime() < now.getTime())
    throw new TlsConfigError(`--cert ${files.cert}: the certificate expired on ${leaf.validTo}`);
  const material: TlsMaterial = { cert, key, ca };
  try {
    tls.createSecureContext(material);
  } catch (e) {
    // OpenSSL's reason names a check, never the key.
    throw new TlsConfigError(
      `--cert ${files.cert} / --key ${files.key}: refused by OpenSSL (${(e as Error).message})`,
    );
  }
  return material;
}

/**
 * Things worth a warning at start, for a node with id `id`: its certificate does not name it (peers
 * will refuse its streams), or it is not issued by the CA it trusts, or there is no CA at all (peers
 * then are not authenticated by certificate).
 */
export function tlsWarnings(m: TlsMaterial, id: string): string[] {
  const out: string[] = [];
  const chain = parseCertificates(m.cert, "--cert", "(the certificate)");
  const leaf = chain[0]!;
  if (m.ca === undefined) {
    out.push(
      "TLS without --ca: traffic is encrypted, but peers are not authenticated by certificate (only by the cluster identity)",
    );
    return out;
  }
  if (!certificateNamesMember(leaf.toLegacyObject(), id))
    out.push(
      `this node's certificate names ${describeNames(leaf.toLegacyObject())}, not its id '${id}': peers will refuse its streams`,
    );
  const cas = parseCertificates(m.ca, "--ca", "(the CA)");
  const issued = (c: X509Certificate): boolean =>
    cas.some((ca) => c.checkIssued(ca) && c.verify(ca.publicKey));
  if (chain.length === 1 && !issued(leaf))
    out.push("this node's certificate is not issued by a certificate in --ca: peers will refuse its streams");
  return out;
}

/** What a certificate looks like to the name check: Node's peer certificate object (or X509Certificate.toLegacyObject()). */
export interface CertificateLike {
  readonly subject?: { readonly CN?: string | string[] } | null;
  readonly subjectaltname?: string;
}

/** The subjectAltName entries of a certificate, in Node's text form (`DNS:a, IP Address:1.2.3.4, URI:"x,y"`). */
export function altNames(text: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  const s = text ?? "";
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(":", i);
    if (colon < 0) break;
    const type = s.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      // Node quotes a value that has commas or quotes in it as a JSON string.
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        value = "";
      }
      j = k + 1;
    } else {
      const end = s.indexOf(", ", j);
      j = end < 0 ? s.length : end;
      value = s.slice(colon + 1, j);
    }
    out.push({ type, value });
    while (s[j] === "," || s[j] === " ") j++;
    i = j;
  }
  return out;
}

/** The member ids a certificate names (see the file comment). */
export function memberNames(cert: CertificateLike): string[] {
  const alt = altNames(cert.subjectaltname);
  const dns = alt.filter((a) => a.type === "DNS").map((a) => a.value);
  const uris = alt.filter((a) => a.type === "URI").map((a) => a.value);
  const ids = [
    ...dns,
    ...uris.filter((u) => u.startsWith(MEMBER_URI_PREFIX)).map((u) => u.slice(MEMBER_URI_PREFIX.length)),
  ];
  if (dns.length > 0 || uris.length > 0) return ids;
  const cn = cert.subject?.CN;
  return cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
}

/** Whether a certificate names member `id`: a `DNS:<id>` or `URI:ballot:member:<id>` subjectAltName, or the CN when it has neither. */
export function certificateNamesMember(cert: CertificateLike, id: string): boolean {
  return id.length > 0 && memberNames(cert).includes(id);
}

/** `'n9'`, `'n9', 'db1'` or `no member id`, for messages. */
export function describeNames(cert: CertificateLike): string {
  const names = memberNames(cert);
  return names.length === 0 ? "no member id" : names.map((n) => `'${n.slice(0, 100)}'`).join(", ");
}

/** Options of the node's HTTPS server: with a CA, it asks for client certificates but lets clients without one in (the peer protocol checks them). */
export function serverTlsOptions(m: TlsMaterial): https.ServerOptions {
  return {
    cert: m.cert,
    key: m.key,
    ...(m.ca !== undefined ? { ca: m.ca, requestCert: true, rejectUnauthorized: false } : {}),
  };
}

/**
 * Why a peer stream that arrived on `socket` claiming to be member `from` must be refused, or null
 * to accept it: it must come over TLS and, with a CA, carry a certificate the CA vouches for that
 * names `from`.
 */
export function peerCertificateProblem(socket: unknown, from: string, m: TlsMaterial): string | null {
  const s = socket as Partial<tls.TLSSocket>;
  if (s.encrypted !== true || typeof s.getPeerCertificate !== "function")
    return "it did not connect over TLS";
  if (m.ca === undefined) return null;
  const cert = s.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return "it presented no client certificate";
  if (!s.authorized)
    return `its certificate is not trusted by this node's --ca (${String(s.authorizationError ?? "unverified")})`;
  if (!certificateNamesMember(cert, from)) return `its certificate names ${describeNames(cert)}`;
  return null;
}

/** Whether an error code is OpenSSL's or Node's for a certificate that failed verification. */
export function isCertificateError(code: string | undefined): boolean {
  return /CERT|UNABLE_TO_|INVALID_CA|INVALID_PURPOSE|HOSTNAME_MISMATCH/.test(code ?? "");
}

/** Set on the error when a peer's server certificate does not name the member that was dialled. */
export const PEER_IDENTITY_ERROR = "BALLOT_ERR_PEER_IDENTITY";

/**
 * Options for dialling member `peer` over TLS: present this node's certificate, trust only the CA
 * (the system's when there is none), and check the server's certificate both for the URL's host
 * and, with a CA, for naming `peer`: Raft traffic never goes to an impostor.
 */
export function peerClientOptions(m: TlsMaterial, peer: string): https.RequestOptions {
  return {
    cert: m.cert,
    key: m.key,
    ...(m.ca !== undefined ? { ca: m.ca } : {}),
    checkServerIdentity: (host, cert) => {
      const err = tls.checkServerIdentity(host, cert);
      if (err) return err;
      if (m.ca !== undefined && !certificateNamesMember(cert, peer)) {
        const e = new Error(`its certificate names ${describeNames(cert)}, not '${peer}'`);
        (e as NodeJS.ErrnoException).code = PEER_IDENTITY_ERROR;
        return e;
      }
      return undefined;
    },
  };
}
