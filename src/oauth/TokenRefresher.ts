/**
 * Exchanges a refresh token for new tokens at the OAuth token endpoint, and
 * says whether a failure is permanent (the token is dead) or transient (try
 * again later). `layerTest` is a scripted fake for tests.
 */
import { mapRefreshed } from "@effect-auth-manager/core/authDocument"
import * as Classify from "@effect-auth-manager/core/classify"
import * as Rules from "@effect-auth-manager/core/rules"
import * as HttpClient from "@effect/platform/HttpClient"
import { Clock, Context, Duration, Effect, Layer, Option, Redacted, Ref } from "effect"
import * as Configuration from "../config/Configuration.js"
import type { ClientAuth } from "../config/Configuration.js"
import * as Settings from "../config/Settings.js"
import * as AuthDocument from "../document/AuthDocument.js"
import type { RefreshedTokens } from "../document/AuthDocument.js"
import { PermanentRefreshError, type SignInError, TransientRefreshError } from "../errors/Errors.js"
import * as OAuthProvider from "./OAuthProvider.js"
import * as OAuthHttp from "./TokenRequest.js"

export interface TokenRefresherShape {
  readonly refresh: (
    refreshToken: Redacted.Redacted<string>
  ) => Effect.Effect<RefreshedTokens, PermanentRefreshError | TransientRefreshError>
}

/**
 * How long a token request stays open for its answer at most. Callers stop waiting sooner (the
 * refresh timeout), but an answer may carry a rotated refresh token, the one that works from then
 * on: abandoning the request at the callers' timeout would throw it away, and the next request would
 * send the replaced one. Five minutes covers a slow endpoint or network by far; past it, the
 * connection is closed and the request is taken as failed.
 */
export const answerLimit = Settings.defaultAnswerLimit

export const defaultTokenUrl = Configuration.codexTokenUrl
export const defaultClientId = Configuration.codexClientId

/** How `layerHttp` talks to the token endpoint. */
export interface HttpOptions {
  readonly tokenUrl: string
  readonly clientId: string
  /** Sent as `clientAuth` says (RFC 6749 §2.3.1); in the body by default. */
  readonly clientSecret: Option.Option<Redacted.Redacted<string>>
  /** `client_secret_post` (default with a secret) or `client_secret_basic`. */
  readonly clientAuth?: ClientAuth | undefined
  /** `json` (what the Codex CLI sends) or `form` (`application/x-www-form-urlencoded`, RFC 6749 §6). */
  readonly bodyFormat: "json" | "form"
  readonly headers: Readonly<Record<string, string>>
  /**
   * How long the request stays open for its answer; then it is abandoned (an answer after that is
   * lost). The manager answers its callers sooner (`Settings.refreshTimeout`) and keeps waiting.
   */
  readonly timeout: Duration.Duration
  /** A response body larger than this is not read further. */
  readonly maxBodyBytes: number
}

/**
 * The settings of `layerHttp` in `configuration`: the request is abandoned after `answerLimit` (or
 * the refresh timeout, if longer), not after the refresh timeout, which bounds the callers' wait.
 */
export const httpOptionsOf = (configuration: Configuration.Options): HttpOptions => ({
  tokenUrl: configuration.tokenEndpoint.url,
  clientId: configuration.tokenEndpoint.clientId,
  clientSecret: configuration.tokenEndpoint.clientSecret,
  bodyFormat: configuration.tokenEndpoint.bodyFormat,
  headers: {},
  timeout: Duration.max(answerLimit, configuration.refreshTimeout),
  maxBodyBytes: 1024 * 1024
})

/** Why `url` cannot be a token endpoint, or undefined when it can. */
export const tokenUrlProblem = Rules.tokenUrlProblem

/** One step of a `layerTest` script: what the fake endpoint does on that call. */
export type ScriptStep = Effect.Effect<RefreshedTokens, PermanentRefreshError | TransientRefreshError>

/** What the scripted fake has been asked. */
export interface TokenRefresherTestShape {
  /** Every refresh token the fake was called with, oldest first. */
  readonly calls: Effect.Effect<ReadonlyArray<Redacted.Redacted<string>>>
}

