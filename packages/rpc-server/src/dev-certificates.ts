// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect metadata API.
import "reflect-metadata";
import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { type ServiceIdentity, serviceIdentities } from "./service-identity.ts";
import type { ServiceTls } from "./service-tls.ts";

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const day = 24 * 60 * 60 * 1000;

/** The development CA and one certificate per service, as files and as PEM. */
export interface DevCertificates {
  /** The directory holding them (private: 0700). */
  readonly dir: string;
  /** PEM file of the CA certificate: what a client of the public gRPC API trusts. */
  readonly caFile: string;
  /** TLS material of each service identity. */
  readonly services: Readonly<Record<ServiceIdentity, ServiceTls>>;
}

x509.cryptoProvider.set(webcrypto as Crypto);
// Node's WebCrypto typed as the global one, which @peculiar/x509 speaks (the same whether the
// program is compiled with the DOM library or only Node's globals).
const subtle = webcrypto.subtle as unknown as SubtleCrypto;

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return bytes.toString("hex");
}

async function writePrivate(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

function pemOfPrivateKey(pkcs8: ArrayBuffer): string {
  return x509.PemConverter.encode(pkcs8, "PRIVATE KEY");
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ type: "pkcs8", format: "der" });
  return subtle.importKey("pkcs8", der, algorithm, false, ["sign"]);
}

async function loadOrCreateCa(
  dir: string,
): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const certFile = join(dir, "ca.pem");
  const keyFile = join(dir, "ca-key.pem");
  try {
    const [certPem, keyPem] = await Promise.all([
      readFile(certFile, "utf8"),
      readFile(keyFile, "utf8"),
    ]);
    const cert = new x509.X509Certificate(certPem);
    // Renewed well before it lapses: every service certificate is re-issued at each start.
    if (cert.notAfter.getTime() - Date.now() > 30 * day)
      return { cert, key: await importPrivateKey(keyPem) };
  } catch {
    // No CA yet (or an unreadable one): make a new one below.
  }
  const keys = (await subtle.generateKey(algorithm, true, ["sign", "verify"])) as {
    privateKey: CryptoKey;
    publicKey: CryptoKey;
  };
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: "CN=packrun development CA, O=packrun",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3650 * day),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  await writePrivate(keyFile, pemOfPrivateKey(await subtle.exportKey("pkcs8", keys.privateKey)));
  await writeFile(certFile, cert.toString("pem"));
  return { cert, key: keys.privateKey };
}

async function issue(
  ca: { cert: x509.X509Certificate; key: CryptoKey },
  identity: ServiceIdentity,
): Promise<{ cert: string; key: string }> {
  const keys = (await subtle.generateKey(algorithm, true, ["sign", "verify"])) as {
    privateKey: CryptoKey;
    publicKey: CryptoKey;
  };
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${identity}, O=packrun`,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * day),
    signingAlgorithm: algorithm,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      // The embedded default serves on loopback; the names let the same certificates serve a
      // local multi-process setup that calls the services by name.
      new x509.SubjectAlternativeNameExtension([
        { type: "dns", value: identity },
        { type: "dns", value: "localhost" },
        { type: "ip", value: "127.0.0.1" },
        { type: "ip", value: "::1" },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert: cert.toString("pem"),
    key: pemOfPrivateKey(await subtle.exportKey("pkcs8", keys.privateKey)),
  };
}

/**
 * The embedded default's (and the test harness's) internal PKI in `dir`: a development CA kept
 * across restarts (`ca.pem`, `ca-key.pem`) and a fresh certificate for each service identity at
 * every call (`<service>.pem`, `<service>-key.pem`). Keys are 0600 in a 0700 directory; steps
 * never see it (they see only their workdir and inputs). Production uses certificates from
 * `deploy/make-secrets.sh` or the operator's own CA instead.
 */
export async function ensureDevCertificates(dir: string): Promise<DevCertificates> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const ca = await loadOrCreateCa(dir);
  const caPem = ca.cert.toString("pem");
  const entries = await Promise.all(
    serviceIdentities.map(async (identity) => {
      const { cert, key } = await issue(ca, identity);
      await writePrivate(join(dir, `${identity}-key.pem`), key);
      await writeFile(join(dir, `${identity}.pem`), cert);
      return [identity, { ca: caPem, cert, key }] as const;
    }),
  );
  return {
    dir,
    caFile: join(dir, "ca.pem"),
    services: Object.fromEntries(entries) as Record<ServiceIdentity, ServiceTls>,
  };
}
