// A token the API refused (HTTP 401), reported to the manager: what it does about it, and the
// tokens a host app manages itself.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Redacted, Ref, Scope } from "effect"
import { TestClock } from "effect/testing"
import { TransientRefreshError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import type { HostTokens } from "../src/manager/HostTokens.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import {
  callCount,
  callers,
  chatgptJson,
  dead,
  gated,
  manager,
  rotated,
  secrets,
  statusOf,
  writeBehind
} from "./AuthManager.support.js"

const refuse = (token: string) => Effect.flatMap(AuthManager, (auth) => auth.reportUnauthorized(Redacted.make(token)))
const currentToken = Effect.flatMap(AuthManager, (auth) => Effect.map(auth.credentials, (c) => Redacted.value(c.token)))

describe("reportUnauthorized", () => {
  it.effect("the current token: refreshed once, the minimum interval notwithstanding; refused again at once: unchanged, no request", () =>
    Effect.gen(function*() {
      expect(yield* refuse(secrets.access)).toBe("refreshed")
      expect(yield* currentToken).toBe("new-access")
      expect(yield* refuse("new-access")).toBe("unchanged")
      expect(yield* callCount).toBe(1)
    }).pipe(
      // Refreshed just now: a poll would not refresh it, a 401 does.
      Effect.provide(manager(chatgptJson({ refreshedAgo: 0 }), [rotated("new-access", "new-refresh")]))
    ))

  it.effect("a token already replaced: \"replaced\", no request", () =>
    Effect.gen(function*() {
      expect(yield* refuse("a-token-replaced-long-ago")).toBe("replaced")
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager(chatgptJson(), [rotated("new-access", "new-refresh")]))))

  it.effect("another process refreshed already: storage is read again, \"reloaded\", no request", () =>
    Effect.gen(function*() {
      yield* writeBehind(chatgptJson({ accessToken: "other-access", refreshToken: "other-refresh", refreshedAgo: 0 }))
      expect(yield* refuse(secrets.access)).toBe("reloaded")
      expect(yield* currentToken).toBe("other-access")
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager(chatgptJson(), [rotated("new-access", "new-refresh")]))))

  it.effect("an API key: nothing to refresh", () =>
    Effect.gen(function*() {
      expect(yield* refuse(secrets.apiKey)).toBe("unchanged")
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager({ OPENAI_API_KEY: secrets.apiKey }, [rotated("not-used", "not-used")]))))

  it.effect("a dead refresh token: the PermanentRefreshError, then the poisoned credentials with no request", () =>
    Effect.gen(function*() {
      expect(yield* Effect.flip(refuse(secrets.access))).toMatchObject({ _tag: "PermanentRefreshError" })
      expect(yield* Effect.flip(refuse(secrets.access))).toMatchObject({ _tag: "PermanentRefreshError" })
      const auth = yield* AuthManager
      expect(yield* Effect.flip(auth.credentials)).toMatchObject({ reason: "poisoned", refreshReason: "reused" })
      expect(yield* callCount).toBe(1)
    }).pipe(Effect.provide(manager(chatgptJson(), [dead()]))))

  const gate = Deferred.makeUnsafe<void>()
  it.effect("50 concurrent reports of the same token: one refresh, every one told \"refreshed\"", () =>
    Effect.gen(function*() {
      const reports = yield* callers(50, refuse(secrets.access))
      yield* Deferred.succeed(gate, undefined)
      expect(new Set(yield* Fiber.joinAll(reports))).toEqual(new Set(["refreshed"]))
      expect(yield* callCount).toBe(1)
      expect((yield* statusOf).status).toBe("healthy")
    }).pipe(Effect.provide(manager(chatgptJson(), [gated(gate, rotated("new-access", "new-refresh"))]))))
})

