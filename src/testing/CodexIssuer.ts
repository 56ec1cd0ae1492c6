/**
 * A scripted Codex-compatible issuer on 127.0.0.1, for tests of sign-in:
 * `/oauth/authorize` answers with a 302 back to the client (approved, or an
 * error you choose), `/oauth/token` exchanges codes only with the right PKCE
 * verifier, redirect URI and client id (a code works once), and rotates
 * refresh tokens; Codex's device endpoints (`/api/accounts/deviceauth/…`)
 * wait until you approve the user code (`approveDevice`, or the form at
 * `/codex/device`). Every code and token it makes holds the word SECRET and
 * its JWTs start with `eyJ`, so a test can search output for leaks.
 */
import { challengeOf } from "@effect-auth-manager/core/pkce"
import * as TestIssuer from "@effect-auth-manager/core/testIssuer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Clock, Effect, Ref } from "effect"
import { randomBytes } from "node:crypto"
import { fieldsOf, serveOnLoopback } from "./loopback.js"
import { unsignedJwt } from "./TokenEndpoint.js"

export interface Options {
  readonly clientId?: string
  readonly email?: string
  readonly accountId?: string
  readonly planType?: string
  /** The `interval` the device endpoint asks for, in seconds (sent as a string, as the real one does). Default 5. */
  readonly deviceInterval?: number
  readonly accessTokenLifetimeSeconds?: number
}

/** What `/oauth/authorize` does with the next requests. */
export type Decision = TestIssuer.Decision

/** A request the issuer received at one of its POST endpoints (secrets in clear: test data only). */
export interface Received {
  readonly path: string
  readonly contentType: string
  readonly body: string
  readonly fields: Readonly<Record<string, string>>
}

export interface CodexIssuer {
  /** `http://127.0.0.1:PORT`: the value for `CODEX_APP_SERVER_LOGIN_ISSUER`. */
  readonly issuer: string
  /** `{issuer}/oauth/token`: the value for `CODEX_REFRESH_TOKEN_URL_OVERRIDE`. */
  readonly tokenUrl: string
  /** The query of every authorize request, in order. */
  readonly authorizeRequests: Effect.Effect<ReadonlyArray<ReadonlyArray<readonly [string, string]>>>
  /** Every POST, in order. */
  readonly received: Effect.Effect<ReadonlyArray<Received>>
  readonly setDecision: (decision: Decision) => Effect.Effect<void>
  /** Approves the device sign-in that shows this user code. */
  readonly approveDevice: (userCode: string) => Effect.Effect<boolean>
}

const secret = (prefix: string) => `${prefix}_SECRET_${randomBytes(12).toString("base64url")}`

const oauthError = (status: number, error: string, description: string) =>
  HttpServerResponse.unsafeJson({ error, error_description: description }, { status })

