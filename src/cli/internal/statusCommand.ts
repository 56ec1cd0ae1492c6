/**
 * `effect-auth status` without the services behind it: its options, how a
 * state is printed, and its exit code. The full command line and the bin's
 * fast status (`plainStatus.ts`) both print through `report`, so they print
 * the same thing.
 */
import { Console, Effect, Redacted } from "effect"
import type { AuthState, AuthStatus } from "../../manager/AuthState.js"
import { setExitCode } from "../CliIo.js"
import type { StatusOptions } from "../StatusArgs.js"

export { parseStatusArgs, type StatusOptions } from "../StatusArgs.js"

export const usable = (state: AuthState) => state.method !== null && state.status !== "poisoned"

/** What `describe` says when nobody is signed in: where it looked, and how to sign in. */
export const notSignedIn = (location: string | undefined) =>
  `Not signed in${location === undefined ? "" : ` (no credentials in ${location})`}. Sign in with: effect-auth login`

/** One sentence (two when unhealthy) on `state`; `location` is where the credentials are kept. */
export const describe = (state: AuthState, location?: string): string => {
  const who = state.method === "apikey"
    ? "Signed in with an API key"
    : state.method === "chatgpt"
    ? `Signed in with ChatGPT${state.email === null ? "" : ` as ${state.email}`}${
      state.planType === null ? "" : ` (plan: ${state.planType})`
    }`
    : notSignedIn(location)
  const health = state.status === "poisoned"
    ? `\nThe refresh token is dead (${state.reason}): sign in again (effect-auth login).`
    : state.status === "cooling-down"
    ? `\nThe last refresh failed for now; the next attempt is after ${new Date(state.retryAt ?? 0).toISOString()}.`
    : ""
  return who + health
}

/**
 * The one JSON vocabulary of `status --json` and `watch --json`. `status` is
 * "loggedOut", "healthy", "coolingDown" or "poisoned".
 */
export const jsonView = (state: AuthState) => ({
  status: state.method === null
    ? "loggedOut"
    : state.status === "cooling-down"
    ? "coolingDown"
    : state.status,
  authMethod: state.method,
  email: state.email,
  planType: state.planType,
  reason: state.reason,
  retryAt: state.retryAt === null ? null : new Date(state.retryAt).toISOString(),
  lastRefresh: state.lastRefreshAt === null ? null : new Date(state.lastRefreshAt).toISOString()
})

/**
 * Prints `state` (and the token, when asked for) and sets the exit code: 0
 * when the credentials are usable. `location` is where they are kept.
 */
export const report = (state: AuthState, result: AuthStatus, options: StatusOptions, location: string) =>
  Effect.gen(function*() {
    const token = result.authToken === null ? null : Redacted.value(result.authToken)
    if (options.json) {
      yield* Console.log(JSON.stringify({ ...jsonView(state), ...(options.includeToken ? { authToken: token } : {}) }))
    } else {
      yield* Console.log(describe(state, location))
      if (options.includeToken && token !== null) yield* Console.log(token)
    }
    // Asked to refresh, a refresh that failed (backing off) is not success, whatever token is held.
    yield* setExitCode(usable(state) && !(options.refresh && state.status === "cooling-down") ? 0 : 1)
  })
