/**
 * PKCE (RFC 7636, S256) and the `state` of an authorization request, from
 * the operating system's secure random source, as the Codex CLI makes them:
 * 64 random bytes for the verifier, 32 for the state, base64url without padding.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto"

/** A fresh verifier (a secret: an edition keeps it Redacted) and its challenge. */
export interface Pkce {
  readonly verifier: string
  /** base64url(SHA-256(verifier)): safe to send in the authorize URL. */
  readonly challenge: string
}

/** The S256 challenge of a verifier: base64url(SHA-256(verifier)). */
export const challengeOf = (verifier: string): string => createHash("sha256").update(verifier).digest("base64url")

/** A verifier from 64 random bytes, and its challenge. */
export const makePkce = (): Pkce => {
  const verifier = randomBytes(64).toString("base64url")
  return { verifier, challenge: challengeOf(verifier) }
}

/** The `state` of an authorization request: 32 random bytes, base64url. */
export const makeState = (): string => randomBytes(32).toString("base64url")

/** A sign-in's id, a UUID as the Codex app server's `loginId`. */
export const makeLoginId = (): string => randomUUID()
