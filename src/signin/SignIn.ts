/**
 * Signing in: a browser sign-in (authorization code with PKCE, back through
 * a loopback server on 127.0.0.1) or a device sign-in (a code the person
 * enters on another device), for the provider of `OAuthProvider`. The result
 * is written through `AuthManager` (under the store's lock; a new snapshot,
 * so any poison is cleared). One sign-in at a time: starting one cancels the
 * one in progress, and each is abandoned after a time limit (10 minutes).
 */
import * as Jwt from "@effect-auth-manager/core/jwt"
import * as Pages from "@effect-auth-manager/core/pages"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import {
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  ExecutionStrategy,
  Exit,
  Layer,
  Option,
  Redacted,
  Ref,
  Scope
} from "effect"
import { Configuration } from "../config/Configuration.js"
import { SignInError } from "../errors/Errors.js"
import { AuthManager } from "../manager/AuthManager.js"
import { type AuthState } from "../manager/AuthState.js"
import * as OAuthProvider from "../oauth/OAuthProvider.js"
import * as OAuthHttp from "../oauth/TokenRequest.js"
import { exchangeCode, type Obtained, startDevice as beginDevice } from "./internal/exchange.js"
import * as Loopback from "./internal/loopback.js"
import * as Outcome from "./internal/outcome.js"
import { respond } from "./internal/pages.js"
import { makeLoginId, makePkce, makeState } from "./internal/pkce.js"

/** A sign-in in progress. */
export interface Login {
  /** A UUID, as the Codex app server's `loginId`. */
  readonly loginId: string
  /** Waits for the outcome: the new credentials' state, or why there are none. */
  readonly await: Effect.Effect<AuthState, SignInError>
  /** Cancels it (nothing is saved) and waits until its server is closed. */
  readonly cancel: Effect.Effect<void>
  /** Waits until it is over and its server closed (after the browser got its last page). */
  readonly closed: Effect.Effect<void>
}

export interface BrowserLogin extends Login {
  readonly _tag: "Browser"
  /** Open this in a browser. It holds no secret (the PKCE challenge and the state only). */
  readonly authUrl: string
  readonly redirectUri: string
}

export interface DeviceLogin extends Login {
  readonly _tag: "Device"
  readonly userCode: string
  readonly verificationUrl: string
  /** The verification URL with the code filled in, when the provider gives one. */
  readonly verificationUrlComplete: Option.Option<string>
}

export interface StartOptions {
  /** Runs once with the outcome (and the login's id), before `await` returns it. */
  readonly onComplete?:
    | ((outcome: Either.Either<AuthState, SignInError>, loginId: string) => Effect.Effect<void>)
    | undefined
  /**
   * Held while the credentials are saved and `onComplete` runs: whoever takes
   * it to announce a change of credentials announces after the completion.
   */
  readonly announce?: Effect.Semaphore | undefined
}

export interface SignInShape {
  /** The provider in use (a generic provider is discovered the first time it is needed). */
  readonly provider: Effect.Effect<OAuthProvider.OAuthProvider, SignInError>
  readonly startBrowser: (options?: StartOptions) => Effect.Effect<BrowserLogin, SignInError>
  readonly startDevice: (options?: StartOptions) => Effect.Effect<DeviceLogin, SignInError>
  /** Cancels the sign-in in progress if it has this id. */
  readonly cancel: (loginId: string) => Effect.Effect<"canceled" | "notFound">
}

export interface Settings {
  /** A sign-in not completed within this is abandoned. Default 10 minutes. */
  readonly timeout: Duration.Duration
  /** The Codex `originator` authorize parameter. Default `codex_cli_rs`. */
  readonly originator: string
}

export const defaultSettings: Settings = { timeout: Duration.minutes(10), originator: "codex_cli_rs" }

// How long a finished browser sign-in keeps its server up for the browser to fetch /success.
const successGrace = Duration.seconds(5)

