/**
 * Many credentials in one server: one `AuthManager` per credential key,
 * made on first use and released when it has been idle for a while. Each key
 * has its own snapshot, poison, cooldown and single flight; its logs, spans
 * and metrics carry the key (a name, never a secret).
 */
import { Context, Duration, Effect, Layer, Metric, RcMap, type Scope } from "effect"
import { Configuration } from "../config/Configuration.js"
import type { Settings } from "../config/Settings.js"
import { TokenRefresher } from "../oauth/TokenRefresher.js"
import { AuthStore, bind } from "../stores/AuthStore.js"
import { CredentialStore } from "../stores/CredentialStore.js"
import { RefreshCoordinator } from "../stores/RefreshCoordinator.js"
import * as AuthManager from "./AuthManager.js"
import type { AuthStatus, AuthStatusParams } from "./AuthState.js"

export interface Options {
  /** Settings of every manager, over the defaults (`layer` takes them from the `Configuration`). */
  readonly settings?: Partial<Settings> | undefined
  /** A manager unused for this long is released (default 5 minutes); the next use makes it again. */
  readonly idleTimeToLive?: Duration.Input | undefined
}

export interface KeyedAuthManagerShape {
  /** The manager of `key`, held until the scope closes. */
  readonly get: (key: string) => Effect.Effect<AuthManager.AuthManagerShape, never, Scope.Scope>
  /** Runs `f` with the manager of `key`. */
  readonly use: <A, E, R>(
    key: string,
    f: (manager: AuthManager.AuthManagerShape) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
  /** `getAuthStatus` of `key`'s manager. */
  readonly getAuthStatus: (key: string, params?: AuthStatusParams) => Effect.Effect<AuthStatus>
  /** The keys whose managers are alive now. */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
}

/** Tags the logs, spans and metrics of `effect` with the credential key. */
const withKey = (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.annotateLogs("credential", key),
    Effect.annotateSpans("credential", key),
    Effect.updateService(Metric.CurrentMetricAttributes, (attributes) => ({ ...attributes, credential: key }))
  )

const keyed = (key: string, manager: AuthManager.AuthManagerShape): AuthManager.AuthManagerShape => {
  const k = withKey(key)
  return {
    getAuthStatus: (params) => k(manager.getAuthStatus(params)),
    readAccount: (params) => k(manager.readAccount(params)),
    refresh: k(manager.refresh),
    loginWithApiKey: (apiKey) => k(manager.loginWithApiKey(apiKey)),
    loginWithTokens: (tokens) => k(manager.loginWithTokens(tokens)),
    logout: k(manager.logout),
    reload: k(manager.reload),
    credentials: k(manager.credentials),
    reportUnauthorized: (token) => k(manager.reportUnauthorized(token)),
    state: manager.state,
    changes: manager.changes,
    hostTokens: manager.hostTokens
  }
}

/** Builds the keyed manager over the `CredentialStore`, `RefreshCoordinator` and `TokenRefresher` in context. */
export const make = Effect.fnUntraced(function*(options: Options = {}) {
  const credentials = yield* CredentialStore
  const coordinator = yield* RefreshCoordinator
  const refresher = yield* TokenRefresher
  const settings = options.settings ?? {}
  const managers = yield* RcMap.make({
    lookup: (key: string) =>
      AuthManager.make(settings).pipe(
        Effect.provideService(AuthStore, bind(key, credentials, coordinator)),
        Effect.provideService(TokenRefresher, refresher),
        // What the manager forks (its watch of storage) carries the key too.
        withKey(key),
        Effect.map((manager) => keyed(key, manager))
      ),
    idleTimeToLive: options.idleTimeToLive ?? Duration.minutes(5)
  })
  const get = (key: string) => RcMap.get(managers, key)
  return KeyedAuthManager.of({
    get,
    use: (key, f) => Effect.scoped(Effect.flatMap(get(key), f)),
    getAuthStatus: (key, params) => Effect.scoped(Effect.flatMap(get(key), (manager) => manager.getAuthStatus(params))),
    keys: Effect.map(RcMap.keys(managers), (keys) => Array.from(keys))
  })
})

/**
 * The managers of many credentials.
 *
 * @example
 * const status = Effect.flatMap(KeyedAuthManager, (auth) => auth.getAuthStatus("customer-42", { includeToken: true }))
 */
export class KeyedAuthManager extends Context.Service<KeyedAuthManager, KeyedAuthManagerShape>()(
  "effect-auth-manager/KeyedAuthManager"
) {
  /** Builds the keyed manager in a scope, with options given in code: see `make`. */
  static readonly make = make

  /**
   * Needs a `CredentialStore`, a `RefreshCoordinator` (PostgreSQL, or memory) and a `TokenRefresher`;
   * every manager's settings from the `Configuration` in context (see `AuthManager.settingsOf`).
   */
  static readonly layer: Layer.Layer<
    KeyedAuthManager,
    never,
    Configuration | CredentialStore | RefreshCoordinator | TokenRefresher
  > = Layer.effect(
    KeyedAuthManager,
    Effect.flatMap(Configuration, (configuration) => make({ settings: AuthManager.settingsOf(configuration) }))
  )
}
