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
import { Clock, Effect, Ref } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
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
export type Decision = { readonly _tag: "Approve" } | { readonly _tag: "Error"; readonly error: string }

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

interface CodeGrant {
  readonly challenge: string
  readonly redirectUri: string
  readonly clientId: string
  readonly used: boolean
}

interface DeviceGrant {
  readonly deviceAuthId: string
  readonly approved: boolean
}

interface State {
  readonly decision: Decision
  readonly codes: ReadonlyMap<string, CodeGrant>
  readonly devices: ReadonlyMap<string, DeviceGrant>
  readonly refreshTokens: ReadonlyMap<string, "current" | "used">
  readonly issued: number
}

/** What the handlers share: the issuer's state and settings. */
interface Issuer {
  readonly state: Ref.Ref<State>
  readonly clientId: string
  readonly lifetime: number
  readonly options: Options
  readonly url: () => string
}

const secret = (prefix: string) => `${prefix}_SECRET_${randomBytes(12).toString("base64url")}`

const oauthError = (status: number, error: string, description: string) =>
  HttpServerResponse.jsonUnsafe({ error, error_description: description }, { status })

const withEntry = <K, V>(map: ReadonlyMap<K, V>, key: K, value: V): ReadonlyMap<K, V> => new Map([...map, [key, value]])

// ---------------------------------------------------------------------------
// State transitions
// ---------------------------------------------------------------------------

/** Redeems an authorization code: null when the exchange is valid, else why not. A code is spent either way. */
const redeem = (fields: Record<string, string>) => (s: State): readonly [string | null, State] => {
  const code = fields.code ?? ""
  const grant = s.codes.get(code)
  if (grant === undefined) return ["unknown authorization code", s]
  if (grant.used) return ["authorization code already used", s]
  const spent = { ...s, codes: withEntry(s.codes, code, { ...grant, used: true }) }
  if (fields.client_id !== grant.clientId) return ["client_id does not match", spent]
  if (fields.redirect_uri !== grant.redirectUri) return ["redirect_uri does not match", spent]
  if (challengeOf(fields.code_verifier ?? "") !== grant.challenge) return ["PKCE verification failed", spent]
  return [null, spent]
}

/** Presents a refresh token: the current one is spent, a spent one stays spent. */
const presentRefreshToken = (presented: string) => (s: State): readonly ["current" | "used" | undefined, State] => {
  const status = s.refreshTokens.get(presented)
  return status === "current"
    ? [status, { ...s, refreshTokens: withEntry(s.refreshTokens, presented, "used" as const) }]
    : [status, s]
}

