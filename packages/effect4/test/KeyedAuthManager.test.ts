import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric } from "effect"
import { TestClock } from "effect/testing"
import { KeyedAuthManager } from "../src/manager/KeyedAuthManager.js"
import { type ScriptStep, TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import { RefreshCoordinator } from "../src/stores/RefreshCoordinator.js"
import { callers, chatgptJson, dead, gated, rotated, sent, tokenOf } from "./AuthManager.support.js"

const layer = (script: ReadonlyArray<ScriptStep>) =>
  Layer.effect(KeyedAuthManager, KeyedAuthManager.make({ idleTimeToLive: "10 seconds" })).pipe(
    Layer.provideMerge(Layer.mergeAll(
      CredentialStore.layerMemory({
        alice: chatgptJson({ refreshToken: "alice-refresh" }),
        bob: chatgptJson({ refreshToken: "bob-refresh" })
      }),
      RefreshCoordinator.layerMemory,
      TokenRefresher.layerTest(script)
    ))
  )

const poll = (key: string) =>
  Effect.flatMap(KeyedAuthManager, (auth) => auth.getAuthStatus(key, { includeToken: true, refreshToken: true }))

describe("KeyedAuthManager", () => {
  it.effect("each key has its own poison: a dead token for one key leaves the other refreshing", () =>
    Effect.gen(function*() {
      // alice's refresh token is dead; bob's refreshes.
      for (let i = 0; i < 5; i++) expect((yield* poll("alice")).authToken).toBeNull()
      expect(tokenOf(yield* poll("bob"))).toBe("bob-access-2")
      expect(yield* sent).toEqual(["alice-refresh", "bob-refresh"])
      // Each manager's counters carry its key.
      const attempts = (yield* Metric.snapshot).flatMap((metric) =>
        metric.id === "effect_auth_refresh_attempts_total" && metric.type === "Counter"
          ? [{ ...metric.attributes, count: metric.state.count }]
          : []
      )
      expect(attempts).toEqual(
        expect.arrayContaining([
          { outcome: "permanent", credential: "alice", count: 1 },
          { outcome: "success", credential: "bob", count: 1 }
        ])
      )
    }).pipe(Effect.provide(layer([dead(), rotated("bob-access-2", "bob-refresh-2")]))))

  const gate = Deferred.makeUnsafe<void>()
  it.effect("concurrent polls of one key make one request; a manager idle past its time is released", () =>
    Effect.gen(function*() {
      const auth = yield* KeyedAuthManager
      const polls = yield* callers(20, poll("alice"))
      yield* Deferred.succeed(gate, undefined)
      const statuses = yield* Fiber.joinAll(polls)
      expect(new Set(statuses.map(tokenOf))).toEqual(new Set(["alice-access-2"]))
      expect(yield* sent).toEqual(["alice-refresh"])
      expect(yield* auth.keys).toEqual(["alice"])
      // Inside the minimum interval: a poll that asks for a refresh makes no request.
      yield* TestClock.adjust("15 seconds")
      expect(yield* auth.keys).toEqual([])
      // Made again on the next use, from storage: the refreshed credential, no new request.
      expect(tokenOf(yield* poll("alice"))).toBe("alice-access-2")
      expect(yield* sent).toEqual(["alice-refresh"])
    }).pipe(Effect.provide(layer([gated(gate, rotated("alice-access-2", "alice-refresh-2"))]))))
})
