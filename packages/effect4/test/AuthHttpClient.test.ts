import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Ref } from "effect"
import { HttpClient, HttpClientRequest, HttpClientResponse, HttpServerRequest, HttpServerResponse } from "effect/http"
import { AuthHttpClient } from "../src/client/AuthHttpClient.js"
import * as Redirects from "../src/client/internal/redirects.js"
import { CredentialsUnavailableError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { type ScriptStep, TokenRefresher, TokenRefresherTest } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { serveOnLoopback } from "../src/testing/loopback.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"

const secrets = {
  access: unsignedJwt({ exp: 4_102_444_800, marker: "access-token-SECRET-1" }),
  refresh: "refresh-token-SECRET-2",
  newAccess: "access-token-SECRET-4",
  newRefresh: "refresh-token-SECRET-5"
}

/** A ChatGPT `auth.json` as the Codex CLI writes it, refreshed long ago. */
const chatgptJson = {
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: {
    id_token: unsignedJwt({
      email: "ada@example.com",
      "https://api.openai.com/auth": { chatgpt_account_id: "acct_123" }
    }),
    access_token: secrets.access,
    refresh_token: secrets.refresh,
    account_id: "acct_123"
  },
  last_refresh: new Date(-10 * 86_400_000).toISOString()
}

const rotated: ScriptStep = Effect.succeed({
  accessToken: Redacted.make(secrets.newAccess),
  refreshToken: Redacted.make(secrets.newRefresh)
})

/** The authorized client over a real Node HTTP client, a memory store and the scripted refresher. */
const stack = (json: object | undefined, script: ReadonlyArray<ScriptStep>) =>
  AuthHttpClient.layer.pipe(
    Layer.provideMerge(
      Layer.effect(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(Layer.merge(AuthStore.layerMemory(json), TokenRefresher.layerTest(script)))
      )
    ),
    Layer.provideMerge(NodeHttpClient.layerUndici)
  )

interface Received {
  readonly path: string
  readonly token: string | null
  readonly accountId: string | null
}

/**
 * An API on 127.0.0.1 that records the credentials of each request: `/v1/me` answers 200, or 401
 * for a token in `refused`; `/redirect?to=URL` answers 302 to it.
 */
const makeApi = (refused: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const received = yield* Ref.make<ReadonlyArray<Received>>([])
    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, "http://127.0.0.1")
      const authorization = request.headers["authorization"]
      const token = authorization?.startsWith("Bearer ") ? authorization.slice("Bearer ".length) : null
      yield* Ref.update(received, (all) => [...all, {
        path: url.pathname,
        token,
        accountId: request.headers["chatgpt-account-id"] ?? null
      }])
      if (url.pathname === "/redirect") {
        return HttpServerResponse.empty({ status: 302, headers: { location: url.searchParams.get("to") ?? "/" } })
      }
      return token === null || refused.includes(token)
        ? HttpServerResponse.jsonUnsafe({ error: "invalid_token" }, { status: 401 })
        : HttpServerResponse.jsonUnsafe({ ok: true })
    })
    const origin = `http://127.0.0.1:${yield* serveOnLoopback(app)}`
    return { origin, url: `${origin}/v1/me`, received: Ref.get(received) }
  })

const refreshCalls = TokenRefresherTest.use((test) => Effect.map(test.calls, (calls) => calls.length))

