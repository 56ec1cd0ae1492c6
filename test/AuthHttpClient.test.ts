import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Deferred,
  Effect,
  FastCheck as fc,
  Layer,
  Logger,
  Metric,
  MetricState,
  Option,
  Redacted,
  Ref,
  Stream,
  TestClock
} from "effect"
import { AuthHttpClient } from "../src/client/AuthHttpClient.js"
import * as Redirects from "../src/client/internal/redirects.js"
import { type Settings } from "../src/config/Settings.js"
import { CredentialsUnavailableError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import type { ScriptStep } from "../src/oauth/TokenRefresher.js"
import { serveOnLoopback } from "../src/testing/loopback.js"
import * as Api from "./support/api.js"
import { apiKeyJson, chatgptJson, secrets, tokensOf } from "./support/fixtures.js"
import { callCount, dead, down, rotated, scripted, statusOf, writeBehind } from "./support/manager.js"
import { seeded } from "./support/properties.js"

/** The authorized client over a real Node HTTP client, a memory store and the scripted refresher. */
const stack = (json: object | undefined, script: ReadonlyArray<ScriptStep>, settings: Partial<Settings> = {}) =>
  AuthHttpClient.layer.pipe(
    Layer.provideMerge(scripted(json, script, settings)),
    Layer.provideMerge(NodeHttpClient.layerUndici)
  )

const client = AuthHttpClient
const tokensSent = (api: { readonly received: Effect.Effect<ReadonlyArray<Api.ApiRequest>> }) =>
  Effect.map(api.received, (all) => all.map((request) => request.token))

/** How many recoveries ended with `outcome`, in this process so far. */
const recoveries = (outcome: string) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs
      .filter((pair) =>
        pair.metricKey.name === "effect_auth_unauthorized_recoveries_total" &&
        pair.metricKey.tags.some((tag) => tag.key === "outcome" && tag.value === outcome)
      )
      .reduce(
        (sum, pair) => sum + (MetricState.isCounterState(pair.metricState) ? Number(pair.metricState.count) : 0),
        0
      ))

// Refreshed a second ago: a plain refresh would be skipped by the minimum interval; a 401 is not.
const justRefreshed = chatgptJson({ refreshedAgo: 1_000 })

describe("AuthHttpClient: the credentials on every request", () => {
  it.scoped("ChatGPT: the bearer access token and the ChatGPT-Account-Id header", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([]))
      const response = yield* Effect.flatMap(client, (c) => c.get(api.url)).pipe(
        Effect.provide(stack(chatgptJson(), []))
      )
      expect(response.status).toBe(200)
      expect(yield* api.received).toEqual([{ token: secrets.access, accountId: "acct_123" }])
    }))

  it.scoped("API key: the key as the bearer token, no account header", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([]))
      yield* Effect.flatMap(client, (c) => c.get(api.url)).pipe(Effect.provide(stack(apiKeyJson(), [])))
      expect(yield* api.received).toEqual([{ token: secrets.apiKey, accountId: null }])
    }))

  it.scoped("logged out: a typed error that says to sign in, and no request", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([]))
      const error = yield* Effect.flip(Effect.flatMap(client, (c) => c.get(api.url))).pipe(
        Effect.provide(stack(undefined, []))
      )
      expect(error).toBeInstanceOf(CredentialsUnavailableError)
      expect(error).toMatchObject({ reason: "logged_out" })
      expect(error.message).toContain("Sign in")
      expect(yield* api.count).toBe(0)
    }))

  it.scoped("poisoned: a typed error that says why and to sign in again, and no request", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([]))
      const error = yield* Effect.gen(function*() {
        yield* Effect.ignore(Effect.flatMap(AuthManager, (auth) => auth.refresh))
        return yield* Effect.flip(Effect.flatMap(client, (c) => c.get(api.url)))
      }).pipe(Effect.provide(stack(chatgptJson(), [dead("revoked")])))
      expect(error).toMatchObject({ _tag: "CredentialsUnavailableError", reason: "poisoned", refreshReason: "revoked" })
      expect(error.message).toContain("revoked")
      expect(error.message).toContain("sign in again")
      expect(yield* api.count).toBe(0)
    }))

  it.scoped("layerHttpClient: a plain HttpClient; no credentials is a RequestError caused by the typed error", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([]))
      const layer = AuthHttpClient.layerHttpClient.pipe(
        Layer.provide(scripted(undefined, [])),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const error = yield* Effect.flip(HttpClient.get(api.url)).pipe(Effect.provide(layer))
      expect(error).toMatchObject({
        _tag: "RequestError",
        cause: { _tag: "CredentialsUnavailableError", reason: "logged_out" }
      })
    }))
})

