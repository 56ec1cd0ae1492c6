import { FileSystem, Headers, HttpClient, HttpServerResponse } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Layer, Redacted, TestClock } from "effect"
import { AuthHttpClient } from "../src/client/AuthHttpClient.js"
import { scrubText } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import * as Api from "./support/api.js"
import { makeCapture } from "./support/capture.js"
import { httpRefresher } from "./support/endpoint.js"
import { chatgptJson, secrets, tokensOf } from "./support/fixtures.js"
import { dead, poll, rotated, scripted } from "./support/manager.js"

const allSecrets = [...Object.values(secrets), "rt-1", "login-refresh-SECRET"]

describe("no token reaches a log line, an error message, a span or a metric", () => {
  it.scoped("across poison, outage, recovery, rotation, sign-in, sign-out and a corrupt file", () =>
    Effect.gen(function*() {
      const capture = makeCapture()
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson()))
      const endpoint = yield* TokenEndpoint.make(TokenEndpoint.codedError(401, "refresh_token_reused"))
      const layer = Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(
          Layer.merge(Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })), httpRefresher(endpoint.url))
        ),
        Layer.provide(NodeContext.layer)
      )
      const errors: Array<string> = []
      const record = (error: Error) =>
        Effect.sync(() => errors.push(error.message, String(error), JSON.stringify(error)))

      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        yield* poll()
        yield* auth.refresh.pipe(Effect.tapError(record), Effect.ignore)
        // An outage, then a rotating provider.
        yield* auth.loginWithTokens(tokensOf(secrets.newAccess, secrets.newRefresh))
        yield* endpoint.setBehaviour(TokenEndpoint.codedError(503, "unavailable"))
        yield* TestClock.adjust("1 minute")
        yield* poll()
        yield* auth.refresh.pipe(Effect.tapError(record), Effect.ignore)
        yield* endpoint.setBehaviour(yield* TokenEndpoint.rotating(secrets.newRefresh))
        yield* TestClock.adjust("10 minutes")
        yield* poll()
        yield* auth.loginWithApiKey(Redacted.make(secrets.apiKey))
        yield* auth.loginWithTokens(tokensOf(secrets.access, "login-refresh-SECRET"))
        yield* auth.logout
        // A corrupt file: reported, never quoted.
        yield* fs.writeFileString(`${home}/auth.json`, `{"tokens": {"refresh_token": "${secrets.refresh}"`)
        yield* auth.reload.pipe(Effect.tapError(record), Effect.ignore)
      }).pipe(Effect.provide(Layer.merge(layer, capture.layer)))

      expect(yield* endpoint.count).toBe(3)
      const text = `${yield* capture.text}\n${errors.join("\n")}`
      expect(text).toContain("span AuthManager.refreshFlight")
      expect(text).toContain("Refresh token is dead")
      expect(text).toContain("not valid JSON")
      for (const secret of allSecrets) expect(text).not.toContain(secret)
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("the authorized client: no token from its Authorization header in a log line, a span or an error", () => {
  it.scoped("across requests, a 401 recovery, a failed status, a program that replaced the redacted header names, and poison", () =>
    Effect.gen(function*() {
      const capture = makeCapture()
      const api = yield* Api.make((request) =>
        Effect.succeed(request.token === secrets.access || request.token === "access-3-SECRET" ? 401 : 500)
      )
      const layer = AuthHttpClient.layer.pipe(
        Layer.provideMerge(scripted(chatgptJson(), [rotated(secrets.newAccess, secrets.newRefresh), dead("revoked")])),
        Layer.provideMerge(NodeHttpClient.layerUndici)
      )
      const errors: Array<string> = []
      const record = (error: unknown) =>
        Effect.sync(() =>
          errors.push(String(error), JSON.stringify(error), error instanceof Error ? error.message : "")
        )

      yield* Effect.gen(function*() {
        const client = (yield* AuthHttpClient).pipe(HttpClient.filterStatusOk)
        // 401, recovered; then the API fails with 500: a ResponseError that holds the request.
        yield* client.get(api.url).pipe(
          Effect.tapErrorCause((cause) => record(Cause.pretty(cause))),
          Effect.flip,
          Effect.flatMap(record)
        )
        // A program that replaced the redacted names: the header stays redacted in the client's span.
        yield* client.get(api.url).pipe(
          Effect.locally(Headers.currentRedactedNames, []),
          Effect.flip,
          Effect.flatMap(record)
        )
        // Later, the token is refused again and the refresh token is dead.
        yield* TestClock.adjust("1 minute")
        yield* api.setAnswer(() => Effect.succeed(401))
        yield* client.get(api.url).pipe(Effect.flip, Effect.flatMap(record))
        yield* client.get(api.url).pipe(Effect.flip, Effect.flatMap(record))
      }).pipe(Effect.provide(Layer.merge(layer, capture.layer)))

      const text = `${yield* capture.text}\n${errors.join("\n")}`
      expect(text).toContain("span AuthManager.reportUnauthorized")
      expect(text).toContain(`"http.request.header.authorization","<redacted>"`)
      expect(text).toContain("StatusCode")
      expect(text).toContain("CredentialsUnavailableError")
      if (process.env.SHOW_CAPTURE) console.log(text)
      for (const secret of [secrets.access, secrets.newAccess, secrets.refresh, secrets.newRefresh]) {
        expect(text).not.toContain(secret)
      }
    }))
})

describe("text from the token endpoint is never repeated", () => {
  it.scoped("an error body quoting the refresh token: not in the WARN line, the error, or the sidecar (codes only)", () =>
    Effect.gen(function*() {
      const capture = makeCapture()
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson()))
      const echo = (status: number): TokenEndpoint.Behaviour => () =>
        Effect.succeed(
          HttpServerResponse.unsafeJson({ error: `refresh token ${secrets.refresh} is not valid` }, { status })
        )
      const endpoint = yield* TokenEndpoint.make(echo(503))
      const layer = Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(
          Layer.merge(Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })), httpRefresher(endpoint.url))
        ),
        Layer.provide(NodeContext.layer)
      )
      const errors: Array<string> = []
      yield* Effect.flatMap(AuthManager, (auth) =>
        auth.refresh.pipe(
          Effect.tapError((error) => Effect.sync(() => errors.push(error.message, JSON.stringify(error)))),
          Effect.ignore
        )).pipe(Effect.provide(Layer.merge(layer, capture.layer)))
      const sidecar = yield* fs.readFileString(`${home}/auth-refresh-state.json`)
      expect(JSON.parse(sidecar)).toMatchObject({ state: "cooling-down", kind: "status", status: 503 })
      expect(JSON.parse(sidecar)).not.toHaveProperty("detail")
      const text = `${yield* capture.text}\n${errors.join("\n")}\n${sidecar}`.toLowerCase()
      expect(text).toContain("backing off")
      expect(text).not.toContain(secrets.refresh.toLowerCase())
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("scrubText", () => {
  it("replaces known secrets and JWT-shaped text, keeps one line, caps the length", () => {
    const text = `bad token ${secrets.access}\nand ${secrets.refresh} ${"x".repeat(1000)}`
    const safe = scrubText(text, [secrets.refresh])
    expect(safe).not.toContain(secrets.access)
    expect(safe).not.toContain(secrets.refresh)
    expect(safe).not.toContain("\n")
    expect(safe.length).toBeLessThanOrEqual(501)
    expect(safe.startsWith("bad token [redacted] and [redacted]")).toBe(true)
  })
})
