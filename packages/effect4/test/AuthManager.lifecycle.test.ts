// The manager over time: managers sharing one store, a token endpoint that hangs or answers late,
// a refresh kept beside the credentials across a restart, a refresher with a bug, the change feed.
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Option, Ref, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStoreError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { makeTest, type ScriptStep, TokenRefresherTest } from "../src/oauth/TokenRefresher.js"
import { AuthStore, type AuthStoreShape } from "../src/stores/AuthStore.js"
import {
  callCount,
  callers,
  chatgptJson,
  dead,
  down,
  manager,
  poll,
  refreshTokenOf,
  rotated,
  secrets,
  statusOf,
  storedRefreshToken,
  tokenOf,
  writeBehind
} from "./AuthManager.support.js"

/** A manager over `store` and its own scripted refresher, held by `scope`; with the refresh tokens it sent. */
const managerIn = Effect.fnUntraced(function*(
  scope: Scope.Scope,
  store: AuthStoreShape,
  script: ReadonlyArray<ScriptStep>
) {
  const refresher = yield* makeTest(script)
  const auth = yield* AuthManager.make().pipe(
    Scope.provide(scope),
    Effect.provideService(AuthStore, store),
    Effect.provideContext(refresher)
  )
  const sent = Context.get(refresher, TokenRefresherTest).calls
  return { auth, sent: Effect.map(sent, (calls) => calls.length) }
})

describe("managers sharing one store act as one", () => {
  it.effect("the second learns the poison from the shared state under the lock, with no request", () =>
    Effect.gen(function*() {
      const store = yield* AuthStore.makeMemory(chatgptJson())
      const scope = yield* Effect.scope
      const one = yield* managerIn(scope, store, [dead()])
      const other = yield* managerIn(scope, store, [dead()])
      expect(tokenOf(yield* one.auth.getAuthStatus({ includeToken: true, refreshToken: true }))).toBeNull()
      expect(tokenOf(yield* other.auth.getAuthStatus({ includeToken: true, refreshToken: true }))).toBeNull()
      expect(yield* other.auth.state).toMatchObject({ status: "poisoned", reason: "reused" })
      expect([yield* one.sent, yield* other.sent]).toEqual([1, 0])
    }))

  it.effect("one started after the poison was shared withholds the token from its first poll, without refreshing", () =>
    Effect.gen(function*() {
      const store = yield* AuthStore.makeMemory(chatgptJson())
      const scope = yield* Effect.scope
      const one = yield* managerIn(scope, store, [dead()])
      yield* one.auth.getAuthStatus({ refreshToken: true })
      const later = yield* managerIn(scope, store, [dead()])
      expect(yield* later.auth.state).toMatchObject({ status: "poisoned" })
      expect(tokenOf(yield* later.auth.getAuthStatus({ includeToken: true }))).toBeNull()
      expect(yield* later.sent).toBe(0)
    }))

  it.effect("they share one backoff: the other waits out the cooldown the first one recorded", () =>
    Effect.gen(function*() {
      const store = yield* AuthStore.makeMemory(chatgptJson())
      const scope = yield* Effect.scope
      const one = yield* managerIn(scope, store, [down()])
      const other = yield* managerIn(scope, store, [rotated("other-access", "other-refresh")])
      yield* one.auth.getAuthStatus({ refreshToken: true })
      expect(tokenOf(yield* other.auth.getAuthStatus({ includeToken: true, refreshToken: true }))).toBe(secrets.access)
      expect(yield* other.auth.state).toMatchObject({ status: "cooling-down" })
      expect(yield* other.sent).toBe(0)
      yield* TestClock.adjust("2 seconds")
      expect(tokenOf(yield* other.auth.getAuthStatus({ includeToken: true, refreshToken: true }))).toBe("other-access")
      expect(yield* other.sent).toBe(1)
    }))
})

