import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, HashMap, Layer, Logger, Option, PubSub, Queue, Stream, TestClock } from "effect"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStoreError } from "../src/errors/Errors.js"
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

/** A keyed manager over `store` and `coordinator` (memory's by default), built in the test's scope. */
const keyedOver = (
  store: CredentialStore.CredentialStoreShape,
  coordinator?: RefreshCoordinator.RefreshCoordinatorShape,
  options: KeyedAuthManager.Options = {}
) =>
  KeyedAuthManager.KeyedAuthManager.make({ settings: {}, ...options }).pipe(
    Effect.provide(Layer.merge(
      Layer.succeed(CredentialStore.CredentialStore, store),
      coordinator === undefined
        ? RefreshCoordinator.RefreshCoordinator.layerMemory
        : Layer.succeed(RefreshCoordinator.RefreshCoordinator, coordinator)
    ))
  )

const poll = (key: string) =>
  Effect.flatMap(
    KeyedAuthManager.KeyedAuthManager,
    (auth) => auth.getAuthStatus(key, { includeToken: true, refreshToken: true })
  )

/**
 * Alice and Bob in memory, one turn: both polled at once, the first key's refresh takes the turn
 * and waits under its lock for `go` (each lock asked for is written to `asked`); the other waits
 * for its turn.
 */
