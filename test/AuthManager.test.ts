import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Random,
  Redacted,
  Scope,
  Stream,
  TestClock
} from "effect"
import { defaultSettings } from "../src/config/Settings.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { TransientRefreshError } from "../src/errors/Errors.js"
import { AuthManager, make as makeManager } from "../src/manager/AuthManager.js"
import * as RefreshState from "../src/manager/RefreshState.js"
import { TokenRefresher, TokenRefresherTest } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { httpRefresher } from "./support/endpoint.js"
import { apiKeyJson, chatgptJson, secrets, tokensOf } from "./support/fixtures.js"
import {
  callCount,
  dead,
  down,
  managerWith,
  poll,
  rotated,
  scripted,
  statusOf,
  tokenOf,
  writeBehind
} from "./support/manager.js"

const auth = AuthManager
const expiredJwt = TokenEndpoint.unsignedJwt({ exp: 0 })

describe("getAuthStatus: every state it answers for, with and without includeToken", () => {
  for (const includeToken of [false, true]) {
    const token = (value: string) => (includeToken ? value : null)

    it.effect(`provider needs no OpenAI auth (includeToken: ${includeToken})`, () =>
      Effect.gen(function*() {
        const status = yield* poll(includeToken)
        expect({ ...status, authToken: tokenOf(status) }).toEqual({
          authMethod: null,
          authToken: null,
          requiresOpenaiAuth: false
        })
        expect(yield* callCount).toBe(0)
      }).pipe(Effect.provide(scripted(chatgptJson(), [dead()], { requiresOpenaiAuth: false }))))

    it.effect(`logged out (includeToken: ${includeToken})`, () =>
      Effect.gen(function*() {
        const status = yield* poll(includeToken)
        expect({ ...status, authToken: tokenOf(status) }).toEqual({
          authMethod: null,
          authToken: null,
          requiresOpenaiAuth: true
        })
        expect(yield* callCount).toBe(0)
      }).pipe(Effect.provide(scripted(undefined, [dead()]))))

    it.effect(`API key (includeToken: ${includeToken})`, () =>
      Effect.gen(function*() {
        const status = yield* poll(includeToken)
        expect({ ...status, authToken: tokenOf(status) }).toEqual({
          authMethod: "apikey",
          authToken: token(secrets.apiKey),
          requiresOpenaiAuth: true
        })
        expect(yield* callCount).toBe(0)
      }).pipe(Effect.provide(scripted(apiKeyJson(), [dead()]))))

    it.effect(`ChatGPT, healthy (includeToken: ${includeToken})`, () =>
      Effect.gen(function*() {
        const status = yield* poll(includeToken)
        expect({ ...status, authToken: tokenOf(status) }).toEqual({
          authMethod: "chatgpt",
          authToken: token("new-access"),
          requiresOpenaiAuth: true
        })
        expect(yield* callCount).toBe(1)
      }).pipe(Effect.provide(scripted(chatgptJson(), [rotated("new-access", "new-refresh")]))))

    it.effect(`ChatGPT, cooling down: the cached token is still served (includeToken: ${includeToken})`, () =>
      Effect.gen(function*() {
        const status = yield* poll(includeToken)
        expect((yield* statusOf).status).toBe("cooling-down")
        expect({ ...status, authToken: tokenOf(status) }).toEqual({
          authMethod: "chatgpt",
          authToken: token(secrets.access),
          requiresOpenaiAuth: true
        })
      }).pipe(Effect.provide(scripted(chatgptJson(), [down()]))))

    it.effect(`ChatGPT, poisoned: the method stays, the token is withheld (includeToken: ${includeToken})`, () =>
      Effect.gen(function*() {
        const status = yield* poll(includeToken)
        expect((yield* statusOf).status).toBe("poisoned")
        expect({ ...status, authToken: tokenOf(status) }).toEqual({
          authMethod: "chatgpt",
          authToken: null,
          requiresOpenaiAuth: true
        })
      }).pipe(Effect.provide(scripted(chatgptJson(), [dead()]))))
  }
})