describe("AuthHttpClient: one recovery on 401", () => {
  it.scoped("a refused token is refreshed once, the minimum interval notwithstanding, and the request retried", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([secrets.access]))
      const refreshedBefore = yield* recoveries("refreshed")
      yield* Effect.gen(function*() {
        const response = yield* Effect.flatMap(client, (c) => c.get(api.url))
        expect(response.status).toBe(200)
        expect(yield* callCount).toBe(1)
        expect(yield* tokensSent(api)).toEqual([secrets.access, secrets.newAccess])
        // The new token is kept: the next request carries it at once.
        yield* Effect.flatMap(client, (c) => c.get(api.url))
        expect((yield* tokensSent(api)).at(-1)).toBe(secrets.newAccess)
        expect(yield* callCount).toBe(1)
      }).pipe(Effect.provide(stack(justRefreshed, [rotated(secrets.newAccess, secrets.newRefresh)])))
      expect((yield* recoveries("refreshed")) - refreshedBefore).toBe(1)
    }))

  it.scoped("100 concurrent requests that all get 401: one refresh, and all succeed with the new token", () =>
    Effect.gen(function*() {
      // The API answers no 401 before all 100 requests have arrived with the old token.
      const arrived = yield* Ref.make(0)
      const all = yield* Deferred.make<void>()
      const api = yield* Api.make((request) =>
        request.token !== secrets.access ? Effect.succeed(200) : Effect.gen(function*() {
          if ((yield* Ref.updateAndGet(arrived, (n) => n + 1)) === 100) yield* Deferred.succeed(all, undefined)
          yield* Deferred.await(all)
          return 401
        })
      )
      yield* Effect.gen(function*() {
        const c = yield* client
        const responses = yield* Effect.all(Array.from({ length: 100 }, () => c.get(api.url)), {
          concurrency: "unbounded"
        })
        expect(responses.every((response) => response.status === 200)).toBe(true)
        expect(yield* callCount).toBe(1)
        const sent = yield* tokensSent(api)
        expect(sent.filter((token) => token === secrets.access)).toHaveLength(100)
        expect(sent.filter((token) => token === secrets.newAccess)).toHaveLength(100)
      }).pipe(Effect.provide(stack(justRefreshed, [rotated(secrets.newAccess, secrets.newRefresh)])))
    }))

  it.scoped("a 401 for a token already replaced: retried with the current one, no refresh", () =>
    Effect.gen(function*() {
      const arrived = yield* Deferred.make<void>()
      const replaced = yield* Deferred.make<void>()
      const api = yield* Api.make((request) =>
        request.token === secrets.access
          // The credentials change while the request is on its way (a sign-in, another refresh).
          ? Deferred.succeed(arrived, undefined).pipe(Effect.zipRight(Deferred.await(replaced)), Effect.as(401))
          : Effect.succeed(200)
      )
      const replacedBefore = yield* recoveries("replaced")
      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        const c = yield* client
        const request = yield* Effect.fork(c.get(api.url))
        yield* Deferred.await(arrived)
        yield* writeBehind(
          chatgptJson({ accessToken: secrets.newAccess, refreshToken: secrets.newRefresh, refreshedAgo: 1_000 })
        )
        yield* auth.reload
        yield* Deferred.succeed(replaced, undefined)
        expect((yield* request.await)._tag).toBe("Success")
        expect(yield* tokensSent(api)).toEqual([secrets.access, secrets.newAccess])
        expect(yield* callCount).toBe(0)
        // Reported directly, as a server with its own client would: nothing to do.
        expect(yield* auth.reportUnauthorized(Redacted.make(secrets.access))).toBe("replaced")
        expect(yield* callCount).toBe(0)
      }).pipe(Effect.provide(stack(chatgptJson(), [rotated("not-used", "not-used")])))
      expect((yield* recoveries("replaced")) - replacedBefore).toBe(2)
    }))

  it.scoped("another process refreshed already: storage is read again, no refresh", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([secrets.access]))
      yield* Effect.gen(function*() {
        // Written behind the manager's back, not reloaded: only the 401 makes it look.
        yield* writeBehind(
          chatgptJson({ accessToken: secrets.newAccess, refreshToken: secrets.newRefresh, refreshedAgo: 1_000 })
        )
        const response = yield* Effect.flatMap(client, (c) => c.get(api.url))
        expect(response.status).toBe(200)
        expect(yield* tokensSent(api)).toEqual([secrets.access, secrets.newAccess])
        expect(yield* callCount).toBe(0)
      }).pipe(Effect.provide(stack(chatgptJson(), [rotated("not-used", "not-used")])))
    }))

  it.scoped("a second 401 goes back to the caller; a token a recovery just obtained is not refreshed again", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(() => Effect.succeed(401))
      yield* Effect.gen(function*() {
        const c = yield* client
        expect((yield* c.get(api.url)).status).toBe(401)
        expect(yield* tokensSent(api)).toEqual([secrets.access, secrets.newAccess])
        expect(yield* callCount).toBe(1)
        expect((yield* c.get(api.url)).status).toBe(401)
        expect(yield* api.count).toBe(3)
        expect(yield* callCount).toBe(1)
        // Once the minimum interval has passed, a 401 is evidence again.
        yield* TestClock.adjust("31 seconds")
        expect((yield* c.get(api.url)).status).toBe(401)
        expect(yield* callCount).toBe(2)
      }).pipe(
        Effect.provide(
          stack(justRefreshed, [rotated(secrets.newAccess, secrets.newRefresh), rotated("access-3", "refresh-3")])
        )
      )
    }))

  it.scoped("an API that refuses every token: its 401s are said once per token, not once per request", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(() => Effect.succeed(401))
      const lines: Array<string> = []
      const logger = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ logLevel, message }) => {
          if (logLevel._tag === "Warning") lines.push(String(message))
        })
      )
      yield* Effect.gen(function*() {
        const c = yield* client
        for (let i = 0; i < 50; i++) expect((yield* c.get(api.url)).status).toBe(401)
        expect(yield* callCount).toBe(1)
        expect(lines).toHaveLength(1)
        // A new token, refused too once the minimum interval has passed: said once more.
        yield* TestClock.adjust("31 seconds")
        for (let i = 0; i < 50; i++) expect((yield* c.get(api.url)).status).toBe(401)
        expect(yield* callCount).toBe(2)
        expect(lines).toHaveLength(2)
      }).pipe(
        Effect.provide(
          stack(justRefreshed, [rotated(secrets.newAccess, secrets.newRefresh), rotated("access-3", "refresh-3")])
        ),
        Effect.provide(logger)
      )
    }))

  it.scoped("a dead refresh token: the poisoned error after one refresh, then no request at all", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([secrets.access]))
      yield* Effect.gen(function*() {
        const c = yield* client
        const error = yield* Effect.flip(c.get(api.url))
        expect(error).toMatchObject({
          _tag: "CredentialsUnavailableError",
          reason: "poisoned",
          refreshReason: "reused"
        })
        expect(yield* callCount).toBe(1)
        expect((yield* statusOf).status).toBe("poisoned")
        for (let i = 0; i < 5; i++) {
          expect(yield* Effect.flip(c.get(api.url))).toMatchObject({ reason: "poisoned" })
        }
        expect(yield* api.count).toBe(1)
        expect(yield* callCount).toBe(1)
      }).pipe(Effect.provide(stack(chatgptJson(), [dead("reused")])))
    }))

  it.scoped("a token endpoint down: the 401 goes back to the caller, and the backoff holds for the next 401s", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([secrets.access]))
      yield* Effect.gen(function*() {
        const c = yield* client
        expect((yield* c.get(api.url)).status).toBe(401)
        expect((yield* c.get(api.url)).status).toBe(401)
        expect(yield* callCount).toBe(1)
        expect((yield* statusOf).status).toBe("cooling-down")
      }).pipe(Effect.provide(stack(chatgptJson(), [down()])))
    }))

  it.scoped("a streamed body cannot be sent twice: its 401 is returned as it is, and nothing is refreshed", () =>
    Effect.gen(function*() {
      const api = yield* Api.make(Api.refusing([secrets.access]))
      yield* Effect.gen(function*() {
        const request = HttpClientRequest.post(api.url).pipe(
          HttpClientRequest.bodyStream(Stream.make(new TextEncoder().encode("{}")), { contentType: "application/json" })
        )
        expect((yield* Effect.flatMap(client, (c) => c.execute(request))).status).toBe(401)
        expect(yield* callCount).toBe(0)
      }).pipe(Effect.provide(stack(chatgptJson(), [rotated("not-used", "not-used")])))
    }))
})

