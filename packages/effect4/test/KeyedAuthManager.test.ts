import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Ref } from "effect"
import { TestClock } from "effect/testing"
import type * as AuthDocument from "../src/document/AuthDocument.js"
import { PermanentRefreshError, type TransientRefreshError } from "../src/errors/Errors.js"
import { KeyedAuthManager } from "../src/manager/KeyedAuthManager.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import { RefreshCoordinator } from "../src/stores/RefreshCoordinator.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"

const chatgptJson = (refreshToken: string) => ({
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: {
    id_token: unsignedJwt({ email: "ada@example.com" }),
    access_token: unsignedJwt({ exp: 4_102_444_800 }),
    refresh_token: refreshToken,
    account_id: "acct_123"
  },
  last_refresh: new Date(-10 * 86_400_000).toISOString()
})

type Step = Effect.Effect<AuthDocument.RefreshedTokens, PermanentRefreshError | TransientRefreshError>
const dead: Step = Effect.fail(new PermanentRefreshError({ reason: "reused", status: 401 }))
const rotated = (access: string, refresh: string): Step =>
  Effect.succeed({ accessToken: Redacted.make(access), refreshToken: Redacted.make(refresh) })

/** The refresh tokens the scripted endpoint was sent, in order. */
class Sent extends Context.Service<Sent, Effect.Effect<ReadonlyArray<string>>>()("test/Sent") {}

/** A token endpoint that answers call N with step N (the last one repeats), and records what it was sent. */
const scripted = (script: ReadonlyArray<Step>) =>
  Layer.effectContext(Effect.gen(function*() {
    const sent = yield* Ref.make<ReadonlyArray<string>>([])
    const refresh = (token: Redacted.Redacted<string>) =>
      Ref.modify(sent, (all) => [all.length, [...all, Redacted.value(token)]] as const).pipe(
        Effect.flatMap((call) => script[Math.min(call, script.length - 1)]!)
      )
    return Context.make(TokenRefresher, TokenRefresher.of({ refresh })).pipe(Context.add(Sent, Ref.get(sent)))
  }))

const layer = (script: ReadonlyArray<Step>) =>
  Layer.effect(KeyedAuthManager, KeyedAuthManager.make({ idleTimeToLive: "10 seconds" })).pipe(
    Layer.provideMerge(Layer.mergeAll(
      CredentialStore.layerMemory({ alice: chatgptJson("alice-refresh"), bob: chatgptJson("bob-refresh") }),
      RefreshCoordinator.layerMemory,
      scripted(script)
    ))
  )

const sent = Effect.flatMap(Sent, (calls) => calls)
const poll = (key: string) =>
  Effect.flatMap(KeyedAuthManager, (auth) => auth.getAuthStatus(key, { includeToken: true, refreshToken: true }))
const tokenOf = (status: { readonly authToken: Redacted.Redacted<string> | null }) =>
  status.authToken === null ? null : Redacted.value(status.authToken)

describe("KeyedAuthManager", () => {
  it.effect("each key has its own poison: a dead token for one key leaves the other refreshing", () =>
    Effect.gen(function*() {
      // alice's refresh token is dead; bob's refreshes.
      for (let i = 0; i < 5; i++) expect((yield* poll("alice")).authToken).toBeNull()
      expect(tokenOf(yield* poll("bob"))).toBe("bob-access-2")
      expect(yield* sent).toEqual(["alice-refresh", "bob-refresh"])
    }).pipe(Effect.provide(layer([dead, rotated("bob-access-2", "bob-refresh-2")]))))

  it.effect("concurrent polls of one key make one request; a manager idle past its time is released", () =>
    Effect.gen(function*() {
      const auth = yield* KeyedAuthManager
      const statuses = yield* Effect.all(Array.from({ length: 20 }, () => poll("alice")), { concurrency: "unbounded" })
      expect(new Set(statuses.map(tokenOf))).toEqual(new Set(["alice-access-2"]))
      expect(yield* sent).toEqual(["alice-refresh"])
      expect(yield* auth.keys).toEqual(["alice"])
      // Inside the minimum interval: a poll that asks for a refresh makes no request.
      yield* TestClock.adjust("15 seconds")
      expect(yield* auth.keys).toEqual([])
      // Made again on the next use, from storage: the refreshed credential, no new request.
      expect(tokenOf(yield* poll("alice"))).toBe("alice-access-2")
      expect(yield* sent).toEqual(["alice-refresh"])
    }).pipe(Effect.provide(layer([rotated("alice-access-2", "alice-refresh-2")]))))
})