describe("a dead refresh token makes one request, however many polls", () => {
  it.scoped("1,000 concurrent polls against a real endpoint: 1 request, every answer chatgpt with no token; 1,000 more: still 1", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(TokenEndpoint.codedError(401, "refresh_token_reused"))
      const pollMany = Effect.all(Array.from({ length: 1000 }, () => poll()), { concurrency: "unbounded" })
      const layer = managerWith(chatgptJson(), httpRefresher(endpoint.url))
      yield* Effect.gen(function*() {
        const first = yield* pollMany
        expect(yield* endpoint.count).toBe(1)
        expect(first.every((s) => s.authMethod === "chatgpt" && s.authToken === null)).toBe(true)
        yield* TestClock.adjust("1 hour")
        const second = yield* pollMany
        expect(second.every((s) => s.authMethod === "chatgpt" && s.authToken === null)).toBe(true)
        expect(yield* endpoint.count).toBe(1)
        expect(yield* statusOf).toMatchObject({ status: "poisoned", reason: "reused" })
      }).pipe(Effect.provide(layer))
    }))

  it.effect("refresh fails fast with the recorded PermanentRefreshError", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      const first = yield* Effect.flip(manager.refresh)
      const second = yield* Effect.flip(manager.refresh)
      expect(first).toMatchObject({ _tag: "PermanentRefreshError", reason: "expired" })
      expect(second).toBe(first)
      expect(second.message).toContain("refresh token has expired")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(scripted(chatgptJson(), [dead("expired")]))))
})

describe("the poison clears when the credentials change, and only then", () => {
  const poisoned = Effect.gen(function*() {
    yield* poll()
    expect((yield* statusOf).status).toBe("poisoned")
  })
  const layer = () => scripted(chatgptJson(), [dead(), rotated("fresh-access", "fresh-refresh")])

  it.effect("loginWithTokens: the new token is served", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* Effect.flatMap(auth, (a) => a.loginWithTokens(tokensOf("login-access", "login-refresh")))
      expect((yield* statusOf).status).toBe("healthy")
      expect(tokenOf(yield* poll())).toBe("login-access")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(layer())))

  it.effect("loginWithApiKey", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* Effect.flatMap(auth, (a) => a.loginWithApiKey(Redacted.make(secrets.apiKey)))
      const status = yield* poll()
      expect(status.authMethod).toBe("apikey")
      expect(tokenOf(status)).toBe(secrets.apiKey)
    }).pipe(Effect.provide(layer())))

  it.effect("logout", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* Effect.flatMap(auth, (a) => a.logout)
      expect(yield* statusOf).toMatchObject({ status: "healthy", method: null })
      expect((yield* Effect.flatMap(AuthStore, (s) => s.load)).hash).toBe("absent")
    }).pipe(Effect.provide(layer())))

  it.effect("reload of a different document (another process signed in)", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* writeBehind(chatgptJson({ refreshToken: "other-refresh", accessToken: "other-access", refreshedAgo: 0 }))
      yield* Effect.flatMap(auth, (a) => a.reload)
      expect((yield* statusOf).status).toBe("healthy")
      expect(tokenOf(yield* poll())).toBe("other-access")
    }).pipe(Effect.provide(layer())))

  it.effect("not on reload of the same document", () =>
    Effect.gen(function*() {
      yield* poisoned
      yield* writeBehind(chatgptJson())
      yield* Effect.flatMap(auth, (a) => a.reload)
      expect((yield* statusOf).status).toBe("poisoned")
      expect(tokenOf(yield* poll())).toBeNull()
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(layer())))

  it.effect("a refresh that finds newer credentials in storage adopts them with no request", () =>
    Effect.gen(function*() {
      yield* writeBehind(chatgptJson({ accessToken: "other-access", refreshedAgo: 0 }))
      expect(tokenOf(yield* poll())).toBe("other-access")
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(layer())))

  it.effect("every change is published on the changes stream", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      const seen = yield* manager.changes.pipe(Stream.take(3), Stream.runCollect, Effect.fork)
      yield* Effect.yieldNow()
      yield* poll()
      yield* manager.logout
      const states = Chunk.toArray(yield* Fiber.join(seen))
      expect(states.map((s) => [s.method, s.status])).toEqual([
        ["chatgpt", "healthy"],
        ["chatgpt", "poisoned"],
        [null, "healthy"]
      ])
    }).pipe(Effect.provide(layer())))
})