describe("AuthManager.reportUnauthorized", () => {
  it.effect("logged out or API key: nothing to refresh", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      expect(yield* auth.reportUnauthorized(Redacted.make(secrets.apiKey))).toBe("unchanged")
      expect(yield* callCount).toBe(0)
    }).pipe(Effect.provide(scripted(apiKeyJson(), [rotated("not-used", "not-used")]))))
})

const Step = fc.record({
  op: fc.constantFrom("401", "401", "401old", "poll", "login", "writeOther"),
  wait: fc.integer({ min: 0, max: 60_000 })
})
const Outcome = fc.constantFrom("ok", "dead", "down")

describe("AuthManager.reportUnauthorized under random sequences", () => {
  it.effect.prop(
    "at most one refresh per report, none for a token already replaced, a poisoned or a cooling-down snapshot; a retry gets a different token",
    [fc.array(Step, { maxLength: 16 }), fc.array(Outcome, { minLength: 1, maxLength: 6 })],
    ([steps, outcomes]) =>
      Effect.gen(function*() {
        const auth = yield* AuthManager
        let serial = 0
        for (const { op, wait } of steps) {
          const before = yield* statusOf
          const callsBefore = yield* callCount
          serial++
          switch (op) {
            case "401": {
              // The API refused the token a request would carry now.
              const sent = yield* Effect.either(auth.credentials)
              if (sent._tag === "Left") {
                // Poisoned before, or by the refresh of a stale token that getting the credentials ran.
                expect(sent.left.reason).toBe("poisoned")
                expect((yield* statusOf).status).toBe("poisoned")
                expect((yield* callCount) - callsBefore).toBe(before.status === "poisoned" ? 0 : 1)
                break
              }
              // (Getting the credentials may have refreshed a stale token, as a poll would.)
              const sending = yield* statusOf
              const callsSending = yield* callCount
              const outcome = yield* Effect.either(auth.reportUnauthorized(sent.right.token))
              const calls = (yield* callCount) - callsSending
              expect(calls).toBeLessThanOrEqual(1)
              if (sending.retryAt !== null && (yield* Clock.currentTimeMillis) < sending.retryAt) expect(calls).toBe(0)
              if (outcome._tag === "Right" && outcome.right !== "unchanged") {
                // The retry carries another token, or none: newer credentials found stale and dead.
                const retry = yield* Effect.either(auth.credentials)
                if (retry._tag === "Right") {
                  expect(Redacted.value(retry.right.token)).not.toBe(Redacted.value(sent.right.token))
                } else expect(retry.left.reason).toBe("poisoned")
              }
              if (outcome._tag === "Left" && outcome.left._tag === "PermanentRefreshError") {
                expect((yield* statusOf).status).toBe("poisoned")
              }
              break
            }
            case "401old": {
              const outcome = yield* Effect.either(auth.reportUnauthorized(Redacted.make("a-token-replaced-long-ago")))
              expect(yield* callCount).toBe(callsBefore)
              expect(outcome._tag).toBe(before.status === "poisoned" ? "Left" : "Right")
              break
            }
            case "poll":
              yield* Effect.flatMap(
                AuthManager,
                (auth) => auth.getAuthStatus({ includeToken: true, refreshToken: true })
              )
              break
            case "login":
              yield* auth.loginWithTokens(tokensOf(`login-access-${serial}`, `login-refresh-${serial}`))
              break
            case "writeOther":
              yield* writeBehind(
                chatgptJson({ refreshToken: `other-refresh-${serial}`, accessToken: `other-access-${serial}` })
              )
              break
          }
          yield* TestClock.adjust(wait)
        }
      }).pipe(
        Effect.provide(scripted(chatgptJson(), (call) => {
          const outcome = outcomes[call % outcomes.length]
          return outcome === "ok" ? rotated(`access-${call}`, `refresh-${call}`) : outcome === "dead" ? dead() : down()
        }))
      ),
    { fastCheck: seeded(30) }
  )
})

