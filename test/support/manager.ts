import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { type Settings } from "../../src/config/Settings.js"
import * as AuthDocument from "../../src/document/AuthDocument.js"
import { PermanentRefreshError, TransientRefreshError } from "../../src/errors/Errors.js"
import { AuthManager } from "../../src/manager/AuthManager.js"
import { type ScriptStep, TokenRefresher, TokenRefresherTest } from "../../src/oauth/TokenRefresher.js"
import { AuthStore } from "../../src/stores/AuthStore.js"

/** A manager over a memory store seeded with `json` and the given refresher. */
export const managerWith = <ROut extends TokenRefresher | TokenRefresherTest, E, R>(
  json: object | undefined,
  refresher: Layer.Layer<ROut, E, R>,
  settings: Partial<Settings> = {}
) =>
  Layer.scoped(AuthManager, AuthManager.make(settings)).pipe(
    Layer.provideMerge(Layer.merge(AuthStore.layerMemory(json), refresher))
  )

/** A manager over a memory store and the scripted refresher. */
export const scripted = (
  json: object | undefined,
  script: Parameters<typeof TokenRefresher.layerTest>[0],
  settings: Partial<Settings> = {}
) => managerWith(json, TokenRefresher.layerTest(script), settings)

export const callCount = Effect.map(Effect.flatMap(TokenRefresherTest, (t) => t.calls), (calls) => calls.length)

export const dead = (reason: PermanentRefreshError["reason"] = "reused"): ScriptStep =>
  Effect.fail(new PermanentRefreshError({ reason, status: 401 }))

export const down = (retryAfterSeconds?: number): ScriptStep =>
  Effect.fail(
    new TransientRefreshError({
      kind: "status",
      detail: "HTTP 503",
      status: 503,
      ...(retryAfterSeconds === undefined ? {} : { retryAfter: Duration.seconds(retryAfterSeconds) })
    })
  )

export const rotated = (access: string, refresh: string): ScriptStep =>
  Effect.succeed({ accessToken: Redacted.make(access), refreshToken: Redacted.make(refresh) })

export const poll = (includeToken = true) =>
  Effect.flatMap(AuthManager, (auth) => auth.getAuthStatus({ includeToken, refreshToken: true }))

export const tokenOf = (status: { readonly authToken: Redacted.Redacted<string> | null }) =>
  status.authToken === null ? null : Redacted.value(status.authToken)

export const decode = (json: Record<string, unknown>) => Option.getOrThrow(Option.getRight(AuthDocument.decode(json)))

/** Writes `json` to the store behind the manager's back, as another process would. */
export const writeBehind = (json: Record<string, unknown>) =>
  Effect.flatMap(AuthStore, (store) => store.save(decode(json)))

export const statusOf = Effect.flatMap(AuthManager, (auth) => auth.state)
