import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, Ref, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStoreError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { type ScriptStep, TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import {
  callCount,
  callers,
  chatgptJson,
  dead,
  down,
  gated,
  idToken,
  manager,
  managerOver,
  poll,
  rotated,
  secrets,
  sent,
  statusOf,
  storedRefreshToken,
  tokenOf,
  writeBehind
} from "./AuthManager.support.js"

describe("getAuthStatus answers every state", () => {
  it.effect("logged out, API key: no request", () =>
    Effect.gen(function*() {
      expect(tokenOf(yield* poll())).toBeNull()
      expect((yield* poll()).authMethod).toBeNull()
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager(undefined, [dead()]))))

  it.effect("API key: the key, no request", () =>
    Effect.gen(function*() {
      const status = yield* poll()
      expect({ method: status.authMethod, token: tokenOf(status) }).toEqual({ method: "apikey", token: secrets.apiKey })
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager({ OPENAI_API_KEY: secrets.apiKey }, [dead()]))))

  it.effect("ChatGPT, healthy: the refreshed token, and the rotated refresh token saved", () =>
    Effect.gen(function*() {
      expect(tokenOf(yield* poll())).toBe("new-access")
      expect(yield* storedRefreshToken).toBe("new-refresh")
      expect(yield* sent).toEqual([secrets.refresh])
    }).pipe(Effect.provide(manager(chatgptJson(), [rotated("new-access", "new-refresh")]))))

  it.effect("ChatGPT, cooling down: the cached token is still served", () =>
    Effect.gen(function*() {
      expect(tokenOf(yield* poll())).toBe(secrets.access)
      expect((yield* statusOf).status).toBe("cooling-down")
    }).pipe(Effect.provide(manager(chatgptJson(), [down()]))))

  it.effect("ChatGPT, poisoned: the method stays, the token is withheld", () =>
    Effect.gen(function*() {
      const status = yield* poll()
      expect({ method: status.authMethod, token: tokenOf(status) }).toEqual({ method: "chatgpt", token: null })
      expect(yield* statusOf).toMatchObject({ status: "poisoned", reason: "reused" })
    }).pipe(Effect.provide(manager(chatgptJson(), [dead()]))))
})

describe("starting", () => {
  it.effect("on credentials that cannot be read: it starts logged out, leaves them alone, and a sign-in replaces them", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      expect(yield* statusOf).toMatchObject({ method: null, status: "healthy" })
      expect((yield* poll()).authMethod).toBeNull()
      expect(yield* Effect.flip(Effect.flatMap(AuthStore, (store) => store.load))).toMatchObject({
        _tag: "AuthStoreError"
      })
      yield* auth.loginWithApiKey(Redacted.make(secrets.apiKey))
      expect(tokenOf(yield* poll())).toBe(secrets.apiKey)
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager("{ this is not json", [dead()]))))
})

describe("storms: many callers while the request is out make one request", () => {
  const deadGate = Deferred.makeUnsafe<void>()
  it.effect("1,000 concurrent polls of a dead refresh token: 1 request, no token; 1,000 more an hour later: still 1", () =>
    Effect.gen(function*() {
      const first = yield* callers(1000, poll())
      yield* Deferred.succeed(deadGate, undefined)
      const answers = yield* Fiber.joinAll(first)
      expect(answers.every((s) => s.authMethod === "chatgpt" && s.authToken === null)).toBe(true)
      yield* TestClock.adjust("1 hour")
      const second = yield* Fiber.joinAll(yield* callers(1000, poll()))
      expect(second.every((s) => s.authMethod === "chatgpt" && s.authToken === null)).toBe(true)
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(manager(chatgptJson(), [gated(deadGate, dead())]))))

  // A memory store that counts the refreshes that took its lock: one flight takes it once.
  class Locks extends Context.Service<Locks, Ref.Ref<number>>()("test/Locks") {}
  const countingLocks = (json: object) =>
    Layer.effectContext(Effect.gen(function*() {
      const locks = yield* Ref.make(0)
      const store = yield* AuthStore.makeMemory(json)
      const withRefreshLock: typeof store.withRefreshLock = (effect) =>
        Effect.andThen(Ref.update(locks, (n) => n + 1), store.withRefreshLock(effect))
      return Context.make(AuthStore, { ...store, withRefreshLock }).pipe(Context.add(Locks, locks))
    }))

  const healthyGate = Deferred.makeUnsafe<void>()
  it.effect("100 concurrent polls with refreshToken: true on healthy credentials: 1 flight, 1 request, every one served its token", () =>
    Effect.gen(function*() {
      const polls = yield* callers(100, poll())
      yield* Deferred.succeed(healthyGate, undefined)
      const statuses = yield* Fiber.joinAll(polls)
      expect(new Set(statuses.map(tokenOf))).toEqual(new Set(["new-access"]))
      expect(yield* callCount).toBe(1)
      // The callers joined the flight in this process; none queued on the store's lock behind it.
      expect(yield* Ref.get(yield* Locks)).toBe(1)
    }).pipe(
      Effect.provide(
        managerOver(countingLocks(chatgptJson()), [gated(healthyGate, rotated("new-access", "new-refresh"))])
      )
    ))

  it.effect("refresh fails fast with the recorded PermanentRefreshError, the same one each time", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      const first = yield* Effect.flip(auth.refresh)
      const second = yield* Effect.flip(auth.refresh)
      expect(first).toMatchObject({ _tag: "PermanentRefreshError", reason: "expired" })
      expect(second).toBe(first)
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(manager(chatgptJson(), [dead("expired")]))))
})