/** Access to the recorded calls of `TokenRefresher.layerTest`. */
export class TokenRefresherTest
  extends Context.Tag("effect-auth-manager/TokenRefresherTest")<TokenRefresherTest, TokenRefresherTestShape>()
{}

// ---------------------------------------------------------------------------
// Classification (the core's): permanent (the refresh token is dead) or transient (try again later)

/** The error code of an error body: `error.code`, a string `error`, or a top-level `code`, lowercased. */
export const errorCode: (body: unknown) => string | undefined = OAuthHttp.errorCode

/** `Retry-After` as a delay: whole seconds, or an HTTP date relative to `now`. */
export const parseRetryAfter: (value: string | undefined, now: number) => Option.Option<Duration.Duration> =
  OAuthHttp.parseRetryAfter

/** What a non-2xx answer means, as this edition's errors (the rules: the core's `classifyFailure`). */
export const classifyFailure = (
  status: number,
  body: unknown,
  retryAfter: Option.Option<Duration.Duration>
): PermanentRefreshError | TransientRefreshError => {
  const failure = Classify.classifyFailure(
    status,
    body,
    Option.getOrUndefined(Option.map(retryAfter, Duration.toMillis))
  )
  return failure._tag === "Permanent"
    ? new PermanentRefreshError({ reason: failure.reason, status: failure.status })
    : new TransientRefreshError({
      kind: "status",
      detail: failure.detail,
      status: failure.status,
      ...(failure.retryAfter === undefined ? {} : { retryAfter: Duration.millis(failure.retryAfter) })
    })
}

/**
 * The tokens of a 2xx answer (the core's `parseTokenResponse`), Redacted. Every usable field is
 * kept: a rotated refresh token thrown away here would be replayed next time. None when nothing is
 * usable.
 */
export const parseTokenResponse = (text: string): Option.Option<RefreshedTokens> =>
  Option.map(
    Option.fromNullable(Classify.parseTokenResponse(text)),
    (tokens) => AuthDocument.refreshedFromCore(mapRefreshed(tokens, Redacted.make))
  )

const transient = (kind: TransientRefreshError["kind"], detail: string, status?: number) =>
  new TransientRefreshError(status === undefined ? { kind, detail } : { kind, detail, status })

/**
 * The HTTP refresher: one POST through `HttpClient`, its answer classified
 * (`classifyFailure`). `options` are set in code, over the defaults (Codex's endpoint and client).
 */
export const makeHttp = (overrides: Partial<HttpOptions> = {}) =>
  Effect.gen(function*() {
    const options: HttpOptions = { ...httpOptionsOf(Configuration.resolve()), ...overrides }
    // Redirects are not followed: the refresh token must reach the configured endpoint only. The
    // endpoint is another party's server: this process's trace context is not sent to it (the
    // request still has its span here).
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const sendOptions = { timeout: options.timeout, maxBodyBytes: options.maxBodyBytes, what: "the token endpoint" }

    const requestFor = (refreshToken: Redacted.Redacted<string>) =>
      OAuthHttp.tokenRequest(options.tokenUrl, options, [
        ["client_id", options.clientId],
        ["grant_type", "refresh_token"],
        ["refresh_token", refreshToken]
      ])

    // A span per request, without the stack trace of where it was called (a cost paid per refresh:
    // `Effect.fn` would make an error at each call for it, whatever its options).
    const refresh = (refreshToken: Redacted.Redacted<string>) =>
      Effect.gen(function*() {
        const answer = yield* OAuthHttp.sendWith(client, requestFor(refreshToken), sendOptions).pipe(
          Effect.mapError((failure) => transient(failure.kind, failure.detail, failure.status))
        )
        if (answer.status >= 200 && answer.status < 300) {
          return yield* Option.match(parseTokenResponse(answer.text), {
            onNone: () =>
              Effect.fail(transient("body", "the token endpoint answered without any token", answer.status)),
            onSome: (tokens) => Effect.succeed(tokens)
          })
        }
        const now = yield* Clock.currentTimeMillis
        return yield* Effect.fail(
          classifyFailure(answer.status, answer.json, parseRetryAfter(answer.headers["retry-after"], now))
        )
      }).pipe(Effect.withSpan("TokenRefresher.refresh", { captureStackTrace: false }))

    return TokenRefresher.of({ refresh })
  })