const approve = (userCode: string) => (s: State): readonly [boolean, State] => {
  const key = userCode.trim().toUpperCase()
  const device = s.devices.get(key)
  if (device === undefined) return [false, s]
  return [true, { ...s, devices: withEntry(s.devices, key, { ...device, approved: true }) }]
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

const issueTokens = Effect.fnUntraced(function*(issuer: Issuer) {
  const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
  const refreshToken = secret("rt")
  const n = yield* Ref.modify(issuer.state, (s) => [s.issued + 1, {
    ...s,
    issued: s.issued + 1,
    refreshTokens: withEntry(s.refreshTokens, refreshToken, "current" as const)
  }])
  const { options } = issuer
  return HttpServerResponse.jsonUnsafe({
    id_token: unsignedJwt({
      iss: issuer.url(),
      aud: issuer.clientId,
      sub: "user-1",
      exp: now + issuer.lifetime,
      email: options.email ?? "ada@example.com",
      "https://api.openai.com/auth": {
        chatgpt_account_id: options.accountId ?? "acct_test_1",
        chatgpt_plan_type: options.planType ?? "plus",
        chatgpt_user_id: "user-1"
      }
    }),
    access_token: unsignedJwt({ iss: issuer.url(), exp: now + issuer.lifetime, n, marker: "SECRET" }),
    refresh_token: refreshToken,
    token_type: "Bearer",
    expires_in: issuer.lifetime
  })
})

const isValidAuthorize = (query: URLSearchParams, clientId: string) =>
  query.get("response_type") === "code" && query.get("client_id") === clientId &&
  query.get("code_challenge_method") === "S256" && (query.get("code_challenge") ?? "").length >= 43 &&
  /^http:\/\/(127\.0\.0\.1|localhost):\d+\//.test(query.get("redirect_uri") ?? "") &&
  (query.get("state") ?? "").length > 0

const authorize = Effect.fnUntraced(function*(issuer: Issuer, query: URLSearchParams) {
  if (!isValidAuthorize(query, issuer.clientId)) {
    return HttpServerResponse.text("invalid authorize request", { status: 400 })
  }
  const redirectUri = query.get("redirect_uri") ?? ""
  const target = new URL(redirectUri)
  const decision = (yield* Ref.get(issuer.state)).decision
  if (decision._tag === "Error") {
    target.searchParams.set("error", decision.error)
  } else {
    const code = secret("ac")
    const grant: CodeGrant = {
      challenge: query.get("code_challenge") ?? "",
      redirectUri,
      clientId: issuer.clientId,
      used: false
    }
    yield* Ref.update(issuer.state, (s) => ({ ...s, codes: withEntry(s.codes, code, grant) }))
    target.searchParams.set("code", code)
  }
  target.searchParams.set("state", query.get("state") ?? "")
  return HttpServerResponse.empty({ status: 302, headers: { location: target.toString() } })
})

const token = Effect.fnUntraced(function*(issuer: Issuer, fields: Record<string, string>) {
  if (fields.grant_type === "authorization_code") {
    const verdict = yield* Ref.modify(issuer.state, redeem(fields))
    return verdict === null ? yield* issueTokens(issuer) : oauthError(400, "invalid_grant", verdict)
  }
  if (fields.grant_type === "refresh_token") {
    const known = yield* Ref.modify(issuer.state, presentRefreshToken(fields.refresh_token ?? ""))
    if (known === "used") {
      return HttpServerResponse.jsonUnsafe(
        { error: { code: "refresh_token_reused", message: "already used" } },
        { status: 401 }
      )
    }
    return known === "current" ? yield* issueTokens(issuer) : oauthError(400, "invalid_grant", "unknown refresh token")
  }
  return oauthError(400, "unsupported_grant_type", "grant_type not supported")
})

const deviceUserCode = Effect.fnUntraced(function*(issuer: Issuer, fields: Record<string, string>) {
  if (fields.client_id !== issuer.clientId) return oauthError(400, "invalid_client", "unknown client")
  const userCode = `${randomBytes(2).toString("hex")}-${randomBytes(2).toString("hex")}`.toUpperCase()
  const deviceAuthId = secret("da")
  yield* Ref.update(
    issuer.state,
    (s) => ({ ...s, devices: withEntry(s.devices, userCode, { deviceAuthId, approved: false }) })
  )
  return HttpServerResponse.jsonUnsafe({
    device_auth_id: deviceAuthId,
    user_code: userCode,
    interval: String(issuer.options.deviceInterval ?? 5)
  })
})

const deviceToken = Effect.fnUntraced(function*(issuer: Issuer, fields: Record<string, string>) {
  const userCode = fields.user_code ?? ""
  const device = (yield* Ref.get(issuer.state)).devices.get(userCode)
  if (device === undefined || device.deviceAuthId !== fields.device_auth_id) {
    return oauthError(404, "not_found", "unknown device authorization")
  }
  if (!device.approved) return oauthError(403, "authorization_pending", "the user has not approved yet")
  const verifier = randomBytes(64).toString("base64url")
  const code = secret("ac")
  const grant: CodeGrant = {
    challenge: challengeOf(verifier),
    redirectUri: `${issuer.url()}/deviceauth/callback`,
    clientId: issuer.clientId,
    used: false
  }
  yield* Ref.update(issuer.state, (s) => {
    const devices = new Map(s.devices)
    devices.delete(userCode)
    return { ...s, devices, codes: withEntry(s.codes, code, grant) }
  })
  return HttpServerResponse.jsonUnsafe({
    authorization_code: code,
    code_challenge: grant.challenge,
    code_verifier: verifier
  })
})

const devicePage = HttpServerResponse.text(
  `<!doctype html><html><body><form method="post" action="/codex/device">
<label>Code <input name="user_code" id="user_code"></label> <button type="submit">Continue</button>
</form></body></html>`,
  { contentType: "text/html; charset=utf-8" }
)

const notFound = () => HttpServerResponse.text("Not Found", { status: 404 })

const post = Effect.fnUntraced(function*(issuer: Issuer, path: string, fields: Record<string, string>) {
  switch (path) {
    case "/oauth/token":
      return yield* token(issuer, fields)
    case "/api/accounts/deviceauth/usercode":
      return yield* deviceUserCode(issuer, fields)
    case "/api/accounts/deviceauth/token":
      return yield* deviceToken(issuer, fields)
    case "/codex/device": {
      const approved = yield* Ref.modify(issuer.state, approve(fields.user_code ?? ""))
      return HttpServerResponse.text(
        approved ? "Device approved. You can go back to your terminal." : "Unknown code.",
        { status: approved ? 200 : 400 }
      )
    }
    default:
      return notFound()
  }
})

/** Starts the issuer on an ephemeral port of 127.0.0.1 for the life of the scope. */
export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const state = yield* Ref.make<State>({
    decision: { _tag: "Approve" },
    codes: new Map(),
    devices: new Map(),
    refreshTokens: new Map(),
    issued: 0
  })
  const authorizeRequests = yield* Ref.make<ReadonlyArray<ReadonlyArray<readonly [string, string]>>>([])
  const received = yield* Ref.make<ReadonlyArray<Received>>([])
  let url = ""
  const issuer: Issuer = {
    state,
    clientId: options.clientId ?? "app_EMoamEEZ73f0CkXaXp7hrann",
    lifetime: options.accessTokenLifetimeSeconds ?? 3600,
    options,
    url: () => url
  }

  const app = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const target = new URL(request.url, "http://127.0.0.1")
    if (request.method === "GET") {
      if (target.pathname === "/oauth/authorize") {
        yield* Ref.update(authorizeRequests, (all) => [...all, [...target.searchParams.entries()]])
        return yield* authorize(issuer, target.searchParams)
      }
      return target.pathname === "/codex/device" ? devicePage : notFound()
    }
    const contentType = request.headers["content-type"] ?? ""
    const body = yield* request.text
    const fields = fieldsOf(contentType, body)
    yield* Ref.update(received, (all) => [...all, { path: target.pathname, contentType, body, fields }])
    return yield* post(issuer, target.pathname, fields)
  }).pipe(Effect.catch(() => Effect.succeed(HttpServerResponse.text("bad request", { status: 400 }))))

  url = `http://127.0.0.1:${yield* serveOnLoopback(app)}`
  return {
    issuer: url,
    tokenUrl: `${url}/oauth/token`,
    authorizeRequests: Ref.get(authorizeRequests),
    received: Ref.get(received),
    setDecision: (decision) => Ref.update(state, (s) => ({ ...s, decision })),
    approveDevice: (userCode) => Ref.modify(state, approve(userCode))
  } satisfies CodexIssuer
})