describe("a token endpoint that hangs or answers late (virtual time)", () => {
  // Call n of the endpoint completes `asked[n]` once its request is out, then answers with `then`.
  const asked = [Deferred.makeUnsafe<void>(), Deferred.makeUnsafe<void>()]
  const hanging = (call: number): ScriptStep => Effect.andThen(Deferred.succeed(asked[call]!, undefined), Effect.never)

  it.effect("one that hangs: callers are answered at the refresh timeout, the request is abandoned at the answer limit, and a later poll asks again", () =>
    Effect.gen(function*() {
      const [waiting] = yield* callers(1, poll())
      yield* Deferred.await(asked[0]!)
      yield* TestClock.adjust("30 seconds")
      expect(tokenOf(yield* Fiber.join(waiting!))).toBe(secrets.access)
      expect(yield* statusOf).toMatchObject({ status: "cooling-down" })
      // While the request is open, no other is sent for the same refresh token.
      yield* TestClock.adjust("1 minute")
      expect(tokenOf(yield* poll())).toBe(secrets.access)
      expect(yield* callCount).toBe(1)
      yield* TestClock.adjust("5 minutes")
      yield* callers(1, poll())
      yield* Deferred.await(asked[1]!)
      expect(yield* callCount).toBe(2)
      // Stopping waits for a request that is out (its answer may rotate the token), up to the answer limit.
      yield* TestClock.adjust("5 minutes")
    }).pipe(Effect.provide(manager(chatgptJson(), hanging))))

  const lateAsked = Deferred.makeUnsafe<void>()
  it.effect("an answer after the callers' timeout is adopted and saved, and the refresh token is sent once", () =>
    Effect.gen(function*() {
      const [waiting] = yield* callers(1, poll())
      yield* Deferred.await(lateAsked)
      yield* TestClock.adjust("30 seconds")
      expect(tokenOf(yield* Fiber.join(waiting!))).toBe(secrets.access)
      yield* TestClock.adjust("10 seconds")
      expect(tokenOf(yield* poll())).toBe(secrets.access)
      yield* TestClock.adjust("20 seconds")
      expect(yield* storedRefreshToken).toBe("late-refresh")
      expect(tokenOf(yield* poll())).toBe("late-access")
      expect(yield* callCount).toBe(1)
    }).pipe(
      Effect.provide(
        manager(chatgptJson(), [
          Deferred.succeed(lateAsked, undefined).pipe(
            Effect.andThen(Effect.sleep("1 minute")),
            Effect.andThen(rotated("late-access", "late-refresh"))
          )
        ])
      )
    ))
})