const twoKeysOneTurn = Effect.gen(function*() {
  const backend = yield* CredentialStore.makeMemoryBackend({
    alice: chatgptJson({ accessToken: "alice-access-1", refreshToken: "alice-refresh" }),
    bob: chatgptJson({ accessToken: "bob-access-1", refreshToken: "bob-refresh" })
  })
  const coordinator = RefreshCoordinator.make(yield* RefreshCoordinator.makeMemoryBackend)
  const asked = yield* Queue.unbounded<string>()
  const go = yield* Deferred.make<void>()
  const gated: RefreshCoordinator.RefreshCoordinatorShape = {
    ...coordinator,
    withRefreshLock: (key) => (effect) =>
      Effect.zipRight(
        Queue.offer(asked, key),
        coordinator.withRefreshLock(key)(Effect.zipRight(Deferred.await(go), effect))
      )
  }
  const auth = yield* keyedOver(CredentialStore.make(backend), gated, { refreshesAtOnce: 1 })
  const polls = yield* Effect.forEach(
    ["alice", "bob"],
    (key) => Effect.fork(Effect.map(auth.getAuthStatus(key, { includeToken: true, refreshToken: true }), tokenOf))
  )
  const first = yield* Queue.take(asked)
  const waiting = first === "alice" ? "bob" : "alice"
  return { asked, auth, backend, first, go, polls, waiting }
})

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
      const auth = yield* keyedOver(store)
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

  it.scoped("a refresh waiting for another replica's lock stops once that replica's write is adopted, without the lock or a request", () =>
    Effect.gen(function*() {
      const backend = yield* CredentialStore.makeMemoryBackend({
        alice: chatgptJson({ accessToken: "alice-access-1", refreshToken: "alice-refresh" }),
        bob: chatgptJson({ accessToken: "bob-access-1", refreshToken: "bob-refresh" })
      })
      const store = CredentialStore.make(backend)
      const coordinator = RefreshCoordinator.make(yield* RefreshCoordinator.makeMemoryBackend)
      // This replica's lock waits are seen: a key is in `asked` once its flight asks for the lock.
      const asked = yield* Queue.unbounded<string>()
      const watched: RefreshCoordinator.RefreshCoordinatorShape = {
        ...coordinator,
        withRefreshLock: (key) => (effect) =>
          Effect.zipRight(Queue.offer(asked, key), coordinator.withRefreshLock(key)(effect))
      }
      const auth = yield* keyedOver(store, watched)
      // Another replica holds both keys' locks (its refreshes are in flight) until told to let go.
      const letGo = yield* Deferred.make<void>()
      const holding = yield* Deferred.make<void>()
      yield* coordinator.withRefreshLock("alice")(
        coordinator.withRefreshLock("bob")(
          Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(letGo))
        )
      ).pipe(Effect.forkScoped)
      yield* Deferred.await(holding)
      const other = CredentialStore.make(backend)
      const writeElsewhere = (key: string, accessToken: string) =>
        other.set(key, Option.some(decode(chatgptJson({ accessToken, refreshToken: `${key}-refresh-2` }))))
      const refreshing = (key: string) =>
        Effect.fork(Effect.map(auth.getAuthStatus(key, { includeToken: true, refreshToken: true }), tokenOf))

      // A key held lightly: its flight waits for the lock; the other replica writes; the poll answers.
      const alice = yield* refreshing("alice")
      expect(yield* Queue.take(asked)).toBe("alice")
      yield* writeElsewhere("alice", "alice-access-other")
      expect(yield* Fiber.join(alice)).toBe("alice-access-other")

      // A key with its full manager: the same.
      const bobManager = yield* auth.get("bob")
      const bob = yield* Effect.fork(
        Effect.map(bobManager.getAuthStatus({ includeToken: true, refreshToken: true }), tokenOf)
      )
      expect(yield* Queue.take(asked)).toBe("bob")
      yield* writeElsewhere("bob", "bob-access-other")
      expect(yield* Fiber.join(bob)).toBe("bob-access-other")
      // Both answered while the other replica still holds the locks; nobody asked the endpoint.
      expect(yield* Deferred.isDone(letGo)).toBe(false)
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(TokenRefresher.layerTest([]))))

  it.scoped("a key held lightly is handed to its full manager with refreshed tokens not saved yet, which it serves and saves", () =>
    Effect.gen(function*() {
      const backend = yield* CredentialStore.makeMemoryBackend({
        alice: chatgptJson({ accessToken: "alice-access-1", refreshToken: "alice-refresh" })
      })
      // Storage refuses the first write (the refreshed tokens), then takes them.
      let refusals = 1
      const store = CredentialStore.make({
        ...backend,
        swap: (key, expected, next) =>
          Effect.suspend(() =>
            refusals-- > 0
              ? Effect.fail(new AuthStoreError({ path: `memory:${key}`, operation: "write", problem: "injected" }))
              : backend.swap(key, expected, next)
          )
      })
      const auth = yield* keyedOver(store)
      const light = yield* auth.getAuthStatus("alice", { includeToken: true, refreshToken: true })
      expect(tokenOf(light)).toBe("alice-access-2")
      // Not saved: storage still holds the replaced refresh token.
      const held = (yield* Effect.flatMap(backend.read("alice"), Effect.orElseFail(() => "absent"))).text
      expect(JSON.parse(held).tokens.refresh_token).toBe("alice-refresh")
      // The full manager takes the state over: it serves the refreshed token, sends no request, and saves it.
      const manager = yield* auth.get("alice")
      expect(tokenOf(yield* manager.getAuthStatus({ includeToken: true }))).toBe("alice-access-2")
      // Its save retry starts at once (no wait): the clock moved on, storage holds the refreshed tokens.
      yield* TestClock.adjust("1 second")
      const saved = (yield* Effect.flatMap(backend.read("alice"), Effect.orElseFail(() => "absent"))).text
      expect(JSON.parse(saved).tokens.refresh_token).toBe("alice-refresh-2")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(TokenRefresher.layerTest([rotated("alice-access-2", "alice-refresh-2")]))))

  it.scoped("a key read by one poll for others too: that poll giving up does not leave the others waiting", () =>
    Effect.gen(function*() {
      const backend = yield* CredentialStore.makeMemoryBackend({
        alice: chatgptJson({ accessToken: "alice-access-1", refreshToken: "alice-refresh" })
      })
      // Reads wait until the gate opens; `reading` counts the reads begun.
      const gate = yield* Deferred.make<void>()
      const reading = yield* Queue.unbounded<void>()
      const store = CredentialStore.make({
        ...backend,
        read: (key) =>
          Effect.zipRight(Queue.offer(reading, undefined), Effect.zipRight(Deferred.await(gate), backend.read(key)))
      })
      const auth = yield* keyedOver(store)
      const served = Effect.map(auth.getAuthStatus("alice", { includeToken: true, noRefresh: true }), tokenOf)
      const first = yield* Effect.fork(served)
      yield* Queue.take(reading)
      const second = yield* Effect.fork(served)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      // The second poll reads the key itself once the first gave up.
      yield* Queue.take(reading)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(second)).toBe("alice-access-1")
    }).pipe(Effect.provide(TokenRefresher.layerTest([]))))

  it.scoped("keys asked for at once take turns: one adopted while it waits for its turn takes no lock and makes no request", () =>
    Effect.gen(function*() {
      const { asked, backend, first, go, polls, waiting } = yield* twoKeysOneTurn
      // Another replica refreshes the key that waits for its turn: adopted, its poll answers.
      const other = CredentialStore.make(backend)
      yield* other.set(
        waiting,
        Option.some(decode(chatgptJson({ accessToken: `${waiting}-access-other`, refreshToken: "x" })))
      )
      expect(yield* Fiber.join(polls[first === "alice" ? 1 : 0]!)).toBe(`${waiting}-access-other`)
      yield* Deferred.succeed(go, undefined)
      expect(yield* Fiber.join(polls[first === "alice" ? 0 : 1]!)).toBe("access-2")
      // One lock asked for, one request: the adopted key never started.
      expect(yield* Queue.size(asked)).toBe(0)
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(TokenRefresher.layerTest([rotated("access-2", "refresh-2")]))))

  it.scoped("a poll whose refresh waits for its turn waits no longer than the refresh timeout; the refresh stays in line", () =>
    Effect.gen(function*() {
      const { asked, auth, first, go, polls, waiting } = yield* twoKeysOneTurn
      // The default refresh timeout (30 s) passes: the waiting key's poll answers with what it holds.
      yield* TestClock.adjust("30 seconds")
      expect(yield* Fiber.join(polls[first === "alice" ? 1 : 0]!)).toBe(`${waiting}-access-1`)
      // Its refresh was not dropped: it runs once the turn is free, and a later poll gets its result.
      yield* Deferred.succeed(go, undefined)
      expect(yield* Fiber.join(polls[first === "alice" ? 0 : 1]!)).toBe("access-2")
      expect(yield* Queue.take(asked)).toBe(waiting)
      expect(tokenOf(yield* auth.getAuthStatus(waiting, { includeToken: true, refreshToken: true }))).toBe("access-3")
      expect(yield* callCount).toBe(2)
    }).pipe(
      Effect.provide(TokenRefresher.layerTest([rotated("access-2", "refresh-2"), rotated("access-3", "refresh-3")]))
    ))

  it.effect("a number of refreshes at once that cannot be used is refused, saying what is allowed", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(KeyedAuthManager.KeyedAuthManager.make({ refreshesAtOnce: 0 })))
      expect(String(exit)).toContain("refreshesAtOnce 0 cannot be used: it must be a whole number from 1")
    }).pipe(Effect.provide(Layer.mergeAll(
      CredentialStore.CredentialStore.layerMemory({}),
      RefreshCoordinator.RefreshCoordinator.layerMemory,
      TokenRefresher.layerTest([])
    ))))

  it.scoped("keys changed elsewhere are read together, a few reads for many keys, and each is adopted", () =>
    Effect.gen(function*() {
      const keys = Array.from({ length: 60 }, (_, i) => `user-${i}`)
      const backend = yield* CredentialStore.makeMemoryBackend(
        Object.fromEntries(keys.map((key) => [key, chatgptJson({ accessToken: `${key}-access-1`, refreshToken: "r" })]))
      )
      const reads: Array<number> = []
      const store = CredentialStore.make({
        ...backend,
        readMany: (many) =>
          Effect.zipRight(Effect.sync(() => reads.push(many.length)), Effect.forEach(many, (key) => backend.read(key)))
      })
      const auth = yield* keyedOver(store)
      const served = (key: string) =>
        Effect.map(auth.getAuthStatus(key, { includeToken: true, noRefresh: true }), tokenOf)
      expect(yield* Effect.forEach(keys, served)).toEqual(keys.map((key) => `${key}-access-1`))
      // Another replica writes every key at once.
      const other = CredentialStore.make(backend)
      yield* Effect.forEach(
        keys,
        (key) =>
          other.set(key, Option.some(decode(chatgptJson({ accessToken: `${key}-access-2`, refreshToken: "r2" }))))
      )
      const all = Effect.zipLeft(Effect.forEach(keys, served), Effect.yieldNow())
      yield* Effect.repeat(all, { until: (tokens) => tokens.every((token, i) => token === `${keys[i]}-access-2`) })
      // Every key was read, in far fewer reads than keys.
      expect(reads.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(60)
      expect(reads.length).toBeLessThan(20)
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(TokenRefresher.layerTest([]))))

  it.scoped("a replica hears its own write while its flight still runs: read with the others, not again alone", () =>
    Effect.gen(function*() {
      const backend = yield* CredentialStore.makeMemoryBackend({
        alice: chatgptJson({ accessToken: "alice-access-1", refreshToken: "alice-refresh" })
      })
      const reads = { alone: 0, together: 0 }
      const store = CredentialStore.make({
        ...backend,
        read: (key) => Effect.zipRight(Effect.sync(() => reads.alone++), backend.read(key)),
        readMany: (keys) => Effect.zipRight(Effect.sync(() => reads.together++), Effect.forEach(keys, backend.read))
      })
      const coordinator = RefreshCoordinator.make(yield* RefreshCoordinator.makeMemoryBackend)
      // The flight holds its lock after its work (its tokens saved) until `go`: it still runs.
      const go = yield* Deferred.make<void>()
      const held: RefreshCoordinator.RefreshCoordinatorShape = {
        ...coordinator,
        withRefreshLock: (key) => (effect) =>
          coordinator.withRefreshLock(key)(Effect.zipLeft(effect, Deferred.await(go)))
      }
      const auth = yield* keyedOver(store, held)
      const poll = yield* Effect.fork(
        Effect.map(auth.getAuthStatus("alice", { includeToken: true, refreshToken: true }), tokenOf)
      )
      // The write is heard and read (with the other changed keys, or alone), while the flight holds
      // its lock; first read alone when the key was first asked for, then by the flight.
      while (reads.together === 0 && reads.alone < 3) yield* Effect.yieldNow()
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
      yield* Deferred.succeed(go, undefined)
      expect(yield* Fiber.join(poll)).toBe("alice-access-2")
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
      // Never read again alone for its own write.
      expect(reads).toEqual({ alone: 2, together: 1 })
    }).pipe(Effect.provide(TokenRefresher.layerTest([rotated("alice-access-2", "alice-refresh-2")]))))

  it.effect("a flight that waited for its turn carries its own key in its logs, not the key of the flight that started it", () =>
    Effect.gen(function*() {
      const lines: Array<{ readonly message: string; readonly credential: unknown }> = []
      const collector = Logger.make(({ annotations, message }) => {
        lines.push({
          message: String(message),
          credential: HashMap.get(annotations, "credential").pipe(Option.getOrUndefined)
        })
      })
      const statuses = yield* Effect.gen(function*() {
        const auth = yield* KeyedAuthManager.KeyedAuthManager
        return yield* Effect.forEach(
          ["alice", "bob"],
          (key) => auth.getAuthStatus(key, { includeToken: true, refreshToken: true }),
          { concurrency: "unbounded" }
        )
      }).pipe(
        Effect.provide(
          Layer.scoped(
            KeyedAuthManager.KeyedAuthManager,
            KeyedAuthManager.KeyedAuthManager.make({ settings: {}, refreshesAtOnce: 1 })
          ).pipe(Layer.provide(Layer.mergeAll(
            CredentialStore.CredentialStore.layerMemory({
              alice: chatgptJson({ refreshToken: "alice-refresh" }),
              bob: chatgptJson({ refreshToken: "bob-refresh" })
            }),
            RefreshCoordinator.RefreshCoordinator.layerMemory
          )))
        ),
        Effect.provide(Logger.replace(Logger.defaultLogger, collector))
      )
      // The second flight (started when the first ended) got the dead token: its key is the one with no token.
      const deadKey = statuses[0]!.authToken === null ? "alice" : "bob"
      expect(statuses.filter((status) => status.authToken === null).length).toBe(1)
      const dead = lines.filter((line) => line.message.includes("Refresh token is dead"))
      expect(dead.map((line) => line.credential)).toEqual([deadKey])
    }).pipe(Effect.provide(TokenRefresher.layerTest([rotated("access-2", "refresh-2"), dead("reused")]))))
})