/**
 * The refresher of a discovered provider (`EFFECT_AUTH_ISSUER`): the token
 * endpoint and client authentication sign-in uses. Discovery runs at the
 * first refresh; while it fails, refreshes fail as transient.
 */
const makeForProvider = (
  options: HttpOptions,
  provider: Effect.Effect<OAuthProvider.OAuthProvider, SignInError, HttpClient.HttpClient>
) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const built = yield* Ref.make(Option.none<TokenRefresherShape>())
    const refresher = Effect.flatMap(
      Ref.get(built),
      Option.match({
        onSome: Effect.succeed,
        onNone: () =>
          provider.pipe(
            Effect.flatMap((found) => makeHttp({ ...options, ...OAuthProvider.refresherOptions(found) })),
            Effect.provideService(HttpClient.HttpClient, client),
            Effect.mapError((error) => transient("connection", error.message)),
            Effect.tap((made) => Ref.set(built, Option.some(made)))
          )
      })
    )
    return TokenRefresher.of({
      refresh: (refreshToken) => Effect.flatMap(refresher, (made) => made.refresh(refreshToken))
    })
  })

/** `makeHttp` for `configuration`, through the provider of its sign-in issuer when it has one. */
const makeConfigured = (configuration: Configuration.Options, options: Partial<HttpOptions> = {}) =>
  Option.isNone(configuration.signIn.issuer)
    ? makeHttp({ ...httpOptionsOf(configuration), ...options })
    : makeForProvider(
      { ...httpOptionsOf(configuration), ...options },
      OAuthProvider.fromConfiguration(configuration).provider
    )

/** The scripted fake: call N runs step N (the last step repeats) and is recorded. */
export const makeTest = (script: ReadonlyArray<ScriptStep> | ((call: number) => ScriptStep)) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make<ReadonlyArray<Redacted.Redacted<string>>>([])
    const stepFor = (index: number): ScriptStep => {
      if (typeof script === "function") return script(index)
      const step = script[Math.min(index, script.length - 1)]
      return step ?? Effect.die(new Error("TokenRefresher.layerTest was given an empty script"))
    }
    const refresher = TokenRefresher.of({
      refresh: (refreshToken) =>
        Ref.modify(calls, (seen) => [seen.length, [...seen, refreshToken]]).pipe(Effect.flatMap(stepFor))
    })
    return Context.make(TokenRefresher, refresher).pipe(
      Context.add(TokenRefresherTest, TokenRefresherTest.of({ calls: Ref.get(calls) }))
    )
  })

/**
 * Refreshes tokens.
 *
 * @example
 * // In a test: the first call finds a dead token, every later call too.
 * const refresher = TokenRefresher.layerTest([Effect.fail(new PermanentRefreshError({ reason: "reused" }))])
 */
export class TokenRefresher extends Context.Tag("effect-auth-manager/TokenRefresher")<
  TokenRefresher,
  TokenRefresherShape
>() {
  /** The HTTP refresher with the given options, built in place: see `makeHttp`. */
  static readonly makeHttp = makeHttp
  /** The scripted fake, built in place: see `makeTest`. */
  static readonly makeTest = makeTest

  /**
   * The HTTP refresher of the `Configuration` in context (its token endpoint, or its sign-in
   * issuer's; see `httpOptionsOf`). Needs an `HttpClient`.
   */
  static readonly layerHttp: Layer.Layer<TokenRefresher, never, Configuration.Configuration | HttpClient.HttpClient> =
    Layer
      .effect(
        TokenRefresher,
        Effect.flatMap(Configuration.Configuration, (configuration) => makeConfigured(configuration))
      )

  /** A scripted fake that records each call; see `TokenRefresherTest` for the record. */
  static readonly layerTest = (script: ReadonlyArray<ScriptStep> | ((call: number) => ScriptStep)) =>
    Layer.effectContext(makeTest(script))
}
