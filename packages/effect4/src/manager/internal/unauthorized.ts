/**
 * What an API request carries, read from the manager's state, and whether a
 * token the API refused (HTTP 401) is still the one the state holds.
 */
import { Effect, Equivalence, Option, Redacted } from "effect"
import { CredentialsUnavailableError } from "../../errors/Errors.js"
import type { Credentials } from "../AuthState.js"
import type { State } from "../RefreshState.js"

const sameSecret = Redacted.makeEquivalence(Equivalence.String)

/** The token a request would carry now: the API key, or the access token of healthy (or cooling) credentials. */
export const tokenOf = (state: State): Option.Option<Redacted.Redacted<string>> => {
  const doc = Option.getOrUndefined(state.snapshot.document)
  if (state.snapshot.method === "apikey") return Option.fromNullishOr(doc?.OPENAI_API_KEY)
  if (state.snapshot.method === "chatgpt" && state.health._tag !== "Poisoned") {
    return Option.fromNullishOr(doc?.tokens?.access_token)
  }
  return Option.none()
}

/** Whether `token` is the one a request would carry now (a 401 for any other one is already dealt with). */
export const holds = (state: State, token: Redacted.Redacted<string>): boolean =>
  Option.exists(tokenOf(state), (current) => sameSecret(current, token))

/** The credentials for a request, or why there are none: logged out, or poisoned (and why). */
export const credentialsOf = (state: State): Effect.Effect<Credentials, CredentialsUnavailableError> => {
  const { document, method } = state.snapshot
  if (method === null) return Effect.fail(new CredentialsUnavailableError({ reason: "logged_out" }))
  if (state.health._tag === "Poisoned") {
    return Effect.fail(
      new CredentialsUnavailableError({ reason: "poisoned", refreshReason: state.health.error.reason })
    )
  }
  return Option.match(tokenOf(state), {
    onNone: () => Effect.fail(new CredentialsUnavailableError({ reason: "logged_out" })),
    onSome: (token) =>
      Effect.succeed({
        method,
        token,
        // Codex sends the account id it saved with the tokens; the id_token's claim otherwise.
        accountId: method === "chatgpt"
          ? Option.getOrUndefined(document)?.tokens?.account_id ?? state.snapshot.claims.accountId
          : null
      })
  })
}
