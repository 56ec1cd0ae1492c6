import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Redacted,
  Result,
  Scheduler
} from "effect"
import { FetchHttpClient, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { brokenEndpoints } from "../../../test/support/brokenEndpoints.js"
import { Configuration } from "../src/config/Configuration.js"
import { PermanentRefreshError, TransientRefreshError } from "../src/errors/Errors.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import {
  classifyFailure,
  errorCode,
  parseRetryAfter,
  TokenRefresher,
  TokenRefresherTest
} from "../src/oauth/TokenRefresher.js"
import type { HttpOptions } from "../src/oauth/TokenRefresher.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"

const refreshToken = "refresh-token-SECRET-2"

/** The HTTP refresher of the given options, over Node's HTTP client (undici). */
const httpRefresher = (tokenUrl: string, options: Partial<HttpOptions> = {}) =>
  Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl, ...options })).pipe(
    Layer.provide(NodeHttpClient.layerUndici)
  )

const refreshWith = (token: string) => TokenRefresher.use((refresher) => refresher.refresh(Redacted.make(token)))

/** One refresh against an endpoint behaving as `behaviour`: its outcome, and what the endpoint received. */
const refreshAgainst = (behaviour: TokenEndpoint.Behaviour, options: Partial<HttpOptions> = {}) =>
  Effect.gen(function*() {
    const endpoint = yield* TokenEndpoint.make(behaviour)
    const outcome = yield* refreshWith(refreshToken).pipe(
      Effect.result,
      Effect.provide(httpRefresher(endpoint.url, options))
    )
    return { outcome, requests: yield* endpoint.requests }
  })

const respond = (status: number, body: string, headers: Record<string, string> = {}): TokenEndpoint.Behaviour => () =>
  Effect.succeed(HttpServerResponse.text(body, { status, headers: { "content-type": "application/json", ...headers } }))

const json = (value: unknown) => JSON.stringify(value)

const success = <A, E>(outcome: Result.Result<A, E>): A => Option.getOrThrow(Result.getSuccess(outcome))
const failure = <A, E>(outcome: Result.Result<A, E>): E => Option.getOrThrow(Result.getFailure(outcome))