interface LoginContext {
  readonly scope: Scope.Scope
  readonly finish: (exit: Exit.Exit<AuthState, SignInError>) => Effect.Effect<void>
  readonly save: (tokens: Obtained) => Effect.Effect<AuthState, SignInError>
  readonly successServed: Deferred.Deferred<void>
}

// The account the id_token names (Codex's claim, read by the core), saved beside the tokens.
const accountIdOf = (idToken: Option.Option<Redacted.Redacted<string>>): string | null =>
  Option.match(idToken, {
    onNone: () => null,
    onSome: (token) => Jwt.idTokenClaims(Redacted.value(token), null).accountId
  })

/** Builds the service for the provider (or the effect that discovers it). */
export const make = (
  providerSource:
    | OAuthProvider.OAuthProvider
    | Effect.Effect<OAuthProvider.OAuthProvider, SignInError, HttpClient.HttpClient>,
  options: Partial<Settings> = {}
): Effect.Effect<SignInShape, never, HttpClient.HttpClient | AuthManager | Scope.Scope> =>
  Effect.gen(function*() {
    const settings: Settings = { ...defaultSettings, ...options }
    const layerScope = yield* Effect.scope
    const httpClient = yield* HttpClient.HttpClient
    const auth = yield* AuthManager
    const withClient = Effect.provideService(HttpClient.HttpClient, httpClient)

    const resolved = yield* Ref.make(Option.none<OAuthProvider.OAuthProvider>())
    const provider = Effect.gen(function*() {
      const known = yield* Ref.get(resolved)
      if (Option.isSome(known)) return known.value
      const found = Effect.isEffect(providerSource) ? yield* withClient(providerSource) : providerSource
      yield* Ref.set(resolved, Option.some(found))
      return found
    })

    const current = yield* Ref.make(Option.none<{ readonly loginId: string; readonly cancel: Effect.Effect<void> }>())
    const starting = yield* Effect.makeSemaphore(1)

    const cancelCurrent = Effect.flatMap(Ref.getAndSet(current, Option.none()), (running) =>
      Option.match(running, { onNone: () => Effect.void, onSome: (login) => login.cancel }))

    const begin = <Info>(
      kind: "browser" | "device",
      options: StartOptions,
      setup: (context: LoginContext) => Effect.Effect<Info, SignInError>
    ) =>
      Effect.gen(function*() {
        yield* cancelCurrent
        const loginId = yield* makeLoginId
        const scope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
        const done = yield* Deferred.make<AuthState, SignInError>()
        const closed = yield* Deferred.make<void>()
        const canceled = yield* Deferred.make<void>()
        const successServed = yield* Deferred.make<void>()
        const announce = options.announce ?? (yield* Effect.makeSemaphore(1))

        const finish = Outcome.finisher(done, loginId, options.onComplete)

        // The service stopping (its layer released) ends a sign-in still open: whoever awaits it is told,
        // and `closed` holds once its server is (this finalizer, added first, runs last).
        yield* Scope.addFinalizer(
          scope,
          finish(Exit.fail(new SignInError({ reason: "canceled", detail: "the sign-in service stopped" }))).pipe(
            Effect.zipRight(Deferred.succeed(closed, undefined))
          )
        )

        // The save and the completion are one step under `announce`, and a canceled login saves nothing.
        // Waiting for `announce` stays interruptible (a cancel may hold it); the save itself is not.
        const save = (tokens: Obtained) =>
          announce.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
            if (yield* Deferred.isDone(done)) {
              return yield* Deferred.await(done)
            }
            const saved = yield* Effect.exit(
              auth.loginWithTokens({
                idToken: Option.getOrElse(tokens.idToken, () =>
                  Redacted.make("")),
                accessToken: tokens.accessToken,
                refreshToken: tokens.refreshToken,
                accountId: accountIdOf(tokens.idToken),
                expiresIn: Option.getOrUndefined(tokens.expiresIn)
              }).pipe(Effect.mapError((error) => new SignInError({ reason: "storage", detail: error.message })))
            )
            yield* finish(saved)
            return yield* saved
          })))

        const info = yield* setup({ scope, finish, save, successServed }).pipe(
          Effect.onError(() => Scope.close(scope, Exit.void))
        )

        // Ends the sign-in on time, then closes its server, whatever ended it.
        yield* Deferred.await(done).pipe(
          Effect.timeoutOption(settings.timeout),
          Effect.flatMap(Option.match({
            onNone: () =>
              finish(
                Exit.fail(
                  new SignInError({
                    reason: "timeout",
                    detail: `not completed within ${Duration.format(settings.timeout)}`
                  })
                )
              ),
            onSome: () => Effect.void
          })),
          Effect.catchAll(() => Effect.void),
          Effect.zipRight(Effect.whenEffect(
            Effect.ignore(
              Effect.timeout(Effect.race(Deferred.await(successServed), Deferred.await(canceled)), successGrace)
            ),
            // Only a browser comes back for a page; a device sign-in is over once saved.
            Effect.map(Deferred.await(done).pipe(Effect.exit), (exit) => kind === "browser" && Exit.isSuccess(exit))
          )),
          Effect.ensuring(Scope.close(scope, Exit.void)),
          Effect.ensuring(Ref.update(current, Option.filter((login) => login.loginId !== loginId))),
          Effect.ensuring(Deferred.succeed(closed, undefined)),
          Effect.forkIn(layerScope)
        )

        const cancel = Deferred.succeed(canceled, undefined).pipe(
          Effect.zipRight(finish(Exit.fail(new SignInError({ reason: "canceled" })))),
          Effect.zipRight(Deferred.await(closed))
        )
        yield* Ref.set(current, Option.some({ loginId, cancel }))
        yield* Effect.logInfo("Sign-in started").pipe(Effect.annotateLogs({ loginId, kind }))
        return { ...info, loginId, await: Deferred.await(done), cancel, closed: Deferred.await(closed) }
      })

    const startBrowser = Effect.fn("SignIn.startBrowser")(function*(options: StartOptions = {}) {
      const p = yield* provider
      const login = yield* begin("browser", options, (context) =>
        Effect.gen(function*() {
          const pkce = yield* makePkce
          const state = yield* makeState
          const claimed = yield* Ref.make(false)
          let origin = ""

          const fail = (error: SignInError, status = 400) =>
            Effect.as(
              context.finish(Exit.fail(error)),
              respond(Pages.failure("The sign-in did not complete", error.message, status))
            )

          const callback = (params: URLSearchParams) =>
            Effect.gen(function*() {
              // A wrong state is someone else's request: refused, and the sign-in keeps waiting.
              if (params.get("state") !== state) {
                yield* Effect.logWarning("Sign-in callback with a state that is not ours: refused")
                return respond(Pages.failure(
                  "This sign-in link is not the one that was started",
                  "The address the browser came back with does not belong to the sign-in in progress (state mismatch)."
                ))
              }
              if (yield* Ref.getAndSet(claimed, true)) {
                return respond(
                  Pages.failure("This sign-in is already being completed", "The browser came back twice.", 409)
                )
              }
              const error = params.get("error")
              if (error !== null) {
                return yield* fail(
                  new SignInError({
                    reason: error === "access_denied" ? "denied" : "exchange_failed",
                    detail: OAuthHttp.isKnownCode(error)
                      ? `the provider answered ${error}`
                      : "the provider answered with an error"
                  })
                )
              }
              const code = params.get("code")
              if (code === null || code.length === 0) {
                return yield* fail(
                  new SignInError({ reason: "exchange_failed", detail: "the browser came back without a code" })
                )
              }
              const exchanged = yield* Effect.either(withClient(exchangeCode(p, {
                code: Redacted.make(code),
                redirectUri: `${origin}${p.loopback.path}`,
                verifier: pkce.verifier
              })))
              if (Either.isLeft(exchanged)) return yield* fail(exchanged.left, 502)
              const saved = yield* Effect.either(context.save(exchanged.right))
              if (Either.isLeft(saved)) {
                return respond(Pages.failure(
                  "The sign-in did not complete",
                  saved.left.message,
                  saved.left.reason === "storage" ? 500 : 400
                ))
              }
              // Away from the address that carries the code.
              return respond(Pages.redirect(`${origin}/success`))
            })

          const app = Effect.gen(function*() {
            const request = yield* HttpServerRequest.HttpServerRequest
            const url = new URL(request.url, "http://127.0.0.1")
            if (request.method !== "GET") return respond(Pages.notFound())
            switch (url.pathname) {
              case p.loopback.path:
                return yield* callback(url.searchParams)
              case "/success":
                yield* Deferred.succeed(context.successServed, undefined)
                return respond(Pages.success(p.name))
              case "/cancel":
                // An older login server's owner is told, as Codex's is.
                yield* Effect.forkIn(
                  context.finish(
                    Exit.fail(new SignInError({ reason: "canceled", detail: "another sign-in took over the port" }))
                  ),
                  layerScope
                )
                return respond(Pages.cancelled())
              default:
                return respond(Pages.notFound())
            }
          }).pipe(
            Effect.catchAllCause((cause) =>
              Effect.as(
                Effect.logError("Sign-in callback failed unexpectedly", cause),
                respond(Pages.failure("The sign-in did not complete", "Something went wrong on this computer.", 500))
              )
            )
          )

          const port = yield* withClient(Loopback.serve(p.loopback, app, context.scope))
          origin = `http://127.0.0.1:${port}`
          const redirectUri = `${origin}${p.loopback.path}`
          return {
            _tag: "Browser" as const,
            redirectUri,
            authUrl: OAuthProvider.authorizeUrl(p, {
              redirectUri,
              challenge: pkce.challenge,
              state,
              originator: settings.originator
            })
          }
        }))
      return login satisfies BrowserLogin
    }, (effect) => starting.withPermits(1)(effect))

    const startDevice = Effect.fn("SignIn.startDevice")(function*(options: StartOptions = {}) {
      const p = yield* provider
      const login = yield* begin("device", options, (context) =>
        Effect.gen(function*() {
          const device = yield* withClient(beginDevice(p))
          yield* device.poll.pipe(
            withClient,
            Effect.flatMap(context.save),
            Effect.catchAll((error) => context.finish(Exit.fail(error))),
            Effect.forkIn(context.scope)
          )
          return {
            _tag: "Device" as const,
            userCode: device.userCode,
            verificationUrl: device.verificationUrl,
            verificationUrlComplete: device.verificationUrlComplete
          }
        }))
      return login satisfies DeviceLogin
    }, (effect) => starting.withPermits(1)(effect))

    const cancel = (loginId: string) =>
      starting.withPermits(1)(Effect.gen(function*() {
        const running = yield* Ref.get(current)
        if (Option.isNone(running) || running.value.loginId !== loginId) return "notFound" as const
        yield* cancelCurrent
        return "canceled" as const
      }))

    return SignIn.of({ provider, startBrowser, startDevice, cancel })
  })

/**
 * Signs the user in.
 *
 * @example
 * const login = yield* SignIn.pipe(Effect.flatMap((signIn) => signIn.startBrowser()))
 * yield* Console.log(`Open ${login.authUrl}`)
 * yield* login.await
 */
export class SignIn extends Context.Tag("effect-auth-manager/SignIn")<SignIn, SignInShape>() {
  /** Builds the sign-in service in a scope: see `make`. */
  static readonly make = make

  /** The provider and settings of the `Configuration` in context (see `OAuthProvider.fromConfiguration`). */
  static readonly layer: Layer.Layer<SignIn, never, Configuration | HttpClient.HttpClient | AuthManager> = Layer.scoped(
    SignIn,
    Effect.flatMap(Configuration, (configuration) => {
      const { originator, provider } = OAuthProvider.fromConfiguration(configuration)
      return make(provider, { timeout: configuration.signIn.timeout, originator })
    })
  )
}
