import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { exportJWK, generateKeyPair, importJWK, type JSONWebKeySet, type JWK } from "jose";

/** Algorithm of locally generated signing keys (ECDSA P-256, widely supported). */
export const localSigningAlgorithm = "ES256";

/** A token signing key pair held on disk for dev mode and tests. */
export interface LocalSigningKey {
  /** Private JWK, including `kid` and `alg`. */
  readonly privateJwk: JWK;
  /** The public half as a JWK Set, what the gateway is configured with. */
  readonly jwks: JSONWebKeySet;
}

/** Generates a fresh ES256 key pair with a random key id. */
export async function generateLocalSigningKey(): Promise<LocalSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(localSigningAlgorithm, {
    extractable: true,
  });
  const kid = `local-${crypto.randomUUID()}`;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: localSigningAlgorithm };
  const publicJwk = {
    ...(await exportJWK(publicKey)),
    kid,
    alg: localSigningAlgorithm,
    use: "sig",
  };
  return { privateJwk, jwks: { keys: [publicJwk] } };
}

/**
 * Loads the key pair stored at `privateKeyPath` (private JWK) and `jwksPath` (public JWK Set),
 * creating both (mode 0600 for the private key) when the private key does not exist yet.
 */
export async function loadOrCreateLocalSigningKey(
  privateKeyPath: string,
  jwksPath: string,
): Promise<LocalSigningKey> {
  try {
    const privateJwk = JSON.parse(await readFile(privateKeyPath, "utf8")) as JWK;
    const jwks = JSON.parse(await readFile(jwksPath, "utf8")) as JSONWebKeySet;
    await importJWK(privateJwk, privateJwk.alg ?? localSigningAlgorithm);
    return { privateJwk, jwks };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const key = await generateLocalSigningKey();
  await mkdir(dirname(privateKeyPath), { recursive: true });
  await mkdir(dirname(jwksPath), { recursive: true });
  await writeFile(jwksPath, `${JSON.stringify(key.jwks, null, 2)}\n`, { mode: 0o644 });
  await writeFile(privateKeyPath, `${JSON.stringify(key.privateJwk, null, 2)}\n`, {
    mode: 0o600,
  });
  return key;
}
