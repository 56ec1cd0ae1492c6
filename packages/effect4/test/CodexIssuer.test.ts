import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { createHash } from "node:crypto"
import * as CodexIssuer from "../src/testing/CodexIssuer.js"

const clientId = "app_EMoamEEZ73f0CkXaXp7hrann"
const verifier = "v".repeat(64)
const challenge = createHash("sha256").update(verifier).digest("base64url")
const redirectUri = "http://127.0.0.1:1455/auth/callback"

const postForm = (url: string, fields: Record<string, string>) =>
  Effect.gen(function*() {
    const response = yield* HttpClient.execute(
      HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUrlParams(fields))
    )
    return { status: response.status, json: (yield* response.json) as Record<string, unknown> }
  })

const authorize = (issuer: CodexIssuer.CodexIssuer) =>
  Effect.gen(function*() {
    const response = yield* HttpClient.get(`${issuer.issuer}/oauth/authorize`, {
      urlParams: {
        response_type: "code",
        client_id: clientId,
        redirect_uri: redirectUri,
        code_challenge: challenge,
        code_challenge_method: "S256",
        state: "st-1"
      }
    })
    assert.strictEqual(response.status, 302)
    return new URL(response.headers["location"]!)
  })

describe("CodexIssuer", () => {
  it.effect("authorizes with PKCE: a code works once, with the right verifier only", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const back = yield* authorize(issuer)
      assert.strictEqual(back.origin + back.pathname, redirectUri)
      assert.strictEqual(back.searchParams.get("state"), "st-1")
      const code = back.searchParams.get("code")!
      assert.include(code, "SECRET")

      const exchange = { grant_type: "authorization_code", code, redirect_uri: redirectUri, client_id: clientId }
      const wrong = yield* postForm(issuer.tokenUrl, { ...exchange, code_verifier: "w".repeat(64) })
      assert.deepStrictEqual([wrong.status, wrong.json.error_description], [400, "PKCE verification failed"])

      const second = yield* authorize(issuer)
      const tokens = yield* postForm(issuer.tokenUrl, {
        ...exchange,
        code: second.searchParams.get("code")!,
        code_verifier: verifier
      })
      assert.strictEqual(tokens.status, 200)
      assert.match(String(tokens.json.id_token), /^eyJ/)
      const again = yield* postForm(issuer.tokenUrl, {
        ...exchange,
        code: second.searchParams.get("code")!,
        code_verifier: verifier
      })
      assert.strictEqual(again.json.error_description, "authorization code already used")

      const refreshed = yield* postForm(issuer.tokenUrl, {
        grant_type: "refresh_token",
        refresh_token: String(tokens.json.refresh_token)
      })
      assert.strictEqual(refreshed.status, 200)
      const reused = yield* postForm(issuer.tokenUrl, {
        grant_type: "refresh_token",
        refresh_token: String(tokens.json.refresh_token)
      })
      assert.strictEqual(reused.status, 401)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.effect("sends the chosen error back to the client", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* issuer.setDecision({ _tag: "Error", error: "access_denied" })
      const back = yield* authorize(issuer)
      assert.strictEqual(back.searchParams.get("error"), "access_denied")
      assert.isNull(back.searchParams.get("code"))
      assert.strictEqual((yield* issuer.authorizeRequests).length, 1)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))

  it.effect("device codes wait for approval, then give a code to exchange", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make({ deviceInterval: 1 })
      const start = yield* postForm(`${issuer.issuer}/api/accounts/deviceauth/usercode`, { client_id: clientId })
      assert.strictEqual(start.json.interval, "1")
      const poll = { device_auth_id: String(start.json.device_auth_id), user_code: String(start.json.user_code) }
      const pending = yield* postForm(`${issuer.issuer}/api/accounts/deviceauth/token`, poll)
      assert.strictEqual(pending.status, 403)
      assert.isFalse(yield* issuer.approveDevice("NOPE-NOPE"))
      assert.isTrue(yield* issuer.approveDevice(String(start.json.user_code).toLowerCase()))
      const approved = yield* postForm(`${issuer.issuer}/api/accounts/deviceauth/token`, poll)
      assert.strictEqual(approved.status, 200)
      const tokens = yield* postForm(issuer.tokenUrl, {
        grant_type: "authorization_code",
        code: String(approved.json.authorization_code),
        redirect_uri: `${issuer.issuer}/deviceauth/callback`,
        client_id: clientId,
        code_verifier: String(approved.json.code_verifier)
      })
      assert.strictEqual(tokens.status, 200)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
})
