import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, PubSub, Stream, TestClock } from "effect"
import * as AuthDocument from "../src/document/AuthDocument.js"
import * as KeyedAuthManager from "../src/manager/KeyedAuthManager.js"
import { type ScriptStep, TokenRefresher } from "../src/oauth/TokenRefresher.js"
import * as CredentialStore from "../src/stores/CredentialStore.js"
import * as RefreshCoordinator from "../src/stores/RefreshCoordinator.js"
import { chatgptJson } from "./support/fixtures.js"
import { callCount, dead, decode, rotated, tokenOf } from "./support/manager.js"

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

  it.scoped("one feed of every key's changes: another replica's write is adopted by its key's manager, all after a cut", () =>
    Effect.gen(function*() {
      const backend = yield* CredentialStore.makeMemoryBackend({
        alice: chatgptJson({ accessToken: "alice-access-1", refreshToken: "alice-refresh" }),
        bob: chatgptJson({ accessToken: "bob-access-1", refreshToken: "bob-refresh" })
      })
      // This replica's store hears every key in one feed; another replica writes to the same rows.
      const feed = yield* PubSub.unbounded<Option.Option<string>>()
      const store = CredentialStore.make({
        ...backend,
        changes: () => Stream.never,
        exactChanges: true,
        changedKeys: Stream.fromPubSub(feed)
      })
      const other = CredentialStore.make(backend)
      const auth = yield* KeyedAuthManager.KeyedAuthManager.make({ settings: {} }).pipe(
        Effect.provide(Layer.merge(
          Layer.succeed(CredentialStore.CredentialStore, store),
          RefreshCoordinator.RefreshCoordinator.layerMemory
        ))
      )
      const served = (key: string) =>
        Effect.map(auth.getAuthStatus(key, { includeToken: true, noRefresh: true }), tokenOf)
      expect(yield* served("alice")).toBe("alice-access-1")
      expect(yield* served("bob")).toBe("bob-access-1")
      const alice = yield* auth.get("alice")
      const bob = yield* auth.get("bob")
      const writeElsewhere = (key: string, accessToken: string) => {
        const doc = decode(chatgptJson({ accessToken, refreshToken: `${key}-refresh-2` }))
        return Effect.as(other.set(key, Option.some(doc)), AuthDocument.snapshot(doc).hash)
      }
      // Resolves once the manager's state is the snapshot of `hash`.
      const adopted = (manager: typeof alice, hash: string) =>
        Effect.fork(manager.changes.pipe(Stream.filter((state) => state.hash === hash), Stream.runHead))

      const aliceHash = yield* writeElsewhere("alice", "alice-access-other")
      const aliceAdopted = yield* adopted(alice, aliceHash)
      yield* PubSub.publish(feed, Option.some("alice"))
      yield* Fiber.join(aliceAdopted)
      expect(yield* served("alice")).toBe("alice-access-other")
      // Only the key named was read again.
      expect(yield* served("bob")).toBe("bob-access-1")

      // A cut feed (none): every manager alive reads its credential again.
      const bobHash = yield* writeElsewhere("bob", "bob-access-other")
      const bobAdopted = yield* adopted(bob, bobHash)
      yield* PubSub.publish(feed, Option.none())
      yield* Fiber.join(bobAdopted)
      expect(yield* served("bob")).toBe("bob-access-other")
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(TokenRefresher.layerTest([]))))
})
