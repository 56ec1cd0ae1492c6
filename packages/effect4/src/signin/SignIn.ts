/**
 * Signing in: a browser sign-in (authorization code with PKCE, back through
 * a loopback server on 127.0.0.1) or a device sign-in (a code the person
 * enters on another device), for the provider of `OAuthProvider`. The result
 * is written through `AuthManager` (under the store's lock; a new snapshot,
 * so any poison is cleared). One sign-in at a time: starting one cancels the
 * one in progress, and each is abandoned after a time limit (10 minutes).
 */
import * as Pkce from "@effect-auth-manager/core/pkce"
import { Context, Duration, Effect, Exit, Layer, Option, Redacted, Ref, type Result, Semaphore } from "effect"
import { HttpClient } from "effect/http"
import { Configuration } from "../config/Configuration.js"
import type { SignInError } from "../errors/Errors.js"
import { AuthManager } from "../manager/AuthManager.js"
import type { AuthState } from "../manager/AuthState.js"
import * as OAuthProvider from "../oauth/OAuthProvider.js"
import { makeApp } from "./internal/browser.js"
import { startDevice as beginDevice } from "./internal/exchange.js"
import * as Loopback from "./internal/loopback.js"
import * as Session from "./internal/session.js"

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
    | ((outcome: Result.Result<AuthState, SignInError>, loginId: string) => Effect.Effect<void>)
    | undefined
  /**
   * Held while the credentials are saved and `onComplete` runs: whoever takes
   * it to announce a change of credentials announces after the completion.
   */
  readonly announce?: Semaphore.Semaphore | undefined
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

/** Builds the service for the provider (or the effect that discovers it). */
export const make = Effect.fnUntraced(function*(
  providerSource:
    | OAuthProvider.OAuthProvider
    | Effect.Effect<OAuthProvider.OAuthProvider, SignInError, HttpClient.HttpClient>,
  options: Partial<Settings> = {}
) {
  const settings: Settings = { ...defaultSettings, ...options }
  const layerScope = yield* Effect.scope
  const withClient = Effect.provideService(HttpClient.HttpClient, yield* HttpClient.HttpClient)
  const service: Session.Service = {
    auth: yield* AuthManager,
    layerScope,
    current: yield* Ref.make(Option.none<Session.Running>()),
    timeout: settings.timeout
  }

  const resolved = yield* Ref.make(Option.none<OAuthProvider.OAuthProvider>())
  const provider = Effect.gen(function*() {
    const known = yield* Ref.get(resolved)
    if (Option.isSome(known)) return known.value
    const found = Effect.isEffect(providerSource) ? yield* withClient(providerSource) : providerSource
    yield* Ref.set(resolved, Option.some(found))
    return found
  })
  const starting = yield* Semaphore.make(1)

  const startBrowser = Effect.fn("SignIn.startBrowser")(function*(options: StartOptions = {}) {
    const p = yield* provider
    const { info, login } = yield* Session.begin(service, "browser", options, (context) =>
      Effect.gen(function*() {
        const pkce = yield* Effect.sync(Pkce.makePkce)
        const state = yield* Effect.sync(Pkce.makeState)
        let origin = ""
        const app = yield* makeApp({
          provider: p,
          context,
          state,
          verifier: Redacted.make(pkce.verifier),
          origin: () => origin,
          withClient,
          layerScope
        })
        const port = yield* withClient(Loopback.serve(p.loopback, app, context.scope))
        origin = `http://127.0.0.1:${port}`
        const redirectUri = `${origin}${p.loopback.path}`
        return {
          redirectUri,
          authUrl: OAuthProvider.authorizeUrl(p, {
            redirectUri,
            challenge: pkce.challenge,
            state,
            originator: settings.originator
          })
        }
      }))
    return { _tag: "Browser", ...info, ...login } satisfies BrowserLogin
  }, (effect) => starting.withPermits(1)(effect))

  const startDevice = Effect.fn("SignIn.startDevice")(function*(options: StartOptions = {}) {
    const p = yield* provider
    const { info, login } = yield* Session.begin(service, "device", options, (context) =>
      Effect.gen(function*() {
        const device = yield* withClient(beginDevice(p))
        yield* device.poll.pipe(
          withClient,
          Effect.flatMap(context.save),
          Effect.catch((error) => context.finish(Exit.fail(error))),
          Effect.forkIn(context.scope)
        )
        return {
          userCode: device.userCode,
          verificationUrl: device.verificationUrl,
          verificationUrlComplete: device.verificationUrlComplete
        }
      }))
    return { _tag: "Device", ...info, ...login } satisfies DeviceLogin
  }, (effect) => starting.withPermits(1)(effect))

  const cancel = (loginId: string) =>
    starting.withPermits(1)(Effect.gen(function*() {
      const running = yield* Ref.get(service.current)
      if (Option.isNone(running) || running.value.loginId !== loginId) return "notFound" as const
      yield* Session.cancelCurrent(service.current)
      return "canceled" as const
    }))

  return SignIn.of({ provider, startBrowser, startDevice, cancel })
})

/**
 * Signs the user in.
 *
 * @example
 * const signIn = yield* SignIn
 * const login = yield* signIn.startBrowser()
 * yield* Console.log(`Open ${login.authUrl}`)
 * yield* login.await
 */
export class SignIn extends Context.Service<SignIn, SignInShape>()("effect-auth-manager/SignIn") {
  /** Builds the sign-in service in a scope: see `make`. */
  static readonly make = make

  /** The provider and settings of the `Configuration` in context (see `OAuthProvider.fromConfiguration`). */
  static readonly layer: Layer.Layer<SignIn, never, Configuration | HttpClient.HttpClient | AuthManager> = Layer
    .effect(
      SignIn,
      Effect.gen(function*() {
        const configuration = yield* Configuration
        const { originator, provider } = OAuthProvider.fromConfiguration(configuration)
        return yield* make(provider, { timeout: configuration.signIn.timeout, originator })
      })
    )
}
