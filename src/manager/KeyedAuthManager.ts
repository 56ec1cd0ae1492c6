/**
 * Many credentials in one server. Each key has its own snapshot, poison, cooldown and single
 * flight; its logs and spans carry the key (a name, never a secret); the metrics count all keys
 * together. Over a store with one feed of every key's changes (PostgreSQL, memory), a key is held
 * lightly: its state alone, a poll answered from it, its refresh woken when needed (see
 * `internal/cells.ts`); its full `AuthManager` is made only when asked for (`get`, `use`). Keys
 * unused for a while are let go; the next use reads them again.
 */
import { Context, Duration, Effect, ExecutionStrategy, Layer, Option, RcMap, Scope, Stream } from "effect"
import { Configuration } from "../config/Configuration.js"
import { defaultSettings, type Settings } from "../config/Settings.js"
import { TokenRefresher } from "../oauth/TokenRefresher.js"
import { AuthStore } from "../stores/AuthStore.js"
import { bind } from "../stores/AuthStore.js"
import { CredentialStore } from "../stores/CredentialStore.js"
import { RefreshCoordinator } from "../stores/RefreshCoordinator.js"
import * as AuthManager from "./AuthManager.js"
import type { AuthStatus, AuthStatusParams } from "./AuthState.js"
import * as Cells from "./internal/cells.js"
import * as Watch from "./internal/watch.js"

export interface Options {
  /** Settings of every manager, over the defaults (`layer` takes them from the `Configuration`). */
  readonly settings?: Partial<Settings> | undefined
  /**
   * A key unused for this long is let go (default 5 minutes; a key held lightly within a quarter
   * of that more); the next use reads it again.
   */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
  /**
   * The most keys held lightly that refresh at once (default 64); the others wait for a turn,
   * holding nothing meanwhile, and one adopted meanwhile makes no request (see `internal/turns.ts`).
   * It also bounds the token requests this process has in flight for them. A caller whose key waits
   * for its turn waits no longer than the refresh timeout: a poll then answers with what it holds.
   */
  readonly refreshesAtOnce?: number | undefined
}

/** How many keys held lightly refresh at once unless told otherwise. */
const defaultRefreshesAtOnce = 64

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

/** A key's manager while it is alive (none while it is being made, `missed` a change heard then). */
interface Live {
  manager: AuthManager.AuthManagerShape | undefined
  missed: boolean
}

/**
 * Tags the logs and spans of `effect` with the credential key. Not the metrics: a label per key
 * would keep a counter per credential ever used, for the life of the process (a metric's labels
 * must be few), where the managers themselves are released when idle.
 */
