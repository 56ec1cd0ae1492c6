import { HttpServerResponse } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import { PermanentRefreshError, TransientRefreshError } from "../src/Errors.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { classifyFailure, errorCode, parseRetryAfter, TokenRefresher, TokenRefresherTest } from "../src/TokenRefresher.js"
import { httpRefresher, never } from "./support/endpoint.js"
import { secrets } from "./support/fixtures.js"

const refreshAgainst = (behaviour: TokenEndpoint.Behaviour, options: Parameters<typeof httpRefresher>[1] = {}) =>
  Effect.gen(function*() {
    const endpoint = yield* TokenEndpoint.make(behaviour)
    const outcome = yield* Effect.flatMap(TokenRefresher, (refresher) => refresher.refresh(Redacted.make(secrets.refresh))).pipe(
      Effect.either,
      Effect.provide(httpRefresher(endpoint.url, options))
    )
    return { outcome, requests: yield* endpoint.requests }
  })

const respond = (status: number, body: string, headers: Record<string, string> = {}): TokenEndpoint.Behaviour => () =>
  Effect.succeed(HttpServerResponse.text(body, { status, headers: { "content-type": "application/json", ...headers } }))

const json = (value: unknown) => JSON.stringify(value)

describe("TokenRefresher.layerHttp against a token endpoint on 127.0.0.1", () => {
  it.scoped("sends the Codex JSON body and reads the new tokens", () =>
    Effect.gen(function*() {
      const { outcome, requests } = yield* refreshAgainst(respond(200, json({ access_token: "a2", refresh_token: "r2" })))
      expect(requests).toHaveLength(1)
      expect(requests[0]?.contentType).toContain("application/json")
      expect(requests[0]?.fields).toEqual({
        client_id: "app_EMoamEEZ73f0CkXaXp7hrann",
        grant_type: "refresh_token",
        refresh_token: secrets.refresh
      })
      const tokens = Option.getOrThrow(Option.getRight(outcome))
      expect(Redacted.value(tokens.accessToken!)).toBe("a2")
      expect(Redacted.value(tokens.refreshToken!)).toBe("r2")
      expect(tokens.idToken).toBeUndefined()
    }))

  const odd: ReadonlyArray<[string, unknown, { access?: string; refresh?: string; id?: string; expiresIn?: number }]> = [
    ["expires_in as a numeric string", { access_token: "a2", refresh_token: "r2", expires_in: "3600" }, { access: "a2", refresh: "r2", expiresIn: 3600 }],
    ["id_token: null", { access_token: "a2", refresh_token: "r2", id_token: null }, { access: "a2", refresh: "r2" }],
    ["a new refresh token without access_token", { refresh_token: "r2", expires_in: 60 }, { refresh: "r2" }],
    ["expires_in that is not a number", { access_token: "a2", expires_in: "soon" }, { access: "a2" }],
    ["a new id_token", { access_token: "a2", id_token: "h.p.s", expires_in: 90 }, { access: "a2", id: "h.p.s", expiresIn: 90 }]
  ]
  for (const [name, body, want] of odd) {
    it.scoped(`a 2xx with ${name}: every usable token is kept (a rotated refresh token is never dropped)`, () =>
      Effect.gen(function*() {
        const { outcome } = yield* refreshAgainst(respond(200, json(body)))
        const tokens = Option.getOrThrow(Option.getRight(outcome))
        const value = (token: Redacted.Redacted<string> | undefined) => token === undefined ? undefined : Redacted.value(token)
        expect(value(tokens.accessToken)).toBe(want.access)
        expect(value(tokens.refreshToken)).toBe(want.refresh)
        expect(value(tokens.idToken)).toBe(want.id)
        expect(tokens.expiresIn === undefined ? undefined : Duration.toSeconds(tokens.expiresIn)).toBe(want.expiresIn)
      }))
  }

  it.scoped("an error body quoting the refresh token: the token appears in no error text", () =>
    Effect.gen(function*() {
      for (const status of [400, 401, 503]) {
        const { outcome } = yield* refreshAgainst(respond(status, json({ error: `refresh token ${secrets.refresh} is not valid` })))
        const error = Option.getOrThrow(Option.getLeft(outcome))
        // Lowercased as error codes are.
        expect(`${error.message} ${JSON.stringify(error)}`.toLowerCase()).not.toContain(secrets.refresh.toLowerCase())
      }
      const { outcome } = yield* refreshAgainst(respond(503, json({ error: secrets.refresh })))
      expect(Option.getOrThrow(Option.getLeft(outcome)).message.toLowerCase()).not.toContain(secrets.refresh.toLowerCase())
    }))

  it.effect("a token URL that is not http(s) is a configuration error at start", () =>
    Effect.gen(function*() {
      for (const url of ["htps://auth.example.com/oauth/token", "not a url", "file:///etc/passwd"]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(TokenRefresher.layerHttp.pipe(
          Layer.provide(NodeHttpClient.layerUndici),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["CODEX_REFRESH_TOKEN_URL_OVERRIDE", url]]))))
        ))))
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("CODEX_REFRESH_TOKEN_URL_OVERRIDE")
      }
    }))

  it.scoped("a request the HTTP stack refuses to make is a transient failure, not a defect", () =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(TokenRefresher, (refresher) => refresher.refresh(Redacted.make("x"))).pipe(
        Effect.either,
        Effect.provide(TokenRefresher.layerHttpWith({ tokenUrl: "htps://auth.example.com/oauth/token" }).pipe(
          Layer.provide(NodeHttpClient.layer)
        ))
      )
      const error = Option.getOrThrow(Option.getLeft(outcome))
      expect(error).toBeInstanceOf(TransientRefreshError)
      expect(error).toMatchObject({ kind: "connection" })
    }))

  it.scoped("sends an RFC 6749 form body with a client secret when configured", () =>
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
        refresh_token: secrets.refresh
      })
    }))

  it.scoped("reads the token URL from CODEX_REFRESH_TOKEN_URL_OVERRIDE through Config", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(respond(200, json({ access_token: "a2" })))
      const layer = TokenRefresher.layerHttp.pipe(
        Layer.provide(NodeHttpClient.layerUndici),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
          ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", endpoint.url],
          ["EFFECT_AUTH_REFRESH_BODY", "form"]
        ]))))
      )
      yield* Effect.flatMap(TokenRefresher, (r) => r.refresh(Redacted.make("x"))).pipe(Effect.provide(layer))
      const requests = yield* endpoint.requests
      expect(requests).toHaveLength(1)
      expect(requests[0]?.contentType).toContain("x-www-form-urlencoded")
    }))

  const permanent: ReadonlyArray<[string, number, unknown, PermanentRefreshError["reason"]]> = [
    ["error.code refresh_token_expired", 401, { error: { code: "refresh_token_expired" } }, "expired"],
    ["error.code refresh_token_reused", 401, { error: { code: "refresh_token_reused" } }, "reused"],
    ["error.code refresh_token_invalidated", 401, { error: { code: "refresh_token_invalidated" } }, "revoked"],
    ["RFC 6749 invalid_grant on 400", 400, { error: "invalid_grant", error_description: "x" }, "invalid_grant"],
    ["invalid_client", 401, { error: "invalid_client" }, "invalid_client"],
    ["unauthorized_client", 400, { error: "unauthorized_client" }, "invalid_client"],
    ["top-level code, upper case", 401, { code: "REFRESH_TOKEN_REUSED" }, "reused"],
    ["401 with an unknown code", 401, { error: "something_else" }, "other"],
    ["401 with an empty body", 401, "", "other"]
  ]
  for (const [name, status, body, reason] of permanent) {
    it.scoped(`permanent: ${name} → ${reason}`, () =>
      Effect.gen(function*() {
        const { outcome } = yield* refreshAgainst(respond(status, typeof body === "string" ? body : json(body)))
        const error = Option.getOrThrow(Option.getLeft(outcome))
        expect(error).toBeInstanceOf(PermanentRefreshError)
        expect((error as PermanentRefreshError).reason).toBe(reason)
        expect(error.message).toMatch(/sign in again/)
      }))
  }

  const transient: ReadonlyArray<[string, TokenEndpoint.Behaviour, TransientRefreshError["kind"], number | undefined]> = [
    ["408", respond(408, ""), "status", undefined],
    ["429 with Retry-After in seconds", respond(429, "", { "retry-after": "7" }), "status", 7_000],
    ["429 with Retry-After as an HTTP date", respond(429, "", { "retry-after": new Date(30_000).toUTCString() }), "status", 30_000],
    ["429 without Retry-After", respond(429, ""), "status", undefined],
    ["500", respond(500, json({ error: "server_error" })), "status", undefined],
    ["502", respond(502, "<html>bad gateway</html>"), "status", undefined],
    ["503", respond(503, ""), "status", undefined],
    ["403 (not an OAuth answer: back off, do not poison)", respond(403, ""), "status", undefined],
    ["200 with HTML", respond(200, "<html>login</html>"), "body", undefined],
    ["200 with truncated JSON", respond(200, `{"access_token": "a`), "body", undefined],
    ["200 with no token at all", respond(200, json({ token_type: "Bearer", expires_in: 3600 })), "body", undefined],
    ["200 with empty tokens", respond(200, json({ access_token: "", refresh_token: null })), "body", undefined],
    ["a body over the size limit", respond(200, "x".repeat(2 * 1024 * 1024)), "body", undefined]
  ]
  for (const [name, behaviour, kind, retryAfter] of transient) {
    it.scoped(`transient: ${name}`, () =>
      Effect.gen(function*() {
        const { outcome } = yield* refreshAgainst(behaviour)
        const error = Option.getOrThrow(Option.getLeft(outcome))
        expect(error).toBeInstanceOf(TransientRefreshError)
        expect((error as TransientRefreshError).kind).toBe(kind)
        expect((error as TransientRefreshError).retryAfter?.pipe(Duration.toMillis)).toBe(retryAfter)
      }))
  }

  it.scoped("transient: a connection refused", () =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(TokenRefresher, (r) => r.refresh(Redacted.make("x"))).pipe(
        Effect.flip,
        Effect.provide(httpRefresher("http://127.0.0.1:1/oauth/token"))
      )
      expect(outcome).toMatchObject({ _tag: "TransientRefreshError", kind: "connection" })
    }))

  it.scoped("transient: no answer within the timeout", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(never)
      const fiber = yield* Effect.flatMap(TokenRefresher, (r) => r.refresh(Redacted.make("x"))).pipe(
        Effect.flip,
        Effect.provide(httpRefresher(endpoint.url, { timeout: Duration.seconds(30) })),
        Effect.fork
      )
      while ((yield* endpoint.count) === 0) yield* Effect.yieldNow()
      yield* TestClock.adjust("30 seconds")
      expect(yield* Fiber.join(fiber)).toMatchObject({ _tag: "TransientRefreshError", kind: "timeout" })
    }), { timeout: 10_000 })

  it("reads the error code from error.code, a string error, or a top-level code", () => {
    expect(errorCode({ error: { code: "A" } })).toBe("a")
    expect(errorCode({ error: "B" })).toBe("b")
    expect(errorCode({ code: "C" })).toBe("c")
    expect(errorCode("x")).toBeUndefined()
    expect(classifyFailure(504, undefined, Option.none())._tag).toBe("TransientRefreshError")
    expect(parseRetryAfter("soon", 0)).toEqual(Option.none())
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
      const calls = yield* Effect.flatMap(TokenRefresherTest, (t) => t.calls)
      expect(calls.map(Redacted.value)).toEqual(["one", "two", "three"])
    }).pipe(Effect.provide(TokenRefresher.layerTest([
      Effect.succeed({ accessToken: Redacted.make("a1") }),
      Effect.fail(new PermanentRefreshError({ reason: "reused" }))
    ]))))
})