describe("another process refreshes first", () => {
  it.effect(
    "a refresh waiting for the lock stops once the newer credentials are adopted: answered at once, no request",
    () =>
      Effect.gen(function*() {
        const store = yield* AuthStore
        const auth = yield* AuthManager
        const held = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // Another process holds the refresh lock (it is refreshing): this manager's flight waits for it.
        const holder = yield* Effect.forkChild(
          store.withRefreshLock(Effect.andThen(Deferred.succeed(held, undefined), Deferred.await(release)))
        )
        yield* Deferred.await(held)
        const polling = yield* Effect.forkChild(poll(), { startImmediately: true })
        // Its result reaches storage, and this manager reads it.
        yield* writeBehind(chatgptJson({ accessToken: "other-access", refreshToken: "other-refresh" }))
        yield* auth.reload
        // Answered while the other process still holds the lock (a flight that kept waiting would
        // answer only once it had taken the lock and read storage).
        expect(tokenOf(yield* Fiber.join(polling))).toBe("other-access")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        expect(yield* callCount).toBe(0)
        expect(yield* storedRefreshToken).toBe("other-refresh")
      }).pipe(Effect.provide(manager(chatgptJson(), [rotated("mine-access", "mine-refresh")]))),
    {
      // A flight that kept waiting would wait for ever (the lock is let go only after the answer): fail soon.
      timeout: 10_000
    }
  )
})

describe("polls refresh a stale token without being asked, and only then", () => {
  it.effect("a token 1 minute from its expiry: refreshed by the first of 50 polls, once", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      for (let i = 0; i < 50; i++) yield* auth.getAuthStatus({ includeToken: true })
      expect(tokenOf(yield* auth.getAuthStatus({ includeToken: true }))).toBe("new-access")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(manager(chatgptJson({ expiresIn: 60_000 }), [rotated("new-access", "new-refresh")]))))

  it.effect("a token an hour from its expiry: not refreshed until 5 minutes before it, to the millisecond", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      yield* auth.getAuthStatus({ includeToken: true })
      yield* TestClock.adjust(Duration.millis(3_600_000 - 300_000 - 1))
      yield* auth.getAuthStatus({ includeToken: true })
      expect(yield* callCount).toBe(0)
      yield* TestClock.adjust("1 millis")
      yield* auth.getAuthStatus({ includeToken: true })
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(manager(chatgptJson({ expiresIn: 3_600_000 }), [rotated("new-access", "new-refresh")]))))

  it.effect("noRefresh: a stale token is answered as it is, with no request", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      const status = yield* auth.getAuthStatus({ includeToken: true, noRefresh: true })
      expect(tokenOf(status)).not.toBe("new-access")
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager(chatgptJson({ expiresIn: 60_000 }), [rotated("new-access", "new-refresh")]))))

  it.effect("a provider that needs no OpenAI auth: no method, no token, no request", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      expect(yield* auth.getAuthStatus({ includeToken: true, refreshToken: true })).toEqual({
        authMethod: null,
        authToken: null,
        requiresOpenaiAuth: false
      })
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager(chatgptJson(), [dead()], { requiresOpenaiAuth: false }))))
})

