import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import * as KeyedAuthManager from "../src/manager/KeyedAuthManager.js"
import { type ScriptStep, TokenRefresher } from "../src/oauth/TokenRefresher.js"
import * as CredentialStore from "../src/stores/CredentialStore.js"
import * as RefreshCoordinator from "../src/stores/RefreshCoordinator.js"
import { chatgptJson } from "./support/fixtures.js"
import { callCount, dead, rotated, tokenOf } from "./support/manager.js"

const layer = (script: ReadonlyArray<ScriptStep>) =>
  Layer.scoped(
    KeyedAuthManager.KeyedAuthManager,
    KeyedAuthManager.KeyedAuthManager.make({ idleTimeToLive: "10 seconds", settings: { watchDebounce: 0 as never } })
  ).pipe(
    Layer.provideMerge(Layer.mergeAll(
      CredentialStore.CredentialStore.layerMemory({
        alice: chatgptJson({ refreshToken: "alice-refresh" }),
        bob: chatgptJson({ refreshToken: "bob-refresh" })
      }),
      RefreshCoordinator.RefreshCoordinator.layerMemory,
      TokenRefresher.layerTest(script)
    ))
  )

const poll = (key: string) =>
  Effect.flatMap(
    KeyedAuthManager.KeyedAuthManager,
    (auth) => auth.getAuthStatus(key, { includeToken: true, refreshToken: true })
  )

describe("KeyedAuthManager", () => {
  it.effect("each key has its own poison: a dead token for one key leaves the other refreshing", () =>
    Effect.gen(function*() {
      // alice's refresh token is dead; bob's refreshes.
      const first = yield* poll("alice")
      expect(first.authToken).toBeNull()
      for (let i = 0; i < 5; i++) expect((yield* poll("alice")).authToken).toBeNull()
      const bob = yield* poll("bob")
      expect(tokenOf(bob)).toBe("bob-access-2")
      expect(yield* callCount).toBe(2)
    }).pipe(Effect.provide(layer([dead("reused"), rotated("bob-access-2", "bob-refresh-2")]))))

  it.effect("concurrent polls of one key make one request; a manager idle past its time is released", () =>
    Effect.gen(function*() {
      const auth = yield* KeyedAuthManager.KeyedAuthManager
      const statuses = yield* Effect.all(Array.from({ length: 20 }, () => poll("alice")), { concurrency: "unbounded" })
      expect(new Set(statuses.map(tokenOf))).toEqual(new Set(["alice-access-2"]))
      expect(yield* callCount).toBe(1)
      expect(yield* auth.keys).toEqual(["alice"])
      // Inside the minimum interval: a poll that asks for a refresh makes no request.
      yield* TestClock.adjust("15 seconds")
      expect(yield* auth.keys).toEqual([])
      // Made again on the next use, from storage: the refreshed credential, no new request.
      expect(tokenOf(yield* poll("alice"))).toBe("alice-access-2")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(layer([rotated("alice-access-2", "alice-refresh-2")]))))
})
