/**
 * PKCE (RFC 7636, S256) and the `state` of an authorization request, from
 * the operating system's secure random source, as the Codex CLI makes them:
 * 64 random bytes for the verifier, 32 for the state, base64url without padding.
 */
import { Effect, Redacted } from "effect"
import { createHash, randomBytes, randomUUID } from "node:crypto"

export interface Pkce {
  readonly verifier: Redacted.Redacted<string>
  /** base64url(SHA-256(verifier)): safe to send in the authorize URL. */
  readonly challenge: string
}

export const challengeOf = (verifier: string): string => createHash("sha256").update(verifier).digest("base64url")

export const makePkce: Effect.Effect<Pkce> = Effect.sync(() => {
  const verifier = randomBytes(64).toString("base64url")
  return { verifier: Redacted.make(verifier), challenge: challengeOf(verifier) }
})

export const makeState: Effect.Effect<string> = Effect.sync(() => randomBytes(32).toString("base64url"))

export const makeLoginId: Effect.Effect<string> = Effect.sync(() => randomUUID())
