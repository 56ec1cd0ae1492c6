/**
 * Everything the library reads from outside, in one service: where
 * `auth.json` is, the token endpoint, the manager's timings, the sign-in
 * provider, the database, the log level.
 *
 * `Configuration.layer(options)` sets it in code and reads no environment;
 * `Configuration.layerConfig` reads it through Effect's `Config` (the
 * environment variables of `variables`, the one list of them). The library's
 * configured layers (`AuthStore.layerFile`, `TokenRefresher.layerHttp`,
 * `AuthManager.layer`, `SignIn.layer`, `PgStore.layerConfig`, …) take their
 * settings from this service; `layerNode` provides it from the environment.
 *
 * @example
 * // Everything in code, nothing from the environment:
 * const live = layerNodeWith({ codexHome: "/srv/codex", manager: { refreshWindow: Duration.minutes(2) } })
 * // or piece by piece:
 * AuthManager.layer.pipe(Layer.provide(Configuration.layer({ codexHome: "/srv/codex" })))
 */
import {
  codexHomeOf,
  defaults,
  managerDurations,
  type PlainSettings,
  settingsProblem
} from "@effect-auth-manager/core/settings"
import { Config, Context, Duration, Effect, Layer, Option, Redacted, Schema, SchemaIssue } from "effect"
import { homedir } from "node:os"
import {
  codexClientId,
  codexIssuer,
  codexTokenUrl,
  defaultCredentialKey,
  defaultOriginator,
  defaultPoolSize,
  defaultRefreshTimeout,
  defaultSignInTimeout,
  defaultTablePrefix
} from "./internal/defaults.js"
import { config } from "./internal/environment.js"
import { refuse } from "./internal/refuse.js"
import type { Input, Options } from "./Options.js"

export {
  type ClientAuth,
  clientAuths,
  codexClientId,
  codexIssuer,
  codexTokenUrl,
  type CredentialsStoreMode,
  credentialsStoreModes
} from "./internal/defaults.js"
export { codexHomeConfig, config } from "./internal/environment.js"
export type { Input, Options } from "./Options.js"
/** The `Config.ConfigError` that refuses a setting: `refusal(["database", "url"], "Expected a postgres:// URL")`. */
export { refuse as refusal } from "./internal/refuse.js"

/** `options` in the core's plain terms: durations in milliseconds, absent as undefined. */
const plainOf = (options: Options): PlainSettings => ({
  refreshTimeoutMillis: Duration.toMillis(options.refreshTimeout),
  manager: Object.fromEntries(
    managerDurations.flatMap(([name]) => {
      const duration = options.manager[name]
      return duration === undefined ? [] : [[name, Duration.toMillis(duration)]]
    })
  ),
  signInTimeoutMillis: Duration.toMillis(options.signIn.timeout),
  tokenUrl: options.tokenEndpoint.url,
  ports: Option.getOrUndefined(options.signIn.ports),
  database: Option.getOrUndefined(
    Option.map(options.database, (database) => ({
      url: Redacted.value(database.url),
      tablePrefix: database.tablePrefix
    }))
  )
})

/** The first setting of `options` that cannot work, as the `ConfigError` that names it; none when all can. */
export const check = (options: Options): Option.Option<Config.ConfigError> =>
  Option.map(
    Option.fromNullishOr(settingsProblem(plainOf(options))),
    (problem) => refuse(problem.path, problem.message)
  )

/** `Input` with every default applied. */
export const resolve = (input: Input = {}): Options => ({
  // An empty folder name is no folder: as in Codex, it is the default.
  codexHome: codexHomeOf(input.codexHome, homedir()),
  credentialsStore: Option.fromNullishOr(input.credentialsStore),
  refreshTimeout: input.refreshTimeout ?? defaultRefreshTimeout,
  tokenEndpoint: {
    url: codexTokenUrl,
    clientId: codexClientId,
    clientSecret: Option.none(),
    bodyFormat: defaults.bodyFormat,
    ...input.tokenEndpoint
  },
  manager: input.manager ?? {},
  signIn: {
    issuer: Option.none(),
    clientId: Option.none(),
    clientSecret: Option.none(),
    clientAuth: Option.none(),
    scopes: Option.none(),
    codexIssuer,
    codexClientId,
    originator: defaultOriginator,
    ports: Option.none(),
    timeout: defaultSignInTimeout,
    ...input.signIn
  },
  database: Option.map(Option.fromNullishOr(input.database), (database) => ({
    url: database.url,
    credentialKey: database.credentialKey ?? defaultCredentialKey,
    tablePrefix: database.tablePrefix ?? defaultTablePrefix,
    poolSize: database.poolSize ?? defaultPoolSize
  })),
  logLevel: Option.fromNullishOr(input.logLevel)
})

/**
 * A `ConfigError` on one line, each wrong setting as `NAME: what is wrong`: Schema writes the path
 * of an issue on a line of its own, and the programs print the error as a single line.
 */
export const oneLine = (error: Config.ConfigError): Config.ConfigError => {
  if (!Schema.isSchemaError(error.cause)) return error
  const text = formatter(error.cause.issue).issues.map(({ message, path }) =>
    path === undefined || path.length === 0 ? message : `${path.map(String).join(".")}: ${message}`
  ).join("; ").replace(/\s*\n\s*/g, " ")
  return new Config.ConfigError(new Schema.SchemaError(new SchemaIssue.InvalidValue({ message: text })))
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * The library's configuration.
 *
 * @example
 * const live = AuthManager.layer.pipe(
 *   Layer.provideMerge(Layer.mergeAll(AuthStore.layerFile, TokenRefresher.layerHttp)),
 *   Layer.provide(Configuration.layerConfig)
 * )
 */
export class Configuration extends Context.Service<Configuration, Options>()("effect-auth-manager/Configuration") {
  /**
   * Set in code: the given options over the defaults; no environment variable is read. A value
   * that cannot work (a duration at or below zero, a port out of range…) is a `ConfigError` naming it.
   */
  static readonly layer = (input: Input = {}): Layer.Layer<Configuration, Config.ConfigError> =>
    Layer.effect(
      Configuration,
      Effect.suspend(() => {
        const options = resolve(input)
        return Option.match(check(options), {
          onNone: () => Effect.succeed(options),
          onSome: (error) => Effect.fail(oneLine(error))
        })
      })
    )

  /** Read from the environment (`variables`), through `Config`. A value that cannot work is a `ConfigError` at start. */
  static readonly layerConfig: Layer.Layer<Configuration, Config.ConfigError> = Layer.effect(
    Configuration,
    Effect.mapError(config, oneLine)
  )
}