describe("tokens a host app manages itself", () => {
  const hostTokens = (accessToken: string): HostTokens => ({
    accessToken: Redacted.make(accessToken),
    accountId: "acct_host",
    planType: null,
    email: null
  })

  it.effect("they are the credentials; a refused one is refreshed by asking the host once, whatever the number of reports", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      const asked = yield* Ref.make(0)
      const answer = yield* Deferred.make<void>()
      yield* auth.hostTokens.set(hostTokens("host-1"))
      expect(yield* currentToken).toBe("host-1")
      yield* auth.hostTokens.refreshWith((request) =>
        Ref.update(asked, (n) => n + 1).pipe(
          Effect.andThen(Deferred.await(answer)),
          Effect.as(hostTokens(`host-2-for-${request.previousAccountId}`))
        )
      )
      const reports = yield* callers(10, refuse("host-1"))
      yield* Deferred.succeed(answer, undefined)
      expect(new Set(yield* Fiber.joinAll(reports))).toEqual(new Set(["refreshed"]))
      expect(yield* Ref.get(asked)).toBe(1)
      expect(yield* currentToken).toBe("host-2-for-acct_host")
      expect(yield* refuse("host-1")).toBe("replaced")
      // The manager's own refresh token was never used.
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(manager(chatgptJson(), [dead()]))))

  it.effect("a refused token reported to a manager already stopped: a typed error that says so, not a wait", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const auth = yield* AuthManager.make().pipe(
        Scope.provide(scope),
        Effect.provide(Layer.merge(AuthStore.layerMemory(chatgptJson()), TokenRefresher.layerTest([dead()])))
      )
      yield* auth.hostTokens.set(hostTokens("host-1"))
      yield* auth.hostTokens.refreshWith(() => Effect.succeed(hostTokens("host-2")))
      yield* Scope.close(scope, Exit.void)
      const failure = yield* Effect.flip(auth.reportUnauthorized(Redacted.make("host-1")))
      expect(failure).toMatchObject({ _tag: "TransientRefreshError", kind: "client" })
      expect(failure.message).toContain("stopped")
    }))

  it.effect(
    "a manager stopped just after a refused token was reported, or while its host is asked: a typed error, not a wait",
    () =>
      Effect.gen(function*() {
        for (const when of ["before the asking starts", "while the host is asked"] as const) {
          const scope = yield* Scope.make()
          const auth = yield* AuthManager.make().pipe(
            Scope.provide(scope),
            Effect.provide(Layer.merge(AuthStore.layerMemory(chatgptJson()), TokenRefresher.layerTest([dead()])))
          )
          const asked = yield* Deferred.make<void>()
          yield* auth.hostTokens.set(hostTokens("host-1"))
          yield* auth.hostTokens.refreshWith(() => Effect.andThen(Deferred.succeed(asked, undefined), Effect.never))
          const report = yield* Effect.forkChild(Effect.flip(auth.reportUnauthorized(Redacted.make("host-1"))), {
            startImmediately: true
          })
          if (when === "while the host is asked") yield* Deferred.await(asked)
          yield* Scope.close(scope, Exit.void)
          const failure = yield* Fiber.join(report)
          expect(failure, when).toMatchObject({ _tag: "TransientRefreshError", kind: "client" })
          expect(failure.message, when).toContain("stopped")
        }
      }),
    { timeout: 10_000 }
  )

  it.effect("no host to ask: a typed error that says so; a host that does not answer: a typed error at its timeout", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      yield* auth.hostTokens.set(hostTokens("host-1"))
      const alone = yield* Effect.flip(refuse("host-1"))
      expect(alone).toBeInstanceOf(TransientRefreshError)
      expect(alone).toMatchObject({ kind: "client" })
      expect(alone.message).toContain("no client that supplied these tokens is connected")
      yield* auth.hostTokens.refreshWith(() => Effect.never, { timeout: "5 seconds" })
      const [report] = yield* callers(1, Effect.flip(refuse("host-1")))
      yield* TestClock.adjust("5 seconds")
      const late = yield* Fiber.join(report!)
      expect(late).toMatchObject({ kind: "client" })
      expect(late.message).toContain("did not answer the refresh request within 5")
      expect(yield* auth.hostTokens.clear).toBe(true)
      expect(Option.isNone(yield* auth.hostTokens.current)).toBe(true)
      expect(yield* currentToken).toBe(secrets.access)
    }).pipe(Effect.provide(manager(chatgptJson({ refreshedAgo: 0 }), [dead()]))))
})