describe("AuthHttpClient: the credentials on every request", () => {
  it.effect("ChatGPT: the bearer access token and the ChatGPT-Account-Id header", () =>
    Effect.gen(function*() {
      const api = yield* makeApi([])
      const response = yield* AuthHttpClient.use((client) => client.get(api.url)).pipe(
        Effect.provide(stack(chatgptJson, []))
      )
      expect(response.status).toBe(200)
      expect(yield* api.received).toEqual([{ path: "/v1/me", token: secrets.access, accountId: "acct_123" }])
    }))

  it.effect("logged out: a typed error that says to sign in, and no request", () =>
    Effect.gen(function*() {
      const api = yield* makeApi([])
      const error = yield* Effect.flip(AuthHttpClient.use((client) => client.get(api.url))).pipe(
        Effect.provide(stack(undefined, []))
      )
      expect(error).toBeInstanceOf(CredentialsUnavailableError)
      expect(error).toMatchObject({ reason: "logged_out" })
      expect(yield* api.received).toEqual([])
    }))

  it.effect("layerHttpClient: a plain HttpClient; no credentials is an HttpClientError caused by the typed error", () =>
    Effect.gen(function*() {
      const api = yield* makeApi([])
      const layer = AuthHttpClient.layerHttpClient.pipe(
        Layer.provide(stack(undefined, [])),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const error = yield* Effect.flip(HttpClient.get(api.url)).pipe(Effect.provide(layer))
      expect(error._tag).toBe("HttpClientError")
      expect(error.reason).toMatchObject({
        _tag: "TransportError",
        cause: { _tag: "CredentialsUnavailableError", reason: "logged_out" }
      })
    }))
})

describe("AuthHttpClient: one recovery on 401", () => {
  it.effect("a refused token is refreshed once and the request sent again with the new one", () =>
    Effect.gen(function*() {
      const api = yield* makeApi([secrets.access])
      const status = yield* Effect.gen(function*() {
        const response = yield* AuthHttpClient.use((client) => client.get(api.url))
        expect(yield* refreshCalls).toBe(1)
        return response.status
      }).pipe(Effect.provide(stack(chatgptJson, [rotated])))
      expect(status).toBe(200)
      expect((yield* api.received).map((r) => r.token)).toEqual([secrets.access, secrets.newAccess])
    }))

  it.effect("a second 401 is the caller's: one refresh, two requests", () =>
    Effect.gen(function*() {
      const api = yield* makeApi([secrets.access, secrets.newAccess])
      const status = yield* Effect.gen(function*() {
        const response = yield* AuthHttpClient.use((client) => client.get(api.url))
        expect(yield* refreshCalls).toBe(1)
        return response.status
      }).pipe(Effect.provide(stack(chatgptJson, [rotated])))
      expect(status).toBe(401)
      expect((yield* api.received).map((r) => r.token)).toEqual([secrets.access, secrets.newAccess])
    }))

  it.effect("a POST body is sent again with the retry", () =>
    Effect.gen(function*() {
      const api = yield* makeApi([secrets.access])
      const response = yield* AuthHttpClient.use((client) =>
        client.execute(HttpClientRequest.post(api.url).pipe(HttpClientRequest.bodyJsonUnsafe({ q: 1 })))
      ).pipe(Effect.provide(stack(chatgptJson, [rotated])))
      expect(response.status).toBe(200)
      expect((yield* api.received).length).toBe(2)
    }))
})

describe("AuthHttpClient: the credentials stay on their origin", () => {
  it.effect("a redirect on the same origin keeps them; one to another origin goes on without them", () =>
    Effect.gen(function*() {
      const home = yield* makeApi([])
      const elsewhere = yield* makeApi([])
      const target = `${home.origin}/redirect?to=${encodeURIComponent(`${elsewhere.origin}/v1/me`)}`
      const start = `${home.origin}/redirect?to=${encodeURIComponent(target)}`
      const response = yield* AuthHttpClient.use((client) => client.get(start)).pipe(
        Effect.provide(stack(chatgptJson, []))
      )
      // The other origin has no credentials: its 401 is returned as it is.
      expect(response.status).toBe(401)
      // The response is the last hop's, and what it holds of its request carries no credential.
      expect(response.request.url).toBe(`${elsewhere.origin}/v1/me`)
      expect(response.request.headers["authorization"]).toBeUndefined()
      expect(yield* home.received).toEqual([
        { path: "/redirect", token: secrets.access, accountId: "acct_123" },
        { path: "/redirect", token: secrets.access, accountId: "acct_123" }
      ])
      expect(yield* elsewhere.received).toEqual([{ path: "/v1/me", token: null, accountId: null }])
    }))

  it.effect("a 401 from another origin says nothing of the credentials: no refresh", () =>
    Effect.gen(function*() {
      const home = yield* makeApi([])
      const elsewhere = yield* makeApi([])
      const start = `${home.origin}/redirect?to=${encodeURIComponent(`${elsewhere.origin}/v1/me`)}`
      const calls = yield* Effect.gen(function*() {
        const response = yield* AuthHttpClient.use((client) => client.get(start))
        expect(response.status).toBe(401)
        return yield* refreshCalls
      }).pipe(Effect.provide(stack(chatgptJson, [rotated])))
      expect(calls).toBe(0)
    }))

  it.effect("a transport error holds the caller's request, not the one with the token", () =>
    Effect.gen(function*() {
      // A port that was listening a moment ago: nothing answers there now.
      const port = yield* Effect.scoped(Effect.map(makeApi([]), (api) => new URL(api.origin).port))
      const error = yield* Effect.flip(AuthHttpClient.use((client) => client.get(`http://127.0.0.1:${port}/v1/me`)))
        .pipe(Effect.provide(stack(chatgptJson, [])))
      expect(error._tag).toBe("HttpClientError")
      if (error._tag !== "HttpClientError") return
      expect(error.reason._tag).toBe("TransportError")
      expect(error.request.headers["authorization"]).toBeUndefined()
      expect(JSON.stringify(error)).not.toContain("SECRET")
    }))

  it.effect("the response and its errors hold the caller's request, not the one with the token", () =>
    Effect.gen(function*() {
      const api = yield* makeApi([])
      const response = yield* AuthHttpClient.use((client) => client.get(api.url)).pipe(
        Effect.provide(stack(chatgptJson, []))
      )
      expect(response.request.headers["authorization"]).toBeUndefined()
      expect(JSON.stringify(response)).not.toContain("SECRET")
    }))
})

describe("the redirects the authorized client follows itself", () => {
  const responseTo = (request: HttpClientRequest.HttpClientRequest, status: number, location?: string) =>
    HttpClientResponse.fromWeb(
      request,
      new Response(null, { status, headers: location === undefined ? {} : { location } })
    )

  it("303, and 301 or 302 after a POST, go on as a GET without a body; 307 and 308 keep both", () => {
    const post = HttpClientRequest.post("http://127.0.0.1:1/a").pipe(HttpClientRequest.bodyJsonUnsafe({ q: 1 }))
    for (const status of [301, 302, 303]) {
      const next = Option.getOrThrow(Redirects.nextHop(post, responseTo(post, status, "/b")))
      expect([next.method, next.url, next.body._tag]).toEqual(["GET", "http://127.0.0.1:1/b", "Empty"])
      expect(next.headers["content-type"]).toBeUndefined()
    }
    for (const status of [307, 308]) {
      const next = Option.getOrThrow(Redirects.nextHop(post, responseTo(post, status, "http://127.0.0.1:2/c")))
      expect([next.method, next.url, next.body._tag]).toEqual(["POST", "http://127.0.0.1:2/c", "Uint8Array"])
    }
  })

  it("nothing to follow: no Location, another scheme, a status that is not a redirect", () => {
    const get = HttpClientRequest.get("http://127.0.0.1:1/a")
    expect(Option.isNone(Redirects.nextHop(get, responseTo(get, 302)))).toBe(true)
    expect(Option.isNone(Redirects.nextHop(get, responseTo(get, 302, "file:///etc/passwd")))).toBe(true)
    expect(Option.isNone(Redirects.nextHop(get, responseTo(get, 304, "/b")))).toBe(true)
  })

  it("without credentials: every header that carries one is dropped, the others kept", () => {
    const request = HttpClientRequest.get("http://127.0.0.1:1/a").pipe(
      HttpClientRequest.setHeaders({
        authorization: "Bearer x",
        "proxy-authorization": "Basic y",
        cookie: "a=b",
        "chatgpt-account-id": "acct",
        accept: "application/json"
      })
    )
    expect({ ...Redirects.withoutCredentialHeaders(request).headers }).toEqual({ accept: "application/json" })
  })
})
