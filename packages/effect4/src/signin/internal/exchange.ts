/**
 * The token requests of a sign-in, through the shared OAuth HTTP code: the
 * authorization-code exchange (RFC 6749 §4.1.3 with PKCE), RFC 8628 device
 * polling, and Codex's own device endpoints.
 */
import { Clock, Duration, Effect, Option, Redacted } from "effect"
import { type HttpClient, HttpClientRequest } from "effect/http"
import type { RefreshedTokens } from "../../document/AuthDocument.js"
import { SignInError } from "../../errors/Errors.js"
import type { OAuthProvider } from "../../oauth/OAuthProvider.js"
import { parseTokenResponse } from "../../oauth/TokenRefresher.js"
import * as OAuthHttp from "../../oauth/TokenRequest.js"

/** What a sign-in obtained. */
export interface Obtained {
  readonly accessToken: Redacted.Redacted<string>
  readonly refreshToken: Redacted.Redacted<string>
  readonly idToken: Option.Option<Redacted.Redacted<string>>
  readonly expiresIn: Option.Option<Duration.Duration>
}

const clientOf = (provider: OAuthProvider): OAuthHttp.ClientSettings => ({
  clientId: provider.clientId,
  clientSecret: provider.clientSecret,
  clientAuth: provider.clientAuth,
  bodyFormat: "form"
})

const unreachable = (failure: OAuthHttp.ExchangeFailure) =>
  new SignInError({
    reason: failure.kind === "body" ? "exchange_failed" : "unreachable",
    detail: failure.detail,
    ...(failure.status === undefined ? {} : { status: failure.status })
  })

// A 401 from a token endpoint is its answer to client authentication (RFC 6749 section 5.2): starting
// the sign-in again cannot help, the client's id or secret must change.
const clientRefused = (answer: OAuthHttp.Answer, code: string | undefined) =>
  code === "invalid_client" || code === "unauthorized_client" || answer.status === 401

const refused = (answer: OAuthHttp.Answer, what: string) => {
  const code = OAuthHttp.errorCode(answer.json)
  return new SignInError({
    reason: code === "access_denied"
      ? "denied"
      : code === "expired_token"
      ? "expired"
      : clientRefused(answer, code)
      ? "client_refused"
      : "exchange_failed",
    detail: `${what} answered HTTP ${answer.status}${
      code !== undefined && OAuthHttp.isKnownCode(code) ? ` (${code})` : ""
    }`,
    status: answer.status
  })
}

/** Reads a token answer (as the refresher does); a 2xx without an access and a refresh token is a failed sign-in. */
const tokensOf = (answer: OAuthHttp.Answer): Effect.Effect<Obtained, SignInError> => {
  const tokens = Option.getOrElse(parseTokenResponse(answer.text), () => ({}) as RefreshedTokens)
  const access = tokens.accessToken
  const refresh = tokens.refreshToken
  if (access === undefined) {
    return Effect.fail(
      new SignInError({ reason: "exchange_failed", detail: "the token endpoint answered without an access token" })
    )
  }
  if (refresh === undefined) {
    return Effect.fail(
      new SignInError({
        reason: "exchange_failed",
        detail: "the token endpoint gave no refresh token (is the offline_access scope allowed for this client?)"
      })
    )
  }
  return Effect.succeed({
    accessToken: access,
    refreshToken: refresh,
    idToken: Option.fromNullishOr(tokens.idToken),
    expiresIn: Option.fromNullishOr(tokens.expiresIn)
  })
}

/** Exchanges an authorization code (form body, in the order Codex writes it). */
export const exchangeCode = Effect.fn("SignIn.exchangeCode")(function*(
  provider: OAuthProvider,
  request: {
    readonly code: Redacted.Redacted<string>
    readonly redirectUri: string
    readonly verifier: Redacted.Redacted<string>
  }
) {
  const answer = yield* OAuthHttp.send(OAuthHttp.tokenRequest(provider.tokenEndpoint, clientOf(provider), [
    ["grant_type", "authorization_code"],
    ["code", request.code],
    ["redirect_uri", request.redirectUri],
    ["client_id", provider.clientId],
    ["code_verifier", request.verifier]
  ])).pipe(Effect.mapError(unreachable))
  if (answer.status < 200 || answer.status >= 300) return yield* refused(answer, "the token endpoint")
  return yield* tokensOf(answer)
})

/** A device sign-in waiting for the person: what to show them, and how to wait. */
export interface DeviceStart {
  readonly userCode: string
  readonly verificationUrl: string
  readonly verificationUrlComplete: Option.Option<string>
  /** Waits until the person approved, then returns the tokens. */
  readonly poll: Effect.Effect<Obtained, SignInError, HttpClient.HttpClient>
}

const pollingTimeOver = (deadline: number) => Effect.map(Clock.currentTimeMillis, (now) => now >= deadline)