describe("a 10 s outage of the token endpoint, polled every 10 ms (virtual time)", () => {
  const outageMs = 10_000
  // The endpoint answers 503 until the outage ends, then rotates.
  const endpointDown = (call: number) =>
    Effect.flatMap(
      TestClock.currentTimeMillis,
      (now) => now < outageMs ? down() : rotated(`fresh-${call}`, `refresh-${call}`)
    )
  const expired = chatgptJson({ expiresIn: -60_000 })

  const run = Effect.gen(function*() {
    const manager = yield* AuthManager
    let duringOutage = 0
    for (;;) {
      const now = yield* TestClock.currentTimeMillis
      if (now >= outageMs && duringOutage === 0) duringOutage = yield* callCount
      const token = tokenOf(yield* manager.getAuthStatus({ includeToken: true }))
      if (token !== null && token.startsWith("fresh-")) return { duringOutage, recoveryMs: now - outageMs }
      if (now > 10 * outageMs) return { duringOutage, recoveryMs: Infinity }
      // The polls of a cooldown are answered from memory with no request (tested below): skipped to
      // the first poll at or after its end, on the same 10 ms grid. The end of the outage is a poll too.
      const { retryAt } = yield* manager.state
      const next = retryAt === null ? now + 10 : Math.max(now + 10, Math.ceil(retryAt / 10) * 10)
      yield* TestClock.setTime(now < outageMs && next > outageMs ? outageMs : next)
    }
  })

  for (const seed of ["outage-1", "outage-2", "outage-3", "outage-4", "outage-5"]) {
    it.effect(`at most 10 requests during the outage, and a fresh token less than 1 s after it ends (seed ${seed})`, () =>
      Effect.gen(function*() {
        const { duringOutage, recoveryMs } = yield* run
        expect(duringOutage).toBeLessThanOrEqual(10)
        // Retries that are not a storm: at least one a few seconds into the outage.
        expect(duringOutage).toBeGreaterThanOrEqual(5)
        expect(recoveryMs).toBeLessThanOrEqual(1000)
      }).pipe(Effect.provide(scripted(expired, endpointDown)), Effect.withRandom(Random.make(seed))))
  }
})

