/**
 * What an API request carries, read from the manager's state (the core's
 * rules, `RefreshState.credentialsOf`), and whether a token the API refused
 * (HTTP 401) is still the one the state holds.
 */
import { Effect, type Redacted } from "effect"
import { CredentialsUnavailableError } from "../../errors/Errors.js"
import type { Credentials } from "../AuthState.js"
import * as RefreshState from "../RefreshState.js"
import type { State } from "../RefreshState.js"

/** Whether `token` is the one a request would carry now (a 401 for any other one is already dealt with). */
export const holds: (state: State, token: Redacted.Redacted<string>) => boolean = RefreshState.holds

/** The credentials for a request, or why there are none: logged out, or poisoned (and why). */
export const credentialsOf = (state: State): Effect.Effect<Credentials, CredentialsUnavailableError> => {
  const credentials = RefreshState.credentialsOf(state)
  switch (credentials._tag) {
    case "LoggedOut":
      return Effect.fail(new CredentialsUnavailableError({ reason: "logged_out" }))
    case "Poisoned":
      return Effect.fail(new CredentialsUnavailableError({ reason: "poisoned", refreshReason: credentials.reason }))
    case "Credentials":
      return Effect.succeed({ method: credentials.method, token: credentials.token, accountId: credentials.accountId })
  }
}