describe("TokenRefresher.makeHttp against a token endpoint on 127.0.0.1", () => {
  it.effect("sends the Codex JSON body and reads the new tokens", () =>
    Effect.gen(function*() {
      const { outcome, requests } = yield* refreshAgainst(
        respond(200, json({ access_token: "a2", refresh_token: "r2" }))
      )
      expect(requests).toHaveLength(1)
      expect(requests[0]?.contentType).toContain("application/json")
      expect(requests[0]?.fields).toEqual({
        client_id: "app_EMoamEEZ73f0CkXaXp7hrann",
        grant_type: "refresh_token",
        refresh_token: refreshToken
      })
      const tokens = success(outcome)
      expect(Redacted.value(tokens.accessToken!)).toBe("a2")
      expect(Redacted.value(tokens.refreshToken!)).toBe("r2")
      expect(tokens.idToken).toBeUndefined()
    }))

  it.effect("follows a rotating provider: each refresh token works once, the replaced one is refused for good", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(yield* TokenEndpoint.rotating("rt-0", 600))
      const [first, second, replayed] = yield* Effect.all([
        refreshWith("rt-0"),
        refreshWith("rt-1"),
        Effect.flip(refreshWith("rt-0"))
      ]).pipe(Effect.provide(httpRefresher(endpoint.url)))
      expect(Redacted.value(first.refreshToken!)).toBe("rt-1")
      expect(Duration.toSeconds(first.expiresIn!)).toBe(600)
      expect(Redacted.value(second.refreshToken!)).toBe("rt-2")
      expect(replayed).toBeInstanceOf(PermanentRefreshError)
      expect(replayed).toMatchObject({ reason: "reused", status: 401 })
      expect((yield* endpoint.requests).map((request) => request.fields.refresh_token)).toEqual([
        "rt-0",
        "rt-1",
        "rt-0"
      ])
    }))

  const odd: ReadonlyArray<[string, unknown, { access?: string; refresh?: string; id?: string; expiresIn?: number }]> =
    [
      ["expires_in as a numeric string", { access_token: "a2", refresh_token: "r2", expires_in: "3600" }, {
        access: "a2",
        refresh: "r2",
        expiresIn: 3600
      }],
      ["id_token: null", { access_token: "a2", refresh_token: "r2", id_token: null }, { access: "a2", refresh: "r2" }],
      ["a new refresh token without access_token", { refresh_token: "r2", expires_in: 60 }, { refresh: "r2" }],
      ["expires_in that is not a number", { access_token: "a2", expires_in: "soon" }, { access: "a2" }],
      ["a new id_token", { access_token: "a2", id_token: "h.p.s", expires_in: 90 }, {
        access: "a2",
        id: "h.p.s",
        expiresIn: 90
      }]
    ]
  for (const [name, body, want] of odd) {
    it.effect(`a 2xx with ${name}: every usable token is kept (a rotated refresh token is never dropped)`, () =>
      Effect.gen(function*() {
        const tokens = success((yield* refreshAgainst(respond(200, json(body)))).outcome)
        const value = (token: Redacted.Redacted<string> | undefined) =>
          token === undefined ? undefined : Redacted.value(token)
        expect(value(tokens.accessToken)).toBe(want.access)
        expect(value(tokens.refreshToken)).toBe(want.refresh)
        expect(value(tokens.idToken)).toBe(want.id)
        expect(tokens.expiresIn === undefined ? undefined : Duration.toSeconds(tokens.expiresIn)).toBe(want.expiresIn)
      }))
  }

  it.effect("a dead refresh token is a permanent failure, with the reason the endpoint gave", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [TokenEndpoint.Behaviour, PermanentRefreshError["reason"], number]> = [
        [TokenEndpoint.oauthError(400, "invalid_grant"), "invalid_grant", 400],
        [TokenEndpoint.oauthError(401, "invalid_client"), "invalid_client", 401],
        [TokenEndpoint.codedError(401, "refresh_token_expired"), "expired", 401],
        [TokenEndpoint.codedError(400, "refresh_token_invalidated"), "revoked", 400],
        [respond(401, "not json"), "other", 401]
      ]
      for (const [behaviour, reason, status] of cases) {
        const error = failure((yield* refreshAgainst(behaviour)).outcome)
        expect(error).toBeInstanceOf(PermanentRefreshError)
        expect(error).toMatchObject({ reason, status })
      }
    }))

  it.effect("trouble that may pass is a transient failure: the token is kept and retried later", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [TokenEndpoint.Behaviour, TransientRefreshError["kind"], number]> = [
        [respond(503, json({ error: "temporarily_unavailable" })), "status", 503],
        [TokenEndpoint.oauthError(429, "rate_limit_exceeded"), "status", 429],
        [respond(403, "<html>proxy</html>", { "content-type": "text/html" }), "status", 403],
        [TokenEndpoint.oauthError(400, "invalid_request"), "status", 400],
        [respond(200, json({ token_type: "Bearer" })), "body", 200],
        [respond(200, "{"), "body", 200]
      ]
      for (const [behaviour, kind, status] of cases) {
        const error = failure((yield* refreshAgainst(behaviour)).outcome)
        expect(error).toBeInstanceOf(TransientRefreshError)
        expect(error).toMatchObject({ kind, status })
      }
      const limited = failure((yield* refreshAgainst(respond(503, "{}", { "retry-after": "7" }))).outcome)
      expect(limited).toBeInstanceOf(TransientRefreshError)
      expect(Duration.toSeconds((limited as TransientRefreshError).retryAfter!)).toBe(7)
      expect(limited.message).toContain("HTTP 503")
    }))

  it.effect("an error body quoting the refresh token: the token appears in no error text", () =>
    Effect.gen(function*() {
      for (const status of [400, 401, 503]) {
        const error = failure(
          (yield* refreshAgainst(respond(status, json({ error: `refresh token ${refreshToken} is not valid` }))))
            .outcome
        )
        expect(`${error.message} ${JSON.stringify(error)} ${String(error)}`.toLowerCase()).not.toContain(
          refreshToken.toLowerCase()
        )
      }
      const error = failure((yield* refreshAgainst(respond(503, json({ error: refreshToken })))).outcome)
      expect(`${error.message} ${JSON.stringify(error)}`.toLowerCase()).not.toContain(refreshToken.toLowerCase())
    }))

  it.effect("a redirect is not followed, whatever the HTTP client: the refresh token reaches the configured endpoint only", () =>
    Effect.gen(function*() {
      const elsewhere = yield* TokenEndpoint.make(respond(200, json({ access_token: "stolen" })))
      const endpoint = yield* TokenEndpoint.make(() =>
        Effect.succeed(HttpServerResponse.redirect(elsewhere.url, { status: 307 }))
      )
      // fetch follows redirects unless told not to, even with a RequestInit of the user's own.
      const clients = [
        NodeHttpClient.layerUndici,
        NodeHttpClient.layerNodeHttp,
        FetchHttpClient.layer,
        FetchHttpClient.layer.pipe(Layer.provide(Layer.succeed(FetchHttpClient.RequestInit, { redirect: "follow" })))
      ]
      for (const client of clients) {
        const outcome = yield* refreshWith(refreshToken).pipe(
          Effect.result,
          Effect.provide(
            Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl: endpoint.url })).pipe(
              Layer.provide(client)
            )
          )
        )
        expect(failure(outcome)).toBeInstanceOf(TransientRefreshError)
        expect(failure(outcome)).toMatchObject({ kind: "status", status: 307 })
      }
      expect(yield* endpoint.count).toBe(clients.length)
      expect(yield* elsewhere.count).toBe(0)
    }))

  it.effect("an endpoint that does not answer is a transient timeout once the request's time is up", () =>
    Effect.gen(function*() {
      const arrived = yield* Deferred.make<void>()
      // Answered only once the test is over, so that the endpoint can close.
      const released = yield* Deferred.make<void>()
      const endpoint = yield* TokenEndpoint.make(() =>
        Effect.andThen(
          Deferred.succeed(arrived, undefined),
          Effect.as(Deferred.await(released), HttpServerResponse.text(json({ access_token: "late" })))
        )
      )
      const fiber = yield* refreshWith(refreshToken).pipe(
        Effect.result,
        Effect.provide(httpRefresher(endpoint.url, { timeout: Duration.minutes(5) })),
        Effect.forkChild
      )
      yield* Deferred.await(arrived)
      yield* TestClock.adjust(Duration.minutes(5))
      const error = failure(yield* Fiber.join(fiber))
      expect(error).toBeInstanceOf(TransientRefreshError)
      expect(error).toMatchObject({ kind: "timeout" })
      expect(error.message).toContain("did not answer within 5m")
      yield* Deferred.succeed(released, undefined)
    }))

  it.effect("a request the HTTP stack refuses to make is a transient failure, not a defect", () =>
    Effect.gen(function*() {
      const outcome = yield* refreshWith("x").pipe(
        Effect.result,
        Effect.provide(httpRefresher("htps://auth.example.com/oauth/token"))
      )
      expect(failure(outcome)).toBeInstanceOf(TransientRefreshError)
      expect(failure(outcome)).toMatchObject({ kind: "connection" })
    }))

  it.effect("sends an RFC 6749 form body with a client secret when configured", () =>
    Effect.gen(function*() {
      const { requests } = yield* refreshAgainst(respond(200, json({ access_token: "a2" })), {
        bodyFormat: "form",
        clientId: "my-client",
        clientSecret: Option.some(Redacted.make("shh"))
      })
      expect(requests[0]?.contentType).toContain("application/x-www-form-urlencoded")
      expect(requests[0]?.fields).toEqual({
        client_id: "my-client",
        client_secret: "shh",
        grant_type: "refresh_token",
        refresh_token: refreshToken
      })
    }))

  // On a busy server a fiber's steps run later than the request they made. `layerNodeHttpClient`
  // (undici) answers with one promise, which keeps a refused or reset connection's error until it is
  // awaited. (Effect 3's `node:http` client, listening from fibers it starts after sending, missed
  // such errors and waited forever; Effect 4's passes this test too.)
  it.live("a connection reset or refused while the refresh's steps run late is a transient failure at once", () =>
    Effect.gen(function*() {
      const broken = yield* Effect.acquireRelease(
        Effect.promise(brokenEndpoints),
        (endpoints) => Effect.promise(endpoints.close)
      )
      // Every step of every fiber three turns of the event loop late.
      const late = new Scheduler.MixedScheduler("async", (f) => {
        let turns = 3
        let timer = setImmediate(function hop() {
          timer = --turns > 0 ? setImmediate(hop) : setImmediate(f)
        })
        return () => clearImmediate(timer)
      })
      for (const tokenUrl of broken.urls) {
        const outcome = yield* refreshWith(refreshToken).pipe(
          Effect.provideService(Scheduler.Scheduler, late),
          Effect.result,
          // On the real clock: a guard against the hang this test is about (a refused connection
          // takes milliseconds), so that it fails with a sentence rather than at the test's timeout.
          Effect.timeoutOrElse({
            duration: Duration.seconds(20),
            orElse: () => Effect.fail(`${tokenUrl}: no answer, no error`)
          }),
          Effect.provide(
            Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl })).pipe(Layer.provide(layerNodeHttpClient))
          )
        )
        expect(Result.isFailure(outcome)).toBe(true)
        const error = Result.isFailure(outcome) ? outcome.failure : undefined
        expect(error).toBeInstanceOf(TransientRefreshError)
        expect(error).toMatchObject({ kind: "connection" })
      }
    }).pipe(Effect.scoped))
})