describe("transient failures back off", () => {
  // The jitter is drawn from the Random service: seeded here, and the same seed gives the expected draws.
  const seed = "backoff"
  // One retry a second for the first ten failures, then 20% longer each time, up to 5 min.
  const ceilingOf = (attempt: number) => Math.min(300_000, 1000 * 1.2 ** Math.max(0, attempt - 10))
  const delayOf = (attempt: number, draw: number) => Math.min(300_000, Math.floor(ceilingOf(attempt) * (1 + draw / 10)))

  it.effect("1 s for ten failures, then growing by a fifth up to 5 min: each delay is its ceiling spread by a draw over a tenth above it, and no request comes before it ends", () =>
    Effect.gen(function*() {
      const draws = Random.make(seed)
      for (let attempt = 1; attempt <= 45; attempt++) {
        yield* poll()
        expect(yield* callCount).toBe(attempt)
        const { retryAt, status } = yield* statusOf
        const now = yield* TestClock.currentTimeMillis
        expect(status).toBe("cooling-down")
        const delay = delayOf(attempt, yield* draws.next)
        expect(retryAt! - now).toBe(delay)
        expect(delay).toBeGreaterThanOrEqual(ceilingOf(attempt))
        // Steady retries first; the cap is reached (1.2^32 > 300) and kept.
        if (attempt <= 10) expect(delay).toBeLessThan(1100)
        if (attempt >= 42) expect(delay).toBe(300_000)
        yield* TestClock.adjust(delay - 1)
        const during = yield* poll()
        expect(yield* callCount).toBe(attempt)
        expect(tokenOf(during)).toBe(secrets.access)
        yield* TestClock.adjust(1)
      }
    }).pipe(Effect.provide(scripted(chatgptJson(), [down()])), Effect.withRandom(Random.make(seed))))

  it.effect("the delays grow: an hour of outage, each poll at the end of its cooldown, takes fewer than 50 requests", () =>
    Effect.gen(function*() {
      let attempts = 0
      for (let now = 0; now < 3_600_000; now = (yield* statusOf).retryAt!) {
        yield* TestClock.setTime(now)
        yield* poll()
        attempts++
      }
      expect(yield* callCount).toBe(attempts)
      expect(attempts).toBeLessThan(50)
      expect(attempts).toBeGreaterThan(20)
    }).pipe(Effect.provide(scripted(chatgptJson(), [down()])), Effect.withRandom(Random.make(seed))))

  it.effect("…and a day fewer than 330 (the same delays, summed)", () =>
    Effect.gen(function*() {
      let attempts = 0
      for (let total = 0; total < 86_400_000; attempts++) {
        total += RefreshState.backoffDelay(attempts + 1, yield* Random.next, undefined, defaultSettings)
      }
      expect(attempts).toBeLessThan(330)
    }).pipe(Effect.withRandom(Random.make(seed))))

  it.effect("Retry-After is honoured as a floor", () =>
    Effect.gen(function*() {
      yield* poll()
      expect((yield* statusOf).retryAt).toBeGreaterThanOrEqual(120_000)
      yield* TestClock.adjust("119 seconds")
      yield* poll()
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(scripted(chatgptJson(), [down(120)]))))

  it.effect("Retry-After is capped at one hour", () =>
    Effect.gen(function*() {
      yield* poll()
      expect((yield* statusOf).retryAt).toBe(3_600_000)
    }).pipe(Effect.provide(scripted(chatgptJson(), [down(86_400)]))))

  it.effect("recovery: the next attempt after the cooldown succeeds and the new token is served", () =>
    Effect.gen(function*() {
      yield* poll()
      yield* TestClock.setTime((yield* statusOf).retryAt!)
      expect(tokenOf(yield* poll())).toBe("new-access")
      expect(yield* statusOf).toMatchObject({ status: "healthy", retryAt: null })
    }).pipe(Effect.provide(scripted(chatgptJson(), [down(), rotated("new-access", "new-refresh")]))))
})

describe("no storm when healthy", () => {
  it.effect("100 polls with refreshToken: true within 30 s make 1 request", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 100; i++) {
        expect(tokenOf(yield* poll())).toBe("new-access")
        yield* TestClock.adjust("290 millis")
      }
      expect(yield* callCount).toBe(1)
      yield* TestClock.adjust("2 seconds")
      yield* poll()
      expect(yield* callCount).toBe(2)
    }).pipe(Effect.provide(scripted(chatgptJson(), [rotated("new-access", "new-refresh")]))))

  it.effect("a stale token is refreshed without being asked, once", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      for (let i = 0; i < 50; i++) yield* manager.getAuthStatus({ includeToken: true })
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(scripted(chatgptJson({ expiresIn: 60_000 }), [rotated("new-access", "new-refresh")]))))

  it.effect("a fresh token is not refreshed without being asked", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      yield* manager.getAuthStatus({ includeToken: true })
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(scripted(chatgptJson({ expiresIn: 3_600_000 }), [rotated("new-access", "new-refresh")]))))

  it.effect("clock skew: a refreshed token that still reads as stale is not refreshed again inside the minimum interval", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      for (let i = 0; i < 29; i++) {
        yield* manager.getAuthStatus({ includeToken: true })
        yield* TestClock.adjust("1 second")
      }
      expect(yield* callCount).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* manager.getAuthStatus({ includeToken: true })
      expect(yield* callCount).toBe(2)
    }).pipe(Effect.provide(scripted(chatgptJson({ expiresIn: 0 }), [rotated(expiredJwt, "r2")]))))
})