/** Starts the issuer on an ephemeral port of 127.0.0.1 for the life of the scope. */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const clientId = options.clientId ?? "app_EMoamEEZ73f0CkXaXp7hrann"
    const lifetime = options.accessTokenLifetimeSeconds ?? 3600
    const state = yield* Ref.make(TestIssuer.initialIssuer)
    const authorizeRequests = yield* Ref.make<ReadonlyArray<ReadonlyArray<readonly [string, string]>>>([])
    const received = yield* Ref.make<ReadonlyArray<Received>>([])
    let issuer = ""

    const issueTokens = Effect.gen(function*() {
      const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      const refreshToken = secret("rt")
      const n = yield* Ref.modify(state, TestIssuer.issue(refreshToken))
      return HttpServerResponse.unsafeJson({
        id_token: unsignedJwt({
          iss: issuer,
          aud: clientId,
          sub: "user-1",
          exp: now + lifetime,
          email: options.email ?? "ada@example.com",
          "https://api.openai.com/auth": {
            chatgpt_account_id: options.accountId ?? "acct_test_1",
            chatgpt_plan_type: options.planType ?? "plus",
            chatgpt_user_id: "user-1"
          }
        }),
        access_token: unsignedJwt({ iss: issuer, exp: now + lifetime, n, marker: "SECRET" }),
        refresh_token: refreshToken,
        token_type: "Bearer",
        expires_in: lifetime
      })
    })

    const authorize = (query: URLSearchParams) =>
      Effect.gen(function*() {
        yield* Ref.update(authorizeRequests, (all) => [...all, [...query.entries()]])
        const redirectUri = query.get("redirect_uri") ?? ""
        if (!TestIssuer.isValidAuthorize(query, clientId)) {
          return HttpServerResponse.text("invalid authorize request", { status: 400 })
        }
        const target = new URL(redirectUri)
        const decision = (yield* Ref.get(state)).decision
        if (decision._tag === "Error") {
          target.searchParams.set("error", decision.error)
        } else {
          const code = secret("ac")
          yield* Ref.update(
            state,
            TestIssuer.grantCode(code, { challenge: query.get("code_challenge") ?? "", redirectUri, clientId })
          )
          target.searchParams.set("code", code)
        }
        target.searchParams.set("state", query.get("state") ?? "")
        return HttpServerResponse.empty({ status: 302, headers: { location: target.toString() } })
      })

    const token = (fields: Record<string, string>) =>
      Effect.gen(function*() {
        if (fields.grant_type === "authorization_code") {
          const problem = yield* Ref.modify(state, TestIssuer.redeem(fields))
          return problem === undefined ? yield* issueTokens : oauthError(400, "invalid_grant", problem)
        }
        if (fields.grant_type === "refresh_token") {
          const presented = fields.refresh_token ?? ""
          const known = yield* Ref.modify(state, TestIssuer.presentRefreshToken(presented))
          if (known === "used") {
            return HttpServerResponse.unsafeJson({ error: { code: "refresh_token_reused", message: "already used" } }, {
              status: 401
            })
          }
          return known === "current" ? yield* issueTokens : oauthError(400, "invalid_grant", "unknown refresh token")
        }
        return oauthError(400, "unsupported_grant_type", "grant_type not supported")
      })

    const deviceUserCode = (fields: Record<string, string>) =>
      Effect.gen(function*() {
        if (fields.client_id !== clientId) return oauthError(400, "invalid_client", "unknown client")
        const userCode = `${randomBytes(2).toString("hex")}-${randomBytes(2).toString("hex")}`.toUpperCase()
        const deviceAuthId = secret("da")
        yield* Ref.update(state, TestIssuer.startDevice(userCode, deviceAuthId))
        return HttpServerResponse.unsafeJson({
          device_auth_id: deviceAuthId,
          user_code: userCode,
          interval: String(options.deviceInterval ?? 5)
        })
      })

    const deviceToken = (fields: Record<string, string>) =>
      Effect.gen(function*() {
        const poll = TestIssuer.devicePoll(yield* Ref.get(state), fields)
        if (poll === "unknown") return oauthError(404, "not_found", "unknown device authorization")
        if (poll === "pending") return oauthError(403, "authorization_pending", "the user has not approved yet")
        const verifier = randomBytes(64).toString("base64url")
        const code = secret("ac")
        yield* Ref.update(
          state,
          TestIssuer.handOver(fields.user_code ?? "", code, {
            challenge: challengeOf(verifier),
            redirectUri: `${issuer}/deviceauth/callback`,
            clientId
          })
        )
        return HttpServerResponse.unsafeJson({
          authorization_code: code,
          code_challenge: challengeOf(verifier),
          code_verifier: verifier
        })
      })

    const approveDevice = (userCode: string) => Ref.modify(state, TestIssuer.approve(userCode))

    const devicePage = HttpServerResponse.text(
      `<!doctype html><html><body><form method="post" action="/codex/device">
<label>Code <input name="user_code" id="user_code"></label> <button type="submit">Continue</button>
</form></body></html>`,
      { contentType: "text/html; charset=utf-8" }
    )

    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, "http://127.0.0.1")
      if (request.method === "GET") {
        if (url.pathname === "/oauth/authorize") return yield* authorize(url.searchParams)
        if (url.pathname === "/codex/device") return devicePage
        return HttpServerResponse.text("Not Found", { status: 404 })
      }
      const contentType = request.headers["content-type"] ?? ""
      const body = yield* request.text
      const fields = fieldsOf(contentType, body)
      yield* Ref.update(received, (all) => [...all, { path: url.pathname, contentType, body, fields }])
      switch (url.pathname) {
        case "/oauth/token":
          return yield* token(fields)
        case "/api/accounts/deviceauth/usercode":
          return yield* deviceUserCode(fields)
        case "/api/accounts/deviceauth/token":
          return yield* deviceToken(fields)
        case "/codex/device": {
          const approved = yield* approveDevice(fields.user_code ?? "")
          return HttpServerResponse.text(
            approved ? "Device approved. You can go back to your terminal." : "Unknown code.",
            {
              status: approved ? 200 : 400
            }
          )
        }
        default:
          return HttpServerResponse.text("Not Found", { status: 404 })
      }
    }).pipe(Effect.catchAll(() => Effect.succeed(HttpServerResponse.text("bad request", { status: 400 }))))

    issuer = `http://127.0.0.1:${yield* serveOnLoopback(app)}`
    return {
      issuer,
      tokenUrl: `${issuer}/oauth/token`,
      authorizeRequests: Ref.get(authorizeRequests),
      received: Ref.get(received),
      setDecision: (decision) => Ref.update(state, (s) => ({ ...s, decision })),
      approveDevice
    } satisfies CodexIssuer
  })