describe("TokenRefresher.layerHttp", () => {
  const configured = (env: Record<string, string>) =>
    TokenRefresher.layerHttp.pipe(
      Layer.provide(Layer.merge(NodeHttpClient.layerUndici, Configuration.layerConfig)),
      Layer.provide(Layer.succeed(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env)))
    )

  it.effect("reads the token endpoint and the body format from the environment through Config", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(respond(200, json({ access_token: "a2" })))
      yield* refreshWith("x").pipe(
        Effect.provide(configured({ CODEX_REFRESH_TOKEN_URL_OVERRIDE: endpoint.url, EFFECT_AUTH_REFRESH_BODY: "form" }))
      )
      const requests = yield* endpoint.requests
      expect(requests).toHaveLength(1)
      expect(requests[0]?.contentType).toContain("x-www-form-urlencoded")
    }))

  it.effect("with a sign-in issuer: discovers its token endpoint at the first refresh, retried while discovery fails", () =>
    Effect.gen(function*() {
      const tokens = yield* TokenEndpoint.make(respond(200, json({ access_token: "a2" })))
      const discovery = yield* TokenEndpoint.make(respond(503, "{}"))
      const issuer = new URL(discovery.url).origin
      const layer = configured({
        EFFECT_AUTH_ISSUER: issuer,
        EFFECT_AUTH_CLIENT_ID: "my-client",
        EFFECT_AUTH_CLIENT_SECRET: "client-secret-SECRET"
      })
      const [down, up, again] = yield* Effect.gen(function*() {
        const down = yield* Effect.flip(refreshWith(refreshToken))
        yield* discovery.setBehaviour(respond(
          200,
          json({
            issuer,
            authorization_endpoint: `${issuer}/authorize`,
            token_endpoint: tokens.url
          })
        ))
        return [down, yield* refreshWith(refreshToken), yield* refreshWith(refreshToken)] as const
      }).pipe(Effect.provide(layer))
      expect(down).toBeInstanceOf(TransientRefreshError)
      expect(down.message).toContain("configuration could not be read")
      expect(Redacted.value(up.accessToken!)).toBe("a2")
      expect(Redacted.value(again.accessToken!)).toBe("a2")
      // Discovered once, then kept.
      expect(yield* discovery.count).toBe(2)
      const requests = yield* tokens.requests
      expect(requests).toHaveLength(2)
      // An OpenID client with a secret authenticates with HTTP Basic: neither the id nor the secret is in the form.
      expect(requests[0]?.contentType).toContain("application/x-www-form-urlencoded")
      expect(requests[0]?.fields).toEqual({ grant_type: "refresh_token", refresh_token: refreshToken })
    }))

  it.effect("a token URL that is not http(s) is a configuration error at start", () =>
    Effect.gen(function*() {
      for (const url of ["htps://auth.example.com/oauth/token", "not a url", "file:///etc/passwd"]) {
        const exit = yield* Effect.exit(
          Effect.scoped(Layer.build(configured({ CODEX_REFRESH_TOKEN_URL_OVERRIDE: url })))
        )
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("CODEX_REFRESH_TOKEN_URL_OVERRIDE")
      }
    }))
})