describe("the stale instant, to the millisecond (polls compare it, computed once per snapshot)", () => {
  it.effect("an access token is stale from 5 minutes before its exp, not a millisecond earlier", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      yield* TestClock.adjust(Duration.millis(5 * 60_000 - 1))
      yield* manager.getAuthStatus({ includeToken: true })
      expect(yield* callCount).toBe(0)
      yield* TestClock.adjust(Duration.millis(1))
      expect(tokenOf(yield* manager.getAuthStatus({ includeToken: true }))).toBe("new-access")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(scripted(chatgptJson({ expiresIn: 10 * 60_000 }), [rotated("new-access", "new-refresh")]))))

  it.effect("without an exp, a last_refresh is stale once more than 8 days old", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      yield* TestClock.adjust(Duration.days(8))
      yield* manager.getAuthStatus()
      expect(yield* callCount).toBe(0)
      yield* TestClock.adjust(Duration.millis(1))
      yield* manager.getAuthStatus()
      expect(yield* callCount).toBe(1)
    }).pipe(
      Effect.provide(
        scripted(chatgptJson({ refreshedAgo: 0, accessToken: "opaque-access" }), [rotated("new-access", "new-refresh")])
      )
    ))

  it.effect("a new snapshot gets its own instant: after a sign-in with a token near expiry, the next poll refreshes", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      yield* manager.getAuthStatus()
      expect(yield* callCount).toBe(0)
      yield* manager.loginWithTokens(tokensOf(TokenEndpoint.unsignedJwt({ exp: 60 }), "other-refresh"))
      // A sign-in counts as a refresh: none in the minimum interval that follows it.
      yield* TestClock.adjust("31 seconds")
      expect(tokenOf(yield* manager.getAuthStatus({ includeToken: true }))).toBe("new-access")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(scripted(chatgptJson({ expiresIn: 3_600_000 }), [rotated("new-access", "new-refresh")]))))
})

describe("single flight, detached from its callers", () => {
  it.effect("concurrent callers share one request; interrupting one does not cancel it", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const layer = scripted(chatgptJson(), () =>
        Effect.zipRight(Deferred.await(gate), rotated("new-access", "new-refresh")))
      yield* Effect.gen(function*() {
        const first = yield* Effect.fork(poll())
        const others = yield* Effect.fork(Effect.all(
          Array.from({ length: 10 }, () =>
            poll()),
          { concurrency: "unbounded" }
        ))
        while ((yield* callCount) === 0) yield* Effect.yieldNow()
        yield* Fiber.interrupt(first)
        yield* Deferred.succeed(gate, undefined)
        const results = yield* Fiber.join(others)
        expect(results.map(tokenOf)).toEqual(Array(10).fill("new-access"))
        expect(yield* callCount).toBe(1)
        const stored = yield* Effect.flatMap(AuthStore, (s) => s.load)
        expect(Option.getOrThrow(stored.document).tokens?.refresh_token.pipe(Redacted.value)).toBe("new-refresh")
      }).pipe(Effect.provide(layer))
    }))

  it.effect("a caller that times out does not cancel the refresh either", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const layer = scripted(chatgptJson(), () =>
        Effect.zipRight(Deferred.await(gate), rotated("new-access", "new-refresh")))
      yield* Effect.gen(function*() {
        const impatient = yield* Effect.fork(poll().pipe(Effect.timeout("1 second")))
        while ((yield* callCount) === 0) {
          yield* Effect.yieldNow()
        }
        yield* TestClock.adjust("1 second")
        expect((yield* Fiber.await(impatient))._tag).toBe("Failure")
        yield* Deferred.succeed(gate, undefined)
        expect(tokenOf(yield* poll())).toBe("new-access")
        expect(yield* callCount).toBe(1)
      }).pipe(Effect.provide(layer))
    }))
})

describe("readAccount", () => {
  it.effect("ChatGPT: email and plan from the id_token, still shown while poisoned", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      const expected = {
        account: { type: "chatgpt", email: "ada@example.com", planType: "plus" },
        requiresOpenaiAuth: true
      }
      expect(yield* manager.readAccount({ refreshToken: true })).toEqual(expected)
      expect((yield* statusOf).status).toBe("poisoned")
      expect(yield* manager.readAccount()).toEqual(expected)
    }).pipe(Effect.provide(scripted(chatgptJson(), [dead()]))))

  it.effect("API key, logged out", () =>
    Effect.gen(function*() {
      const manager = yield* auth
      expect(yield* manager.readAccount()).toEqual({ account: { type: "apiKey" }, requiresOpenaiAuth: true })
      yield* manager.logout
      expect(yield* manager.readAccount()).toEqual({ account: null, requiresOpenaiAuth: true })
    }).pipe(Effect.provide(scripted(apiKeyJson(), [dead()]))))
})