/** RFC 8628: device authorization, then polling the token endpoint with the device code. */
const startRfc8628 = (provider: OAuthProvider, endpoint: string) =>
  Effect.gen(function*() {
    const client = clientOf(provider)
    const answer = yield* OAuthHttp.send(OAuthHttp.tokenRequest(endpoint, client, [
      ["client_id", provider.clientId],
      ["scope", provider.scopes.join(" ")]
    ])).pipe(Effect.mapError(unreachable))
    if (answer.status !== 200) return yield* refused(answer, "the device authorization endpoint")
    const deviceCode = OAuthHttp.stringField(answer.json, "device_code")
    const userCode = OAuthHttp.stringField(answer.json, "user_code")
    const verificationUrl = OAuthHttp.stringField(answer.json, "verification_uri") ??
      OAuthHttp.stringField(answer.json, "verification_url")
    if (deviceCode === undefined || userCode === undefined || verificationUrl === undefined) {
      return yield* new SignInError({
        reason: "exchange_failed",
        detail: "the device authorization answer lacks device_code, user_code or verification_uri"
      })
    }
    const secretCode = Redacted.make(deviceCode)
    const expiresIn = OAuthHttp.numberField(answer.json, "expires_in") ?? 600
    const deadline = (yield* Clock.currentTimeMillis) + expiresIn * 1000
    const poll = Effect.gen(function*() {
      // A provider's interval of 0 would be a request storm: at least a second apart.
      let interval = Math.max(1, OAuthHttp.numberField(answer.json, "interval") ?? 5)
      while (true) {
        yield* Effect.sleep(Duration.seconds(interval))
        if (yield* pollingTimeOver(deadline)) return yield* new SignInError({ reason: "expired" })
        const reply = yield* OAuthHttp.send(OAuthHttp.tokenRequest(provider.tokenEndpoint, client, [
          ["grant_type", "urn:ietf:params:oauth:grant-type:device_code"],
          ["device_code", secretCode],
          ["client_id", provider.clientId]
        ])).pipe(Effect.mapError(unreachable))
        if (reply.status >= 200 && reply.status < 300) return yield* tokensOf(reply)
        const code = OAuthHttp.errorCode(reply.json)
        if (code === "authorization_pending") continue
        // RFC 8628 §3.5: slow down by 5 seconds for this and every later request.
        if (code === "slow_down") {
          interval += 5
          continue
        }
        return yield* refused(reply, "the token endpoint")
      }
    })
    return {
      userCode,
      verificationUrl,
      verificationUrlComplete: Option.fromNullishOr(OAuthHttp.stringField(answer.json, "verification_uri_complete")),
      poll
    } satisfies DeviceStart
  })

/** Codex's device flow: its own user-code and polling endpoints, then a normal code exchange. */
const startCodex = (provider: OAuthProvider, endpoint: string) =>
  Effect.gen(function*() {
    const json: OAuthHttp.ClientSettings = {
      clientId: provider.clientId,
      clientSecret: Option.none(),
      clientAuth: "none",
      bodyFormat: "json"
    }
    const answer = yield* OAuthHttp.send(OAuthHttp.tokenRequest(endpoint, json, [["client_id", provider.clientId]]))
      .pipe(
        Effect.mapError(unreachable)
      )
    if (answer.status === 404) {
      return yield* new SignInError({
        reason: "unsupported",
        detail: "device code sign-in is not enabled for this issuer",
        status: 404
      })
    }
    if (answer.status < 200 || answer.status >= 300) return yield* refused(answer, "the device code endpoint")
    const deviceAuthId = OAuthHttp.stringField(answer.json, "device_auth_id")
    const userCode = OAuthHttp.stringField(answer.json, "user_code") ?? OAuthHttp.stringField(answer.json, "usercode")
    if (deviceAuthId === undefined || userCode === undefined) {
      return yield* new SignInError({
        reason: "exchange_failed",
        detail: "the device code answer lacks device_auth_id or user_code"
      })
    }
    const interval = Math.max(1, OAuthHttp.numberField(answer.json, "interval") ?? 5)
    // Codex gives the person 15 minutes to enter the code.
    const deadline = (yield* Clock.currentTimeMillis) + 15 * 60 * 1000
    const pollUrl = `${provider.issuer}/api/accounts/deviceauth/token`
    const poll = Effect.gen(function*() {
      while (true) {
        const reply = yield* OAuthHttp.send(
          OAuthHttp.tokenRequest(pollUrl, json, [["device_auth_id", Redacted.make(deviceAuthId)], [
            "user_code",
            userCode
          ]])
        ).pipe(Effect.mapError(unreachable))
        if (reply.status >= 200 && reply.status < 300) {
          const code = OAuthHttp.stringField(reply.json, "authorization_code")
          const verifier = OAuthHttp.stringField(reply.json, "code_verifier")
          if (code === undefined || verifier === undefined) {
            return yield* new SignInError({
              reason: "exchange_failed",
              detail: "the device token answer lacks authorization_code or code_verifier"
            })
          }
          return yield* exchangeCode(provider, {
            code: Redacted.make(code),
            verifier: Redacted.make(verifier),
            redirectUri: `${provider.issuer}/deviceauth/callback`
          })
        }
        // 403 and 404 mean the person has not entered the code yet.
        if (reply.status !== 403 && reply.status !== 404) return yield* refused(reply, "the device token endpoint")
        if (yield* pollingTimeOver(deadline)) return yield* new SignInError({ reason: "expired" })
        yield* Effect.sleep(Duration.seconds(interval))
      }
    })
    return {
      userCode,
      verificationUrl: `${provider.issuer}/codex/device`,
      verificationUrlComplete: Option.none(),
      poll
    } satisfies DeviceStart
  })

/** Starts a device sign-in with the provider's own kind of device flow. */
export const startDevice = (provider: OAuthProvider) =>
  Option.match(provider.deviceAuthorizationEndpoint, {
    onNone: () =>
      Effect.fail(
        new SignInError({ reason: "unsupported", detail: `${provider.name} names no device authorization endpoint` })
      ),
    onSome: (endpoint) =>
      provider.profile === "codex" ? startCodex(provider, endpoint) : startRfc8628(provider, endpoint)
  })

/** Sends `GET /cancel` to a login server of an older process on this port, as Codex does; errors are ignored. */
export const cancelOlderLoginServer = (port: number) =>
  OAuthHttp.send(HttpClientRequest.get(`http://127.0.0.1:${port}/cancel`), {
    timeout: Duration.seconds(2),
    maxBodyBytes: 4096
  }).pipe(Effect.ignore)
