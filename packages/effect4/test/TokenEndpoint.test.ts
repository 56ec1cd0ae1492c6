import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"

const refresh = (url: string, refreshToken: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.post(url).pipe(
        HttpClientRequest.bodyUrlParams({ grant_type: "refresh_token", refresh_token: refreshToken })
      )
    )
    return { status: response.status, json: (yield* response.json) as Record<string, unknown> }
  })

describe("TokenEndpoint", () => {
  it.effect("rotates refresh tokens: each works once, a reused one is refused as reused", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(yield* TokenEndpoint.rotating("rt-0", 600))
      assert.match(endpoint.url, /^http:\/\/127\.0\.0\.1:\d+\/oauth\/token$/)

      const first = yield* refresh(endpoint.url, "rt-0")
      assert.strictEqual(first.status, 200)
      assert.strictEqual(first.json.refresh_token, "rt-1")
      assert.strictEqual(first.json.expires_in, 600)
      assert.match(String(first.json.access_token), /^eyJ/)

      const reused = yield* refresh(endpoint.url, "rt-0")
      assert.strictEqual(reused.status, 401)
      assert.deepStrictEqual(reused.json, { error: { code: "refresh_token_reused" } })

      const unknown = yield* refresh(endpoint.url, "never-issued")
      assert.strictEqual(unknown.status, 400)
      assert.strictEqual(unknown.json.error, "invalid_grant")

      const requests = yield* endpoint.requests
      assert.deepStrictEqual(requests.map((r) => [r.index, r.fields.refresh_token]), [
        [0, "rt-0"],
        [1, "rt-0"],
        [2, "never-issued"]
      ])
      assert.include(requests[0]!.contentType, "application/x-www-form-urlencoded")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.effect("answers as scripted, and the script can change", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(TokenEndpoint.oauthError(400, "invalid_grant"))
      const refused = yield* refresh(endpoint.url, "rt")
      assert.deepStrictEqual(refused, {
        status: 400,
        json: { error: "invalid_grant", error_description: "test endpoint: invalid_grant" }
      })
      yield* endpoint.setBehaviour(TokenEndpoint.codedError(401, "refresh_token_expired"))
      const expired = yield* refresh(endpoint.url, "rt")
      assert.strictEqual(expired.status, 401)
      assert.deepStrictEqual(expired.json.error, {
        code: "refresh_token_expired",
        message: "test endpoint: refresh_token_expired"
      })
      assert.strictEqual(yield* endpoint.count, 2)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.effect("closing its scope ends it at once, even while a scripted answer never comes (on the TestClock)", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const arrived = yield* Deferred.make<void>()
      const endpoint = yield* TokenEndpoint.make(() =>
        Effect.andThen(Deferred.succeed(arrived, undefined), Effect.never)
      )
        .pipe(Scope.provide(scope))
      const request = yield* Effect.forkChild(refresh(endpoint.url, "rt"))
      yield* Deferred.await(arrived)
      yield* Scope.close(scope, Exit.void)
      // The request ends too (a 503 or a cut connection), with no token in it.
      const exit = yield* Fiber.await(request)
      assert.isTrue(Exit.isFailure(exit) || exit.value.status === 503)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it("unsignedJwt carries its claims in a readable payload", () => {
    const [header, payload, signature] = TokenEndpoint.unsignedJwt({ email: "a@example.com", exp: 5 }).split(".")
    assert.deepStrictEqual(JSON.parse(Buffer.from(payload!, "base64url").toString()), {
      email: "a@example.com",
      exp: 5
    })
    assert.deepStrictEqual(JSON.parse(Buffer.from(header!, "base64url").toString()), { alg: "none", typ: "JWT" })
    assert.strictEqual(signature, "signature")
  })
})