describe("refresh writes what it gets", () => {
  it.effect("unknown fields survive a refresh; a provider that does not rotate keeps the old refresh token", () =>
    Effect.gen(function*() {
      yield* poll()
      const stored = yield* Effect.flatMap(AuthStore, (s) => s.load)
      const doc = Option.getOrThrow(stored.document) as AuthDocument.AuthDocument & Record<string, unknown>
      expect(AuthDocument.toJson(doc).future_field).toEqual({ kept: true })
      expect(Redacted.value(doc.tokens!.access_token)).toBe("only-access")
      expect(Redacted.value(doc.tokens!.refresh_token)).toBe(secrets.refresh)
      expect(doc.last_refresh).toBe(new Date(0).toISOString())
    }).pipe(Effect.provide(scripted(
      chatgptJson({ extra: { future_field: { kept: true } } }),
      [Effect.succeed({ accessToken: Redacted.make("only-access") })]
    ))))

  it.effect("records the calls it made with the refresh token it had", () =>
    Effect.gen(function*() {
      yield* poll()
      const calls = yield* Effect.flatMap(TokenRefresherTest, (t) => t.calls)
      expect(calls.map(Redacted.value)).toEqual([secrets.refresh])
    }).pipe(Effect.provide(scripted(chatgptJson(), [dead()]))))
})

describe("managers sharing one store act as one", () => {
  const shared = (script: Parameters<typeof TokenRefresher.layerTest>[0]) =>
    Layer.merge(AuthStore.layerMemory(chatgptJson()), TokenRefresher.layerTest(script))

  it.scoped("the second learns the poison from the shared state, with no request", () =>
    Effect.gen(function*() {
      const [a, b] = [yield* makeManager(), yield* makeManager()]
      yield* a.getAuthStatus({ refreshToken: true })
      const status = yield* b.getAuthStatus({ includeToken: true, refreshToken: true })
      expect(status).toMatchObject({ authMethod: "chatgpt", authToken: null })
      expect((yield* b.state).status).toBe("poisoned")
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(shared([dead()]))))

  it.scoped("one started after the poison was shared withholds the token from its first poll, without refreshing", () =>
    Effect.gen(function*() {
      const a = yield* makeManager()
      yield* a.getAuthStatus({ refreshToken: true })
      expect((yield* a.state).status).toBe("poisoned")
      const b = yield* makeManager()
      expect((yield* b.state).status).toBe("poisoned")
      expect(yield* b.getAuthStatus({ includeToken: true })).toMatchObject({ authMethod: "chatgpt", authToken: null })
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(shared([dead()]))))

  it.scoped("they share one backoff schedule", () =>
    Effect.gen(function*() {
      const [a, b] = [yield* makeManager(), yield* makeManager()]
      yield* a.getAuthStatus({ refreshToken: true })
      const retryAt = (yield* a.state).retryAt!
      yield* b.getAuthStatus({ refreshToken: true })
      expect(yield* b.state).toMatchObject({ status: "cooling-down", retryAt })
      expect(yield* callCount).toBe(1)
      yield* TestClock.setTime(retryAt)
      yield* b.getAuthStatus({ refreshToken: true })
      yield* a.getAuthStatus({ refreshToken: true })
      expect(yield* callCount).toBe(2)
      // a's own cooldown had ended, but it adopted b's newer one instead of making a third request.
      expect((yield* a.state).retryAt).toBe((yield* b.state).retryAt)
    }).pipe(Effect.provide(shared([down()]))))
})

describe("a refresh that hangs", () => {
  it.effect("is cut by its own timeout: the flight stays interruptible though it is detached", () =>
    Effect.gen(function*() {
      const waiting = yield* Effect.fork(poll())
      while ((yield* callCount) === 0) yield* Effect.yieldNow()
      yield* TestClock.adjust("30 seconds")
      expect(tokenOf(yield* Fiber.join(waiting))).toBe(secrets.access)
      expect(yield* statusOf).toMatchObject({ status: "cooling-down" })
    }).pipe(Effect.provide(scripted(chatgptJson(), [
      Effect.never.pipe(
        Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new TransientRefreshError({ kind: "timeout", detail: "no answer" })
        })
      )
    ]))))
})