describe("stopping", () => {
  it.effect("the wait for a request that never answers is bounded (shutdownWait), and its callers are answered", () =>
    Effect.gen(function*() {
      const asked = yield* Deferred.make<void>()
      const store = yield* AuthStore.makeMemory(chatgptJson())
      const scope = yield* Scope.make()
      const manager = yield* managerIn(scope, store, [Effect.andThen(Deferred.succeed(asked, undefined), Effect.never)])
      const [waiting] = yield* callers(1, manager.auth.refresh.pipe(Effect.flip))
      yield* Deferred.await(asked)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      // Callers stop waiting at the refresh timeout; stopping waits for the answer, up to its own bound.
      yield* TestClock.adjust("30 seconds")
      expect(yield* Fiber.join(waiting!)).toMatchObject({ _tag: "TransientRefreshError", kind: "timeout" })
      expect(closing.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(closing)
      expect(refreshTokenOf(yield* store.load)).toBe(secrets.refresh)
    }))
})

describe("a refresh kept beside the credentials", () => {
  // A memory store with a place for a pending refresh, whose writes fail while `failing` holds.
  const keepingStore = Effect.fnUntraced(function*(json: object) {
    const memory = yield* AuthStore.makeMemory(json)
    const kept = yield* Ref.make(Option.none<AuthDocument.PendingRefresh>())
    const failing = yield* Ref.make(true)
    const refused = new AuthStoreError({ path: memory.location, operation: "lock", problem: "held by another program" })
    const store: AuthStoreShape = {
      ...memory,
      compareAndSet: (expected, next) =>
        Effect.flatMap(
          Ref.get(failing),
          (fails) => fails ? Effect.fail(refused) : memory.compareAndSet(expected, next)
        ),
      keepPending: (pending) => Ref.set(kept, pending),
      loadPending: Ref.get(kept),
      pendingLocation: "memory:pending"
    }
    return { store, kept, failing }
  })

  it.effect("stopping with rotated tokens unsaved keeps them; the next start adopts and saves them, with no request", () =>
    Effect.gen(function*() {
      const { failing, kept, store } = yield* keepingStore(chatgptJson())
      const first = yield* Scope.make()
      const one = yield* managerIn(first, store, [rotated("kept-access", "kept-refresh")])
      expect(tokenOf(yield* one.auth.getAuthStatus({ includeToken: true, refreshToken: true }))).toBe("kept-access")
      expect(Option.isSome(yield* Ref.get(kept))).toBe(true)
      yield* Scope.close(first, Exit.void)
      expect(refreshTokenOf(yield* store.load)).toBe(secrets.refresh)

      yield* Ref.set(failing, false)
      const next = yield* managerIn(yield* Effect.scope, store, [dead()])
      expect(tokenOf(yield* next.auth.getAuthStatus({ includeToken: true }))).toBe("kept-access")
      yield* TestClock.adjust("1 millis")
      expect(refreshTokenOf(yield* store.load)).toBe("kept-refresh")
      expect(yield* Ref.get(kept)).toEqual(Option.none())
      expect(yield* next.sent).toBe(0)
    }))

  it.effect("a kept refresh of credentials that changed since is removed, not applied", () =>
    Effect.gen(function*() {
      const { failing, kept, store } = yield* keepingStore(chatgptJson())
      const first = yield* Scope.make()
      const one = yield* managerIn(first, store, [rotated("kept-access", "kept-refresh")])
      yield* one.auth.getAuthStatus({ refreshToken: true })
      yield* Scope.close(first, Exit.void)
      yield* Ref.set(failing, false)
      // Someone signed in again meanwhile: the kept refresh was of the credentials replaced.
      yield* store.save(yield* Effect.fromResult(AuthDocument.decode(chatgptJson({ refreshToken: "signed-in" }))))
      const next = yield* managerIn(yield* Effect.scope, store, [dead()])
      expect(tokenOf(yield* next.auth.getAuthStatus({ includeToken: true }))).toBe(secrets.access)
      expect(refreshTokenOf(yield* store.load)).toBe("signed-in")
      expect(yield* Ref.get(kept)).toEqual(Option.none())
    }))
})

describe("the watch of storage", () => {
  it.effect("credentials another process writes are adopted with no reload asked, once storage is quiet for the debounce", () =>
    Effect.gen(function*() {
      yield* poll()
      expect((yield* statusOf).status).toBe("poisoned")
      yield* writeBehind(chatgptJson({ refreshToken: "other-refresh", accessToken: "other-access", refreshedAgo: 0 }))
      yield* TestClock.adjust("99 millis")
      expect((yield* statusOf).status).toBe("poisoned")
      yield* TestClock.adjust("1 millis")
      expect((yield* statusOf).status).toBe("healthy")
      expect(tokenOf(yield* poll())).toBe("other-access")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(manager(chatgptJson(), [dead()]))))
})

describe("getAuthStatus never fails because of a refresh", () => {
  it.effect("a refresher that dies: the poll is answered, the cached token still served", () =>
    Effect.gen(function*() {
      expect(tokenOf(yield* poll())).toBe(secrets.access)
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(manager(chatgptJson(), [Effect.die(new Error("a bug in the refresher"))]))))
})

describe("changes", () => {
  it.effect("the current state, then each change of snapshot or health", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      const seen = yield* Effect.forkChild(
        auth.changes.pipe(Stream.take(2), Stream.runCollect),
        { startImmediately: true }
      )
      yield* poll()
      const states = yield* Fiber.join(seen)
      expect(Array.from(states).map((state) => state.status)).toEqual(["healthy", "poisoned"])
    }).pipe(Effect.provide(manager(chatgptJson(), [dead()]))))
})