describe("the classification table", () => {
  it("reads the error code from error.code, a string error, or a top-level code", () => {
    expect(errorCode({ error: { code: "A" } })).toBe("a")
    expect(errorCode({ error: "B" })).toBe("b")
    expect(errorCode({ code: "C" })).toBe("c")
    expect(errorCode("x")).toBeUndefined()
    expect(classifyFailure(504, undefined, Option.none())._tag).toBe("TransientRefreshError")
    expect(parseRetryAfter("soon", 0)).toEqual(Option.none())
    expect(parseRetryAfter("Thu, 01 Jan 1970 00:00:10 GMT", 4_000)).toEqual(Option.some(Duration.millis(6_000)))
  })
})

describe("TokenRefresher.layerTest", () => {
  it.effect("runs the script in order, repeats its last step, and records every call", () =>
    Effect.gen(function*() {
      const refresher = yield* TokenRefresher
      const first = yield* refresher.refresh(Redacted.make("one"))
      expect(Redacted.value(first.accessToken!)).toBe("a1")
      const second = yield* Effect.flip(refresher.refresh(Redacted.make("two")))
      const third = yield* Effect.flip(refresher.refresh(Redacted.make("three")))
      expect(second).toEqual(third)
      const calls = yield* TokenRefresherTest.use((test) => test.calls)
      expect(calls.map(Redacted.value)).toEqual(["one", "two", "three"])
    }).pipe(Effect.provide(TokenRefresher.layerTest([
      Effect.succeed({ accessToken: Redacted.make("a1") }),
      Effect.fail(new PermanentRefreshError({ reason: "reused" }))
    ]))))
})