describe("stopping", () => {
  // A refresh whose token request is out when the manager is closed; `beforeClosing` runs just before.
  const setupWith = (
    beforeClosing: (auth: Context.Tag.Service<AuthManager>) => Effect.Effect<void, unknown, AuthStore>
  ) =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const refresher = TokenRefresher.layerTest(() =>
        Deferred.succeed(started, undefined).pipe(
          Effect.zipRight(Deferred.await(release)),
          Effect.as({ accessToken: Redacted.make(secrets.newAccess), refreshToken: Redacted.make(secrets.newRefresh) })
        )
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Layer.scoped(AuthManager, AuthManager.make({})).pipe(Layer.provide(refresher)),
        scope
      )
      const auth = Context.get(context, AuthManager)
      yield* Effect.fork(auth.refresh)
      yield* Deferred.await(started)
      yield* beforeClosing(auth)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      return { closing, release }
    })
  const setup = setupWith(() => Effect.void)
  const storedRefreshToken = Effect.map(
    Effect.flatMap(AuthStore, (store) => store.load),
    (snapshot) => Redacted.value(Option.getOrThrow(snapshot.document).tokens!.refresh_token)
  )

  it.effect("closing the manager waits for the refresh in flight, and its rotated token is saved", () =>
    Effect.gen(function*() {
      const { closing, release } = yield* setup
      expect(Option.isNone(yield* Fiber.poll(closing))).toBe(true)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(closing)
      expect(yield* storedRefreshToken).toBe(secrets.newRefresh)
    }).pipe(Effect.provide(AuthStore.layerMemory(chatgptJson()))))

  it.effect("it waits for the refresh in flight even when a newer flight has started since", () =>
    Effect.gen(function*() {
      const { closing, release } = yield* setupWith((auth) =>
        Effect.gen(function*() {
          // Storage rewritten with the same tokens (another field changed) and adopted; then a refresh
          // asked of the new snapshot: a second flight, waiting for the lock the first one holds.
          yield* writeBehind({ ...chatgptJson(), written_by: "another program" })
          yield* auth.reload
          yield* Effect.fork(auth.refresh)
          yield* Effect.repeatN(Effect.yieldNow(), 20)
        })
      )
      expect(Option.isNone(yield* Fiber.poll(closing))).toBe(true)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(closing)
      expect(yield* storedRefreshToken).toBe(secrets.newRefresh)
    }).pipe(Effect.provide(AuthStore.layerMemory(chatgptJson()))))

  it.effect("the wait is bounded", () =>
    Effect.gen(function*() {
      const { closing } = yield* setup
      yield* TestClock.adjust("41 seconds")
      yield* Fiber.join(closing)
      expect(yield* storedRefreshToken).toBe(secrets.refresh)
    }).pipe(Effect.provide(AuthStore.layerMemory(chatgptJson()))))
})

describe("getAuthStatus never fails because of a refresh", () => {
  it.effect("a refresher that dies: the poll is answered, the cached token still served", () =>
    Effect.gen(function*() {
      const status = yield* poll()
      expect(status.authMethod).toBe("chatgpt")
      expect(status.authToken === null ? null : Redacted.value(status.authToken)).toBe(secrets.access)
      const account = yield* Effect.flatMap(AuthManager, (auth) => auth.readAccount({ refreshToken: true }))
      expect(account.account?.type).toBe("chatgpt")
    }).pipe(Effect.provide(scripted(chatgptJson(), [Effect.die(new Error("the HTTP stack threw"))]))))
})
