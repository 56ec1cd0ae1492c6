/**
 * PKCE, the `state` and the login id (made by the core) as effects, the
 * verifier Redacted.
 */
import * as Core from "@effect-auth-manager/core/pkce"
import { Effect, Redacted } from "effect"

export interface Pkce {
  readonly verifier: Redacted.Redacted<string>
  /** base64url(SHA-256(verifier)): safe to send in the authorize URL. */
  readonly challenge: string
}

export const makePkce: Effect.Effect<Pkce> = Effect.sync(() => {
  const { challenge, verifier } = Core.makePkce()
  return { verifier: Redacted.make(verifier), challenge }
})

export const makeState: Effect.Effect<string> = Effect.sync(Core.makeState)

export const makeLoginId: Effect.Effect<string> = Effect.sync(Core.makeLoginId)