const withKey = (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.annotateLogs("credential", key),
    Effect.annotateSpans("credential", key)
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
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const credentials = yield* CredentialStore
    const coordinator = yield* RefreshCoordinator
    const refresher = yield* TokenRefresher
    const settings = options.settings ?? {}
    const idleTimeToLive = Duration.decode(options.idleTimeToLive ?? Duration.minutes(5))
    const refreshesAtOnce = options.refreshesAtOnce ?? defaultRefreshesAtOnce
    if (!Number.isInteger(refreshesAtOnce) || refreshesAtOnce < 1) {
      return yield* Effect.dieMessage(
        `refreshesAtOnce ${refreshesAtOnce} cannot be used: it must be a whole number from 1`
      )
    }
    const feed = credentials.changedKeys
    const layerScope = yield* Effect.scope

    // ---- keys held lightly (a store with one feed of every key's changes) ---------------------
    // Polls of a key are answered from its cell; a key's full manager is made only when asked for
    // (`get`, `use`), taking the cell's state over. A store without such a feed gives each key a
    // manager watching its own changes.
    const cellScope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
    const cells = feed === undefined ? undefined : yield* Cells.make({
      credentials,
      coordinator,
      refresher,
      settings: { ...defaultSettings, ...settings },
      scope: cellScope,
      idleTimeToLive,
      refreshesAtOnce,
      withKey
    })
    // When stopping, the keys' refreshes in flight are waited for and saved, then the rest stops.
    if (cells !== undefined) yield* Scope.addFinalizer(layerScope, cells.stopping)

    const live = new Map<string, Live>()
    const managers = yield* RcMap.make({
      lookup: (key: string) =>
        Effect.gen(function*() {
          // Registered before the manager reads storage: a change heard meanwhile is reloaded after.
          const entry: Live = { manager: undefined, missed: false }
          live.set(key, entry)
          yield* Effect.addFinalizer(() => Effect.sync(() => live.get(key) === entry && live.delete(key)))
          const handed = cells === undefined ? undefined : yield* cells.handOver(key)
          const bound = bind(key, credentials, coordinator)
          const manager = yield* AuthManager.makeFrom(settings, handed).pipe(
            // With one feed of every key's changes, the managers are watched by one fiber (below),
            // not one each.
            Effect.provideService(AuthStore, feed === undefined ? bound : { ...bound, changed: Stream.empty }),
            Effect.provideService(TokenRefresher, refresher),
            // What the manager forks (its flights) carries the key too.
            withKey(key),
            Effect.map((manager) => keyed(key, manager))
          )
          entry.manager = manager
          // Handed over from a key held lightly: a change heard by that key's reload in flight is
          // read again here.
          if (entry.missed || handed !== undefined) yield* reloadOf(key)
          return manager
        }),
      idleTimeToLive
    })

    // ---- one watch of every key (a store with one feed of changes) ---------------------------
    const scope = yield* Effect.scope
    // The keys being reloaded, and whether another change came meanwhile (one more reload then).
    const reloading = new Map<string, { again: boolean }>()
    const reloadOf = (key: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        const entry = live.get(key)
        if (entry === undefined) return cells === undefined ? Effect.void : cells.reload(key)
        const manager = entry.manager
        if (manager === undefined) return Effect.sync(() => (entry.missed = true))
        const running = reloading.get(key)
        if (running !== undefined) return Effect.sync(() => (running.again = true))
        const mark = { again: false }
        reloading.set(key, mark)
        return Effect.suspend(() => {
          mark.again = false
          return Watch.reloadQuietly(manager.reload)
        }).pipe(
          Effect.repeat({ while: () => mark.again }),
          Effect.ensuring(Effect.sync(() => reloading.delete(key))),
          Effect.forkIn(scope),
          Effect.asVoid
        )
      })
    if (feed !== undefined) {
      yield* feed.pipe(
        Stream.runForEach(Option.match({
          onNone: () =>
            Effect.zipRight(
              Effect.forEach(live.keys(), reloadOf, { discard: true }),
              cells === undefined ? Effect.void : cells.reloadAll
            ),
          onSome: reloadOf
        })),
        Effect.forkScoped
      )
    }
    const get = (key: string) => RcMap.get(managers, key)
    const viaManager = (key: string, params: AuthStatusParams | undefined) =>
      Effect.scoped(Effect.flatMap(get(key), (manager) => manager.getAuthStatus(params)))
    return KeyedAuthManager.of({
      get,
      use: (key, f) => Effect.scoped(Effect.flatMap(get(key), f)),
      getAuthStatus: (key, params) =>
        cells === undefined || live.has(key) ? viaManager(key, params) : cells.status(key, params),
      keys: Effect.map(
        Effect.zip(RcMap.keys(managers), cells === undefined ? Effect.succeed([]) : cells.keys),
        ([full, light]) => Array.from(new Set([...full, ...light]))
      )
    })
  })

/**
 * The managers of many credentials.
 *
 * @example
 * const status = Effect.flatMap(KeyedAuthManager, (auth) => auth.getAuthStatus("customer-42", { includeToken: true }))
 */
export class KeyedAuthManager extends Context.Tag("effect-auth-manager/KeyedAuthManager")<
  KeyedAuthManager,
  KeyedAuthManagerShape
>() {
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
  > = Layer.scoped(
    KeyedAuthManager,
    Effect.flatMap(Configuration, (configuration) => make({ settings: AuthManager.settingsOf(configuration) }))
  )
}