describe("AuthHttpClient: redirects", () => {
  interface Seen {
    readonly path: string
    readonly token: string | null
    readonly accountId: string | null
  }
  /**
   * A server on an origin of its own that records what each request carried: `/elsewhere` redirects
   * to `target`, `/here` to its own `/final`, anything else answers 200.
   */
  const server = (target = "", status = 302) =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<Seen>>([])
      const port = yield* serveOnLoopback(Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const authorization = request.headers["authorization"]
        yield* Ref.update(seen, (all) => [...all, {
          path: request.url,
          token: authorization?.startsWith("Bearer ") ? authorization.slice("Bearer ".length) : authorization ?? null,
          accountId: request.headers["chatgpt-account-id"] ?? null
        }])
        return request.url === "/elsewhere"
          ? HttpServerResponse.redirect(target, { status })
          : request.url === "/here"
          ? HttpServerResponse.redirect("/final", { status })
          : request.url === "/loop"
          ? HttpServerResponse.redirect("/loop", { status })
          : HttpServerResponse.text("ok")
      }))
      return { origin: `http://127.0.0.1:${port}`, seen: Ref.get(seen) }
    })

  const through = (base: Layer.Layer<HttpClient.HttpClient>) =>
    AuthHttpClient.layer.pipe(Layer.provideMerge(scripted(justRefreshed, [])), Layer.provideMerge(base))

  const clients = [
    ["fetch", FetchHttpClient.layer, false],
    ["fetch, followRedirects", FetchHttpClient.layer, true],
    ["undici, followRedirects", NodeHttpClient.layerUndici, true]
  ] as const

  it.scoped("credentials never follow a redirect that leaves the request's origin: fetch, and HttpClient.followRedirects", () =>
    Effect.gen(function*() {
      for (const [name, base, follow] of clients) {
        const other = yield* server()
        const api = yield* server(`${other.origin}/landing`)
        const response = yield* Effect.flatMap(
          client,
          (c) => (follow ? HttpClient.followRedirects(c) : c).get(`${api.origin}/elsewhere`)
        )
          .pipe(Effect.provide(through(base)))
        expect(response.status, name).toBe(200)
        expect(yield* api.seen, name).toEqual([{ path: "/elsewhere", token: secrets.access, accountId: "acct_123" }])
        expect(yield* other.seen, name).toEqual([{ path: "/landing", token: null, accountId: null }])
      }
    }))

  it.scoped("a redirect on the request's origin keeps them", () =>
    Effect.gen(function*() {
      for (const [name, base, follow] of clients) {
        const api = yield* server()
        const response = yield* Effect.flatMap(client, (c) =>
          (follow ? HttpClient.followRedirects(c) : c).get(`${api.origin}/here`))
          .pipe(Effect.provide(through(base)))
        expect(response.status, name).toBe(200)
        expect((yield* api.seen).map((seen) => [seen.path, seen.token, seen.accountId]), name).toEqual([
          ["/here", secrets.access, "acct_123"],
          ["/final", secrets.access, "acct_123"]
        ])
      }
    }))

  it("the next hop, as fetch takes it: a 303 (and a 301 or 302 after a POST) goes on as a GET without a body; a 307 keeps both; a streamed body is not sent twice", () => {
    const post = HttpClientRequest.post("http://127.0.0.1:1/a?x=1").pipe(HttpClientRequest.bodyText("x"))
    const answer = (status: number, location = "/b") =>
      ({ status, headers: { location } }) as unknown as HttpClientResponse.HttpClientResponse
    for (const status of [301, 302, 303]) {
      const next = Option.getOrThrow(Redirects.nextHop(post, answer(status)))
      expect([next.method, next.url, next.body._tag, next.headers["content-type"]]).toEqual([
        "GET",
        "http://127.0.0.1:1/b",
        "Empty",
        undefined
      ])
    }
    const kept = Option.getOrThrow(Redirects.nextHop(post, answer(307, "https://other.example/c")))
    expect([kept.method, kept.url, kept.body._tag, kept.headers["content-type"]]).toEqual([
      "POST",
      "https://other.example/c",
      "Uint8Array",
      "text/plain"
    ])
    const streamed = HttpClientRequest.post("http://127.0.0.1:1/a").pipe(
      HttpClientRequest.bodyStream(Stream.make(new Uint8Array([1])))
    )
    expect(Option.isNone(Redirects.nextHop(streamed, answer(307)))).toBe(true)
    expect(Option.isNone(Redirects.nextHop(post, answer(200)))).toBe(true)
    expect(Option.isNone(Redirects.nextHop(post, answer(302, "file:///etc/passwd")))).toBe(true)
    const stripped = Redirects.withoutCredentialHeaders(post.pipe(
      HttpClientRequest.bearerToken("t"),
      HttpClientRequest.setHeader("ChatGPT-Account-Id", "acct"),
      HttpClientRequest.setHeader("x-kept", "yes")
    ))
    expect([stripped.headers["authorization"], stripped.headers["chatgpt-account-id"], stripped.headers["x-kept"]])
      .toEqual([undefined, undefined, "yes"])
    expect([stripped.method, stripped.body._tag, stripped.urlParams]).toEqual(["POST", "Uint8Array", post.urlParams])
  })

  it.scoped("a redirect loop ends with an error after 20 redirects, as fetch's does", () =>
    Effect.gen(function*() {
      const api = yield* server()
      const error = yield* Effect.flip(Effect.flatMap(client, (c) => c.get(`${api.origin}/loop`))).pipe(
        Effect.provide(through(NodeHttpClient.layerUndici))
      )
      expect(error).toMatchObject({ _tag: "RequestError", description: "more than 20 redirects" })
      expect((yield* api.seen).length).toBe(21)
    }))

  it.scoped("a 307 that leaves the origin: the request goes on, its method and body kept, without credentials", () =>
    Effect.gen(function*() {
      const other = yield* server()
      const api = yield* server(`${other.origin}/landing`, 307)
      const response = yield* Effect.flatMap(
        client,
        (c) =>
          HttpClient.followRedirects(c).execute(
            HttpClientRequest.post(`${api.origin}/elsewhere`).pipe(HttpClientRequest.bodyText("x"))
          )
      ).pipe(Effect.provide(through(NodeHttpClient.layerUndici)))
      expect(response.status).toBe(200)
      expect(yield* other.seen).toEqual([{ path: "/landing", token: null, accountId: null }])
    }))
})
