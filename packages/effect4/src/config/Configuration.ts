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
  durationAllowed,
  durationFits,
  type DurationRule,
  isDatabaseUrl,
  isPort,
  portsAllowed,
  tablePrefixProblem,
  tokenUrlProblem
} from "@effect-auth-manager/core/rules"
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
import type { Settings } from "./Settings.js"

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

/** The manager's durations `Configuration.layer` checks, and what each allows. */
const managerDurations: ReadonlyArray<readonly [keyof Settings, DurationRule]> = [
  ["refreshWindow", "nonNegative"],
  // Zero is no guard at all (tests and benchmarks force refreshes with it); below zero is a typo.
  ["minRefreshInterval", "nonNegative"],
  ["staleAfter", "positive"],
  ["backoffBase", "positive"],
  ["backoffCap", "positive"],
  ["maxRetryAfter", "nonNegative"],
  ["shutdownWait", "positive"],
  ["watchDebounce", "nonNegative"]
]

/** The first setting of `options` that cannot work, as the `ConfigError` that names it; none when all can. */
export const check = (options: Options): Option.Option<Config.ConfigError> => {
  const refused = (path: ReadonlyArray<string>, message: string) => Option.some(refuse(path, message))
  const durations: ReadonlyArray<readonly [ReadonlyArray<string>, Duration.Duration | undefined, DurationRule]> = [
    [["refreshTimeout"], options.refreshTimeout, "positive"],
    ...managerDurations.map(([name, rule]) =>
      [["manager", name], options.manager[name] as Duration.Duration | undefined, rule] as const
    ),
    [["signIn", "timeout"], options.signIn.timeout, "positive"]
  ]
  for (const [path, duration, rule] of durations) {
    if (duration !== undefined && !durationFits(Duration.toMillis(duration), rule)) {
      return refused(path, `Expected ${durationAllowed[rule]} but received ${Duration.format(duration)}`)
    }
  }
  const urlProblem = tokenUrlProblem(options.tokenEndpoint.url)
  if (urlProblem !== undefined) {
    return refused(["tokenEndpoint", "url"], `Expected an http:// or https:// URL, but ${urlProblem}`)
  }
  if (Option.isSome(options.signIn.ports)) {
    const ports = options.signIn.ports.value
    if (ports.length === 0 || !ports.every(isPort)) {
      return refused(["signIn", "ports"], `Expected ${portsAllowed} but received [${ports.join(", ")}]`)
    }
  }
  if (Option.isSome(options.database)) {
    if (!isDatabaseUrl(Redacted.value(options.database.value.url))) {
      return refused(["database", "url"], "Expected a postgres:// URL")
    }
    const prefixProblem = tablePrefixProblem(options.database.value.tablePrefix)
    if (prefixProblem !== undefined) return refused(["database", "tablePrefix"], prefixProblem)
  }
  return Option.none()
}

/** `Input` with every default applied. */
export const resolve = (input: Input = {}): Options => ({
  // An empty folder name is no folder: as in Codex, it is the default.
  codexHome: input.codexHome !== undefined && input.codexHome !== "" ? input.codexHome : `${homedir()}/.codex`,
  credentialsStore: Option.fromNullishOr(input.credentialsStore),
  refreshTimeout: input.refreshTimeout ?? defaultRefreshTimeout,
  tokenEndpoint: {
    url: codexTokenUrl,
    clientId: codexClientId,
    clientSecret: Option.none(),
    bodyFormat: "json",
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
