/**
 * The token requests of a sign-in, through the shared OAuth HTTP code: the
 * authorization-code exchange (RFC 6749 §4.1.3 with PKCE), RFC 8628 device
 * polling, and Codex's own device endpoints.
 */
import * as Answers from "@effect-auth-manager/core/signInAnswers"
import { Clock, Duration, Effect, Option, Redacted } from "effect"
import { type HttpClient, HttpClientRequest } from "effect/http"
import { SignInError } from "../../errors/Errors.js"
import type { OAuthProvider } from "../../oauth/OAuthProvider.js"
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

const refused = (answer: OAuthHttp.Answer, what: string) =>
  new SignInError(Answers.refusal(what, answer.status, answer.json))

const exchangeFailed = (problem: Answers.Problem) =>
  new SignInError({ reason: "exchange_failed", detail: problem.problem })

/** Reads a token answer (as the refresher does); a 2xx without an access and a refresh token is a failed sign-in. */
const tokensOf = (answer: OAuthHttp.Answer): Effect.Effect<Obtained, SignInError> => {
  const tokens = Answers.signInTokens(answer.text)
  return Answers.isProblem(tokens) ? Effect.fail(exchangeFailed(tokens)) : Effect.succeed({
    accessToken: Redacted.make(tokens.accessToken),
    refreshToken: Redacted.make(tokens.refreshToken),
    idToken: Option.map(Option.fromNullishOr(tokens.idToken), Redacted.make),
    expiresIn: Option.map(Option.fromNullishOr(tokens.expiresInMillis), Duration.millis)
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
    const start = Answers.deviceAuthorization(answer.json)
    if (Answers.isProblem(start)) return yield* exchangeFailed(start)
    const secretCode = Redacted.make(start.deviceCode)
    const deadline = (yield* Clock.currentTimeMillis) + start.expiresIn * 1000
    const poll = Effect.gen(function*() {
      let interval = start.interval
      while (true) {
        yield* Effect.sleep(Duration.seconds(interval))
        if (yield* pollingTimeOver(deadline)) return yield* new SignInError({ reason: "expired" })
        const reply = yield* OAuthHttp.send(OAuthHttp.tokenRequest(provider.tokenEndpoint, client, [
          ["grant_type", "urn:ietf:params:oauth:grant-type:device_code"],
          ["device_code", secretCode],
          ["client_id", provider.clientId]
        ])).pipe(Effect.mapError(unreachable))
        const step = Answers.devicePollStep(reply.status, reply.json, interval)
        if (step.next === "tokens") return yield* tokensOf(reply)
        if (step.next === "refused") return yield* refused(reply, "the token endpoint")
        interval = step.interval
      }
    })
    return {
      userCode: start.userCode,
      verificationUrl: start.verificationUrl,
      verificationUrlComplete: Option.fromNullishOr(start.verificationUrlComplete),
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
    const start = Answers.codexDeviceStart(answer.json)
    if (Answers.isProblem(start)) return yield* exchangeFailed(start)
    const deadline = (yield* Clock.currentTimeMillis) + Answers.codexDeviceLifetime
    const pollUrl = `${provider.issuer}/api/accounts/deviceauth/token`
    const poll = Effect.gen(function*() {
      while (true) {
        const reply = yield* OAuthHttp.send(
          OAuthHttp.tokenRequest(pollUrl, json, [["device_auth_id", Redacted.make(start.deviceAuthId)], [
            "user_code",
            start.userCode
          ]])
        ).pipe(Effect.mapError(unreachable))
        const step = Answers.codexPollStep(reply.status, start.interval)
        if (step.next === "tokens") {
          const grant = Answers.codexDeviceGrant(reply.json)
          if (Answers.isProblem(grant)) return yield* exchangeFailed(grant)
          return yield* exchangeCode(provider, {
            code: Redacted.make(grant.code),
            verifier: Redacted.make(grant.verifier),
            redirectUri: `${provider.issuer}/deviceauth/callback`
          })
        }
        if (step.next === "refused") return yield* refused(reply, "the device token endpoint")
        if (yield* pollingTimeOver(deadline)) return yield* new SignInError({ reason: "expired" })
        yield* Effect.sleep(Duration.seconds(step.interval))
      }
    })
    return {
      userCode: start.userCode,
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
