/**
 * What the manager's tests share: auth.json documents as the Codex CLI writes them, the scripted
 * token endpoint's steps, a manager over a memory store, and callers started all at once.
 */
import { Deferred, Effect, Fiber, Layer, Option, Redacted } from "effect"
import type { Settings } from "../src/config/Settings.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { PermanentRefreshError, TransientRefreshError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { type ScriptStep, TokenRefresher, TokenRefresherTest } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"

const day = 86_400_000

/** Token values distinctive enough to search any output for. */
export const secrets = {
  access: unsignedJwt({ exp: 4_102_444_800, marker: "access-token-SECRET-1" }),
  refresh: "refresh-token-SECRET-2",
  apiKey: "sk-test-api-key-SECRET-3"
}

export const idToken = unsignedJwt({
  email: "ada@example.com",
  "https://api.openai.com/auth": { chatgpt_plan_type: "plus", chatgpt_account_id: "acct_123" }
})

/** A ChatGPT auth.json, last refreshed 10 days before the test clock's 0 unless said otherwise. */
export const chatgptJson = (
  options: {
    readonly refreshToken?: string
    readonly accessToken?: string
    readonly refreshedAgo?: number
    /** The access token's `exp`, in milliseconds from the test clock's 0. */
    readonly expiresIn?: number
  } = {}
) => ({
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: {
    id_token: idToken,
    access_token: options.accessToken ??
      (options.expiresIn === undefined
        ? secrets.access
        : unsignedJwt({ exp: Math.floor(options.expiresIn / 1000), marker: "access-token-SECRET-1" })),
    refresh_token: options.refreshToken ?? secrets.refresh,
    account_id: "acct_123"
  },
  last_refresh: new Date(-(options.refreshedAgo ?? 10 * day)).toISOString()
})

export const dead = (reason: PermanentRefreshError["reason"] = "reused"): ScriptStep =>
  Effect.fail(new PermanentRefreshError({ reason, status: 401 }))
export const down = (): ScriptStep =>
  Effect.fail(new TransientRefreshError({ kind: "status", detail: "HTTP 503", status: 503 }))
export const rotated = (access: string, refresh: string): ScriptStep =>
  Effect.succeed({ accessToken: Redacted.make(access), refreshToken: Redacted.make(refresh) })

/** A step that answers like `step` once `gate` is open: every caller arrives while its request is out. */
export const gated = (gate: Deferred.Deferred<void>, step: ScriptStep): ScriptStep =>
  Effect.andThen(Deferred.await(gate), step)

/** The scripted endpoint's answers: call N runs step N (the last one repeats), or `f(N)`. */
export type Script = ReadonlyArray<ScriptStep> | ((call: number) => ScriptStep)

/** A manager over the store `store` provides and the scripted refresher. */
export const managerOver = <ROut, E, R>(
  store: Layer.Layer<ROut, E, R>,
  script: Script,
  settings: Partial<Settings> = {}
) =>
  Layer.effect(AuthManager, AuthManager.make(settings)).pipe(
    Layer.provideMerge(Layer.merge(store, TokenRefresher.layerTest(script)))
  )

/** A manager over a memory store seeded with `json`, an object or text (none: logged out), and the scripted refresher. */
export const manager = (
  json: string | object | undefined,
  script: Script,
  settings: Partial<Settings> = {}
) => managerOver(AuthStore.layerMemory(json), script, settings)

/** The refresh tokens the scripted endpoint was sent, in order. */
export const sent = Effect.flatMap(
  TokenRefresherTest,
  (test) => Effect.map(test.calls, (calls) => calls.map(Redacted.value))
)
export const callCount = Effect.map(sent, (all) => all.length)

export const poll = (includeToken = true) =>
  Effect.flatMap(AuthManager, (auth) => auth.getAuthStatus({ includeToken, refreshToken: true }))
export const tokenOf = (status: { readonly authToken: Redacted.Redacted<string> | null }) =>
  status.authToken === null ? null : Redacted.value(status.authToken)
export const statusOf = Effect.flatMap(AuthManager, (auth) => auth.state)

/** The refresh token a snapshot holds. */
export const refreshTokenOf = (snapshot: AuthDocument.AuthSnapshot) => {
  const token = Option.getOrUndefined(snapshot.document)?.tokens?.refresh_token
  return token === undefined ? undefined : Redacted.value(token)
}
export const storedRefreshToken = Effect.flatMap(AuthStore, (store) => Effect.map(store.load, refreshTokenOf))

/** Writes `json` to the store behind the manager's back, as another process would. */
export const writeBehind = (json: object) =>
  Effect.flatMap(AuthStore, (store) => Effect.flatMap(Effect.fromResult(AuthDocument.decode(json)), store.save))

/**
 * `n` callers of `effect`, each started at once and run until it waits: every one of them has made
 * its decision (start a refresh, or join the one in flight) before anything else runs.
 */
export const callers = <A, E, R>(n: number, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fibers: Array<Fiber.Fiber<A, E>> = []
    for (let i = 0; i < n; i++) fibers.push(yield* Effect.forkChild(effect, { startImmediately: true }))
    return fibers
  })
