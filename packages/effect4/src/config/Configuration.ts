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
import { Config, Context, Duration, Effect, Layer, type LogLevel, Option, Redacted, Schema, SchemaIssue } from "effect"
import { homedir } from "node:os"
import {
  type ClientAuth,
  codexClientId,
  codexIssuer,
  codexTokenUrl,
  type CredentialsStoreMode,
  defaultCredentialKey,
  defaultOriginator,
  defaultPoolSize,
  defaultRefreshTimeout,
  defaultSignInTimeout,
  defaultTablePrefix
} from "./internal/defaults.js"
import { config } from "./internal/environment.js"
import { refuse } from "./internal/refuse.js"
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
/** The `Config.ConfigError` that refuses a setting: `refusal(["database", "url"], "Expected a postgres:// URL")`. */
export { refuse as refusal } from "./internal/refuse.js"

/** The whole configuration, every default applied. */
export interface Options {
  /** The folder of `auth.json` (`CODEX_HOME`, default `$HOME/.codex`). */
  readonly codexHome: string
  /**
   * Where the programs keep the credentials, over `cli_auth_credentials_store` in
   * `$CODEX_HOME/config.toml`; none: what that file says (default `file`).
   */
  readonly credentialsStore: Option.Option<CredentialsStoreMode>
  /**
   * How long callers wait for the token endpoint's answer (the request stays open longer: see
   * `Settings.answerLimit`); lock waits and the shutdown wait are derived from it (30 s).
   */
  readonly refreshTimeout: Duration.Duration
  readonly tokenEndpoint: {
    /** Where refresh tokens are sent (Codex's by default); http(s) only. */
    readonly url: string
    readonly clientId: string
    readonly clientSecret: Option.Option<Redacted.Redacted<string>>
    /** `json` (what the Codex CLI sends) or `form` (RFC 6749 §6). */
    readonly bodyFormat: "json" | "form"
  }
  /** The manager's timings, over `defaultSettings`. */
  readonly manager: Partial<Settings>
  readonly signIn: {
    /** An OpenID Connect issuer to sign in with (and refresh through); none: Codex. */
    readonly issuer: Option.Option<string>
    /** The client of `issuer`: its id (required with an issuer), secret, authentication and scopes. */
    readonly clientId: Option.Option<string>
    readonly clientSecret: Option.Option<Redacted.Redacted<string>>
    readonly clientAuth: Option.Option<ClientAuth>
    readonly scopes: Option.Option<string>
    /** Codex's issuer and client, for the Codex sign-in. */
    readonly codexIssuer: string
    readonly codexClientId: string
    readonly originator: string
    /** The loopback ports a browser sign-in comes back to; none: the provider's own. */
    readonly ports: Option.Option<ReadonlyArray<number>>
    readonly timeout: Duration.Duration
  }
  /** PostgreSQL instead of `auth.json`: its URL (a secret), the credential key and the tables' prefix. */
  readonly database: Option.Option<{
    readonly url: Redacted.Redacted<string>
    readonly credentialKey: string
    readonly tablePrefix: string
    /** Connections in the pool: a replica uses at most this many and one more that listens. */
    readonly poolSize: number
  }>
  /** The programs' log level on stderr; none: each program's own default (see `variables`). */
  readonly logLevel: Option.Option<LogLevel.LogLevel>
}

/** What `layer` takes: any part of `Options`, the rest defaulted (`codexHome`: the user's home folder's `.codex`). */
export interface Input {
  readonly codexHome?: string
  readonly credentialsStore?: CredentialsStoreMode
  readonly refreshTimeout?: Duration.Duration
  readonly tokenEndpoint?: Partial<Options["tokenEndpoint"]>
  readonly manager?: Partial<Settings>
  readonly signIn?: Partial<Options["signIn"]>
  readonly database?: {
    readonly url: Redacted.Redacted<string>
    readonly credentialKey?: string
    readonly tablePrefix?: string
    readonly poolSize?: number
  }
  readonly logLevel?: LogLevel.LogLevel
}

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