describe("the poison clears when the credentials change, and only then", () => {
  const poisoned = Effect.gen(function*() {
    yield* poll()
    expect((yield* statusOf).status).toBe("poisoned")
  })
  const layer = () => manager(chatgptJson(), [dead(), rotated("fresh-access", "fresh-refresh")])

  it.effect("loginWithTokens: the new token is served, with no request", () =>
    Effect.gen(function*() {
      yield* poisoned
      const auth = yield* AuthManager
      yield* auth.loginWithTokens({
        idToken: Redacted.make(idToken),
        accessToken: Redacted.make("login-access"),
        refreshToken: Redacted.make("login-refresh"),
        accountId: "acct_123"
      })
      expect((yield* statusOf).status).toBe("healthy")
      expect(tokenOf(yield* poll())).toBe("login-access")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(layer())))

  it.effect("reload of a different document (another process signed in)", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* writeBehind(chatgptJson({ refreshToken: "other-refresh", accessToken: "other-access", refreshedAgo: 0 }))
      yield* Effect.flatMap(AuthManager, (auth) => auth.reload)
      expect((yield* statusOf).status).toBe("healthy")
      expect(tokenOf(yield* poll())).toBe("other-access")
    }).pipe(Effect.provide(layer())))

  it.effect("not on reload of the same document", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* writeBehind(chatgptJson())
      yield* Effect.flatMap(AuthManager, (auth) => auth.reload)
      expect((yield* statusOf).status).toBe("poisoned")
      expect(tokenOf(yield* poll())).toBeNull()
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(layer())))
})

describe("transient failures back off (virtual time)", () => {
  it.effect("no request before the cooldown ends; the next one after it succeeds and is served", () =>
    Effect.gen(function*() {
      yield* poll()
      const { retryAt } = yield* statusOf
      expect(retryAt).not.toBeNull()
      // 1 s for the first failures, spread over a tenth above it by a draw.
      expect(retryAt!).toBeGreaterThanOrEqual(1000)
      expect(retryAt!).toBeLessThanOrEqual(1100)
      yield* TestClock.adjust(Duration.millis(retryAt! - 1))
      expect(tokenOf(yield* poll())).toBe(secrets.access)
      expect(yield* callCount).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(tokenOf(yield* poll())).toBe("new-access")
      expect(yield* callCount).toBe(2)
      expect((yield* statusOf).status).toBe("healthy")
    }).pipe(Effect.provide(manager(chatgptJson(), [down(), rotated("new-access", "new-refresh")]))))
})

