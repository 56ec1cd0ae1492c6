import { FetchHttpClient, HttpServerResponse } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Layer, Option, Redacted } from "effect"
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
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import * as Priority from "../src/util/priority.js"
import { brokenEndpoints } from "./support/brokenEndpoints.js"
import { httpRefresher } from "./support/endpoint.js"
import { secrets } from "./support/fixtures.js"

const refreshAgainst = (behaviour: TokenEndpoint.Behaviour, options: Parameters<typeof httpRefresher>[1] = {}) =>
  Effect.gen(function*() {
    const endpoint = yield* TokenEndpoint.make(behaviour)
    const outcome = yield* Effect.flatMap(
      TokenRefresher,
      (refresher) => refresher.refresh(Redacted.make(secrets.refresh))
    ).pipe(
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
      const { outcome, requests } = yield* refreshAgainst(
        respond(200, json({ access_token: "a2", refresh_token: "r2" }))
      )
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
    it.scoped(`a 2xx with ${name}: every usable token is kept (a rotated refresh token is never dropped)`, () =>
      Effect.gen(function*() {
        const { outcome } = yield* refreshAgainst(respond(200, json(body)))
        const tokens = Option.getOrThrow(Option.getRight(outcome))
        const value = (token: Redacted.Redacted<string> | undefined) =>
          token === undefined ? undefined : Redacted.value(token)
        expect(value(tokens.accessToken)).toBe(want.access)
        expect(value(tokens.refreshToken)).toBe(want.refresh)
        expect(value(tokens.idToken)).toBe(want.id)
        expect(tokens.expiresIn === undefined ? undefined : Duration.toSeconds(tokens.expiresIn)).toBe(want.expiresIn)
      }))
  }

  it.scoped("an error body quoting the refresh token: the token appears in no error text", () =>
    Effect.gen(function*() {
      for (const status of [400, 401, 503]) {
        const { outcome } = yield* refreshAgainst(
          respond(status, json({ error: `refresh token ${secrets.refresh} is not valid` }))
        )
        const error = Option.getOrThrow(Option.getLeft(outcome))
        // Lowercased as error codes are.
        expect(`${error.message} ${JSON.stringify(error)}`.toLowerCase()).not.toContain(secrets.refresh.toLowerCase())
      }
      const { outcome } = yield* refreshAgainst(respond(503, json({ error: secrets.refresh })))
      expect(Option.getOrThrow(Option.getLeft(outcome)).message.toLowerCase()).not.toContain(
        secrets.refresh.toLowerCase()
      )
    }))

  it.effect("a token URL that is not http(s) is a configuration error at start", () =>
    Effect.gen(function*() {
      for (const url of ["htps://auth.example.com/oauth/token", "not a url", "file:///etc/passwd"]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(TokenRefresher.layerHttp.pipe(
          Layer.provide(Layer.merge(NodeHttpClient.layerUndici, Configuration.layerConfig)),
          Layer.provide(
            Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["CODEX_REFRESH_TOKEN_URL_OVERRIDE", url]])))
          )
        ))))
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("CODEX_REFRESH_TOKEN_URL_OVERRIDE")
      }
    }))

  it.scoped("a request the HTTP stack refuses to make is a transient failure, not a defect", () =>
    Effect.gen(function*() {
      const outcome = yield* Effect.flatMap(TokenRefresher, (refresher) => refresher.refresh(Redacted.make("x"))).pipe(
        Effect.either,
        Effect.provide(
          Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl: "htps://auth.example.com/oauth/token" }))
            .pipe(
              Layer.provide(layerNodeHttpClient)
            )
        )
      )
      const error = Option.getOrThrow(Option.getLeft(outcome))
      expect(error).toBeInstanceOf(TransientRefreshError)
      expect(error).toMatchObject({ kind: "connection" })
    }))

  // A refresh holding a PostgreSQL lease runs on the priority scheduler, whose steps run a turn of
  // the event loop later (as any fiber does on a busy server). The platform's `node:http` client
  // listens for a request's errors from fibers it starts after making the request: an error
  // emitted before they run was heard by no one, and the refresh waited for the whole answer
  // limit (both cases below hang with that client). The library's client answers at once.
  it.scopedLive("a connection reset or refused while the refresh's steps run late is a transient failure at once", () =>
    Effect.gen(function*() {
      const broken = yield* Effect.acquireRelease(
        Effect.promise(brokenEndpoints),
        (endpoints) => Effect.promise(endpoints.close)
      )
      for (const tokenUrl of broken.urls) {
        const outcome = yield* Effect.flatMap(TokenRefresher, (refresher) => refresher.refresh(Redacted.make("x")))
          .pipe(
            Priority.first,
            Effect.either,
            // On the real clock: a guard against the hang this test is about (a refused connection takes
            // milliseconds), so that it fails with a sentence rather than at the test's timeout.
            Effect.timeoutFail({ duration: Duration.seconds(20), onTimeout: () => `${tokenUrl}: no answer, no error` }),
            Effect.provide(
              Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl })).pipe(
                Layer.provide(layerNodeHttpClient)
              )
            )
          )
        const error = Option.getOrThrow(Option.getLeft(outcome))
        expect(error).toBeInstanceOf(TransientRefreshError)
        expect(error).toMatchObject({ kind: "connection" })
      }
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
        Layer.provide(Layer.merge(NodeHttpClient.layerUndici, Configuration.layerConfig)),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
          new Map([
            ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", endpoint.url],
            ["EFFECT_AUTH_REFRESH_BODY", "form"]
          ])
        )))
      )
      yield* Effect.flatMap(TokenRefresher, (r) => r.refresh(Redacted.make("x"))).pipe(Effect.provide(layer))
      const requests = yield* endpoint.requests
      expect(requests).toHaveLength(1)
      expect(requests[0]?.contentType).toContain("x-www-form-urlencoded")
    }))

  it.scoped("a redirect is not followed, whatever the HTTP client: the refresh token reaches the configured endpoint only", () =>
    Effect.gen(function*() {
      const elsewhere = yield* TokenEndpoint.make(respond(200, json({ access_token: "stolen" })))
      const endpoint = yield* TokenEndpoint.make(() =>
        Effect.succeed(HttpServerResponse.redirect(elsewhere.url, { status: 307 }))
      )
      // fetch follows redirects unless told not to, even with a RequestInit of the user's own.
      const clients = [
        NodeHttpClient.layerUndici,
        NodeHttpClient.layer,
        FetchHttpClient.layer,
        FetchHttpClient.layer.pipe(Layer.provide(Layer.succeed(FetchHttpClient.RequestInit, { redirect: "follow" })))
      ]
      for (const client of clients) {
        const outcome = yield* Effect.flatMap(
          TokenRefresher,
          (refresher) => refresher.refresh(Redacted.make(secrets.refresh))
        )
          .pipe(
            Effect.either,
            Effect.provide(
              Layer.effect(TokenRefresher, TokenRefresher.makeHttp({ tokenUrl: endpoint.url })).pipe(
                Layer.provide(client)
              )
            )
          )
        const error = outcome._tag === "Left" ? outcome.left : undefined
        expect([error?._tag, error?.status]).toEqual(["TransientRefreshError", 307])
      }
      expect((yield* endpoint.requests).length).toBe(clients.length)
      expect((yield* elsewhere.requests).length).toBe(0)
    }))

  // Every failure answer (status, body, connection, timeout, redirect) is a row of the one
  // classification table: test/e2e/FaultMatrix.test.ts, on the HTTP client the library ships.

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
