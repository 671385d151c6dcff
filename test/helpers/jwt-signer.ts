// Keys that sign test JWTs with jose, and the JWKS that publishes them.
import { exportJWK, generateKeyPair, type JWK, type KeyLike } from 'jose';

export interface Signer {
  key: KeyLike;
  jwk: JWK;
  alg: 'RS256' | 'ES256';
}

export async function signer(alg: 'RS256' | 'ES256', kid: string): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  return { key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }, alg };
}

/** A JWKS document holding the signers' public keys. */
export const jwks = (...s: Signer[]) => JSON.stringify({ keys: s.map((x) => x.jwk) });