describe("a refresh result is never thrown away", () => {
  // A memory store whose writes fail while `failing` holds (a lock held by another program).
  class Failing extends Context.Service<Failing, Ref.Ref<boolean>>()("test/Failing") {}
  const flakyStore = (json: object) =>
    Layer.effectContext(Effect.gen(function*() {
      const failing = yield* Ref.make(true)
      const store = yield* AuthStore.makeMemory(json)
      const refused = new AuthStoreError({
        path: store.location,
        operation: "lock",
        problem: "held by another program"
      })
      const compareAndSet: typeof store.compareAndSet = (expected, next) =>
        Effect.flatMap(Ref.get(failing), (fails) => fails ? Effect.fail(refused) : store.compareAndSet(expected, next))
      return Context.make(AuthStore, { ...store, compareAndSet }).pipe(Context.add(Failing, failing))
    }))

  it.effect("rotated tokens that cannot be saved are served, the next refresh sends their refresh token, and they are saved once storage takes them", () =>
    Effect.gen(function*() {
      expect(tokenOf(yield* poll())).toBe("new-access")
      // Not saved: storage still holds the replaced refresh token, the manager does not.
      expect(yield* storedRefreshToken).toBe(secrets.refresh)
      yield* TestClock.adjust("1 hour")
      expect(tokenOf(yield* poll())).toBe("newer-access")
      expect(yield* sent).toEqual([secrets.refresh, "new-refresh"])
      yield* Ref.set(yield* Failing, false)
      yield* TestClock.adjust("10 minutes")
      expect(yield* storedRefreshToken).toBe("newer-refresh")
      expect(yield* sent).toEqual([secrets.refresh, "new-refresh"])
    }).pipe(
      Effect.provide(
        managerOver(flakyStore(chatgptJson()), [
          rotated("new-access", "new-refresh"),
          rotated("newer-access", "newer-refresh")
        ])
      )
    ))

  it.effect("a refresh asked of a manager already stopped is answered, not left waiting", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const auth = yield* AuthManager.make().pipe(
        Scope.provide(scope),
        Effect.provide(Layer.merge(AuthStore.layerMemory(chatgptJson()), TokenRefresher.layerTest([rotated("a", "r")])))
      )
      yield* Scope.close(scope, Exit.void)
      const failure = yield* Effect.flip(auth.refresh)
      expect(failure).toMatchObject({ _tag: "TransientRefreshError", kind: "timeout" })
      expect(failure.message).toMatch(/stopped/)
    }))

  it.effect(
    "a manager stopped just after a refresh was asked (its flight not started yet): the caller is answered",
    () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const auth = yield* AuthManager.make().pipe(
          Scope.provide(scope),
          Effect.provide(
            Layer.merge(AuthStore.layerMemory(chatgptJson()), TokenRefresher.layerTest([rotated("a", "r")]))
          )
        )
        // The caller claims the flight and forks it, then waits; the scope closes at once after.
        const caller = yield* Effect.forkChild(Effect.exit(auth.refresh), { startImmediately: true })
        yield* Scope.close(scope, Exit.void)
        // Answered either way: refreshed (the flight ran to its end first), or told the manager stopped.
        const exit = yield* Fiber.join(caller)
        if (Exit.isFailure(exit)) expect(String(Cause.squash(exit.cause))).toMatch(/stopped/)
      }),
    { timeout: 10_000 }
  )

  /** A manager in a scope of its own whose one token request answers only once `answer` is opened. */
  const slowlyAnswered = Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const answer = yield* Deferred.make<void>()
    const slow: ScriptStep = Effect.andThen(
      Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(answer)),
      rotated("late-access", "late-refresh")
    )
    const store = yield* AuthStore.makeMemory(chatgptJson())
    const scope = yield* Scope.make()
    const auth = yield* AuthManager.make().pipe(
      Scope.provide(scope),
      Effect.provide(Layer.merge(Layer.succeed(AuthStore, store), TokenRefresher.layerTest([slow])))
    )
    const storedRefreshToken = Effect.map(
      store.load,
      (saved) => Redacted.value(Option.getOrThrow(saved.document).tokens!.refresh_token)
    )
    return { started, answer, store, scope, auth, storedRefreshToken }
  })

  it.effect("closing the manager waits for the refresh in flight, and its rotated token is saved", () =>
    Effect.gen(function*() {
      const { answer, auth, scope, started, storedRefreshToken } = yield* slowlyAnswered
      const polling = yield* Effect.forkChild(auth.getAuthStatus({ refreshToken: true }))
      yield* Deferred.await(started)
      // Closing starts (and waits) before the answer comes.
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      yield* Deferred.succeed(answer, undefined)
      yield* Fiber.join(closing)
      yield* Fiber.await(polling)
      expect(yield* storedRefreshToken).toBe("late-refresh")
    }))

  it.effect(
    "closing the manager waits for the refresh in flight even when a newer flight has started since",
    () =>
      Effect.gen(function*() {
        const { answer, auth, scope, started, store, storedRefreshToken } = yield* slowlyAnswered
        yield* Effect.forkChild(auth.refresh)
        yield* Deferred.await(started)
        // Storage rewritten with the same tokens (another field changed) and adopted; then a refresh asked
        // of the new snapshot: a second flight, waiting for the lock the first one holds.
        yield* Effect.flatMap(
          Effect.fromResult(AuthDocument.decode({ ...chatgptJson(), written_by: "another program" })),
          store.save
        )
        yield* auth.reload
        yield* Effect.forkChild(auth.refresh, { startImmediately: true })
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
        yield* Effect.yieldNow
        expect(closing.pollUnsafe()).toBeUndefined()
        yield* Deferred.succeed(answer, undefined)
        yield* Fiber.join(closing)
        expect(yield* storedRefreshToken).toBe("late-refresh")
      }),
    { timeout: 10_000 }
  )
})
