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
import type * as Classify from "@effect-auth-manager/core/classify"
import { type CredentialsStoreMode, credentialsStoreModes } from "@effect-auth-manager/core/codex"
import * as Providers from "@effect-auth-manager/core/providers"
import {
  durationAllowed,
  durationFits,
  type DurationRule,
  isDatabaseUrl,
  parsePoolSize,
  parsePorts,
  poolSizeAllowed,
  portsAllowed,
  tablePrefixProblem,
  tokenUrlProblem
} from "@effect-auth-manager/core/rules"
import {
  codexHomeIn,
  codexHomeOf,
  defaults,
  managerDurations,
  type PlainSettings,
  settingsProblem
} from "@effect-auth-manager/core/settings"
import { type Variable, variables } from "@effect-auth-manager/core/variables"
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"
import { homedir } from "node:os"
import type { Settings } from "./Settings.js"

/** The Codex defaults: the token endpoint, its client, and the sign-in issuer. */
export const { codexClientId, codexIssuer, codexTokenUrl } = Providers

/** How a client authenticates to the token endpoint (RFC 6749 §2.3.1). */
export type ClientAuth = Classify.ClientAuth

/**
 * Where the programs keep the credentials, as Codex's `cli_auth_credentials_store` says: `file`
 * (`auth.json`), `keyring` (the OS keyring, as Codex), `auto` (the keyring when there is one, else
 * the file) or `ephemeral` (in memory only, for this process).
 */
export { type CredentialsStoreMode, credentialsStoreModes }

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

/** `config`, described for the configuration reference by what `variables` says of `name`. */
const described = <A>(name: Variable, config: Config.Config<A>): Config.Config<A> =>
  Config.withDescription(config, variables[name])

const defaultRefreshTimeout = Duration.millis(defaults.refreshTimeoutMillis)
const defaultSignInTimeout = Duration.millis(defaults.signInTimeoutMillis)

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
export const check = (options: Options): Option.Option<ConfigError.ConfigError> =>
  Option.map(
    Option.fromNullable(settingsProblem(plainOf(options))),
    (problem) => ConfigError.InvalidData([...problem.path], problem.message)
  )

/** `Input` with every default applied. */
export const resolve = (input: Input = {}): Options => ({
  // An empty folder name is no folder: as in Codex, it is the default.
  codexHome: codexHomeOf(input.codexHome, homedir()),
  credentialsStore: Option.fromNullable(input.credentialsStore),
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
    originator: defaults.originator,
    ports: Option.none(),
    timeout: defaultSignInTimeout,
    ...input.signIn
  },
  database: Option.map(Option.fromNullable(input.database), (database) => ({
    url: database.url,
    credentialKey: database.credentialKey ?? defaults.credentialKey,
    tablePrefix: database.tablePrefix ?? defaults.tablePrefix,
    poolSize: database.poolSize ?? defaults.poolSize
  })),
  logLevel: Option.fromNullable(input.logLevel)
})

const optional = <A>(config: Config.Config<A>) => Config.option(config)

// A variable set to nothing is unset, as Codex reads `CODEX_HOME` (and a shell's `HOME`).
const nonEmpty = (name: string) =>
  Config.string(name).pipe(Config.validate({ message: `${name} is empty`, validation: (value) => value !== "" }))

/** `CODEX_HOME`, else `$HOME/.codex`, else the user's home folder's `.codex`; an empty value is unset. */
export const codexHomeConfig: Config.Config<string> = nonEmpty("CODEX_HOME").pipe(
  Config.orElse(() => nonEmpty("HOME").pipe(Config.map(codexHomeIn))),
  Config.orElse(() => Config.sync(() => codexHomeIn(homedir())))
)

const ports = (name: Variable) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) =>
      Option.match(Option.fromNullable(parsePorts(text)), {
        onNone: () => Either.left(ConfigError.InvalidData([], `Expected ${portsAllowed} but received "${text}"`)),
        onSome: Either.right
      })
    ),
    optional
  )

/** A duration variable; a negative one is refused by its text, since a `Duration` below zero is zero. */
const durationOf = (name: Variable, rule: DurationRule) =>
  Config.string(name).pipe(Config.mapOrFail((text) =>
    Option.match(Duration.decodeUnknown(text), {
      onNone: () =>
        Either.left(ConfigError.InvalidData([], `Expected a duration (e.g. 30 seconds) but received "${text}"`)),
      onSome: (duration) =>
        !text.trim().startsWith("-") && durationFits(Duration.toMillis(duration), rule)
          ? Either.right(duration)
          : Either.left(ConfigError.InvalidData([], `Expected ${durationAllowed[rule]} but received "${text}"`))
    })
  ))

const duration = (name: Variable, fallback: Duration.Duration) =>
  durationOf(name, "positive").pipe(Config.withDefault(fallback))

/** `Options` from the environment (`variables`), through Effect's `Config`. */
export const config: Config.Config<Options> = Config.all({
  codexHome: described("CODEX_HOME", codexHomeConfig),
  credentialsStore: optional(
    Config.literal(...credentialsStoreModes)("EFFECT_AUTH_CREDENTIALS_STORE").pipe(
      Config.withDescription(variables.EFFECT_AUTH_CREDENTIALS_STORE)
    )
  ),
  refreshTimeout: described(
    "EFFECT_AUTH_REFRESH_TIMEOUT",
    duration("EFFECT_AUTH_REFRESH_TIMEOUT", defaultRefreshTimeout)
  ),
  tokenEndpoint: Config.all({
    // A typo here would fail every refresh: it is refused when the program starts instead.
    url: described(
      "CODEX_REFRESH_TOKEN_URL_OVERRIDE",
      Config.string("CODEX_REFRESH_TOKEN_URL_OVERRIDE").pipe(
        Config.validate({
          message: "CODEX_REFRESH_TOKEN_URL_OVERRIDE must be an http:// or https:// URL",
          validation: (url) => tokenUrlProblem(url) === undefined
        }),
        Config.withDefault(codexTokenUrl)
      )
    ),
    clientId: described(
      "EFFECT_AUTH_CLIENT_ID",
      Config.string("EFFECT_AUTH_CLIENT_ID").pipe(Config.withDefault(codexClientId))
    ),
    clientSecret: described("EFFECT_AUTH_CLIENT_SECRET", optional(Config.redacted("EFFECT_AUTH_CLIENT_SECRET"))),
    bodyFormat: described(
      "EFFECT_AUTH_REFRESH_BODY",
      Config.literal("json", "form")("EFFECT_AUTH_REFRESH_BODY").pipe(Config.withDefault(defaults.bodyFormat))
    )
  }),
  manager: Config.all({
    refreshWindow: described(
      "EFFECT_AUTH_REFRESH_WINDOW",
      optional(durationOf("EFFECT_AUTH_REFRESH_WINDOW", "nonNegative"))
    ),
    minRefreshInterval: described(
      "EFFECT_AUTH_MIN_REFRESH_INTERVAL",
      optional(durationOf("EFFECT_AUTH_MIN_REFRESH_INTERVAL", "nonNegative"))
    ),
    backoffBase: described("EFFECT_AUTH_BACKOFF_BASE", optional(durationOf("EFFECT_AUTH_BACKOFF_BASE", "positive"))),
    requiresOpenaiAuth: described(
      "EFFECT_AUTH_REQUIRES_OPENAI_AUTH",
      optional(Config.boolean("EFFECT_AUTH_REQUIRES_OPENAI_AUTH"))
    )
  }).pipe(Config.map((manager): Partial<Settings> => ({
    ...Option.match(manager.refreshWindow, { onNone: () => ({}), onSome: (refreshWindow) => ({ refreshWindow }) }),
    ...Option.match(manager.minRefreshInterval, {
      onNone: () => ({}),
      onSome: (minRefreshInterval) => ({ minRefreshInterval })
    }),
    ...Option.match(manager.backoffBase, { onNone: () => ({}), onSome: (backoffBase) => ({ backoffBase }) }),
    ...Option.match(manager.requiresOpenaiAuth, {
      onNone: () => ({}),
      onSome: (requiresOpenaiAuth) => ({ requiresOpenaiAuth })
    })
  }))),
  signIn: Config.all({
    issuer: described("EFFECT_AUTH_ISSUER", optional(Config.string("EFFECT_AUTH_ISSUER"))),
    clientId: described("EFFECT_AUTH_CLIENT_ID", optional(Config.string("EFFECT_AUTH_CLIENT_ID"))),
    clientSecret: described("EFFECT_AUTH_CLIENT_SECRET", optional(Config.redacted("EFFECT_AUTH_CLIENT_SECRET"))),
    clientAuth: described(
      "EFFECT_AUTH_CLIENT_AUTH",
      optional(Config.literal("none", "client_secret_post", "client_secret_basic")("EFFECT_AUTH_CLIENT_AUTH"))
    ),
    scopes: described("EFFECT_AUTH_SCOPES", optional(Config.string("EFFECT_AUTH_SCOPES"))),
    codexIssuer: described(
      "CODEX_APP_SERVER_LOGIN_ISSUER",
      Config.string("CODEX_APP_SERVER_LOGIN_ISSUER").pipe(Config.withDefault(codexIssuer))
    ),
    codexClientId: described(
      "CODEX_APP_SERVER_LOGIN_CLIENT_ID",
      Config.string("CODEX_APP_SERVER_LOGIN_CLIENT_ID").pipe(Config.withDefault(codexClientId))
    ),
    originator: described(
      "EFFECT_AUTH_LOGIN_ORIGINATOR",
      Config.string("EFFECT_AUTH_LOGIN_ORIGINATOR").pipe(Config.withDefault(defaults.originator))
    ),
    ports: described("EFFECT_AUTH_LOGIN_PORTS", ports("EFFECT_AUTH_LOGIN_PORTS")),
    timeout: described("EFFECT_AUTH_LOGIN_TIMEOUT", duration("EFFECT_AUTH_LOGIN_TIMEOUT", defaultSignInTimeout))
  }),
  database: optional(Config.all({
    url: described(
      "EFFECT_AUTH_DATABASE_URL",
      Config.redacted("EFFECT_AUTH_DATABASE_URL").pipe(
        Config.validate({
          message: "EFFECT_AUTH_DATABASE_URL must be a postgres:// URL",
          validation: (url) => isDatabaseUrl(Redacted.value(url))
        })
      )
    ),
    credentialKey: described(
      "EFFECT_AUTH_CREDENTIAL_KEY",
      Config.string("EFFECT_AUTH_CREDENTIAL_KEY").pipe(Config.withDefault(defaults.credentialKey))
    ),
    tablePrefix: described(
      "EFFECT_AUTH_DATABASE_TABLE_PREFIX",
      Config.string("EFFECT_AUTH_DATABASE_TABLE_PREFIX").pipe(
        Config.mapOrFail((prefix) => {
          const problem = tablePrefixProblem(prefix)
          return problem === undefined ? Either.right(prefix) : Either.left(ConfigError.InvalidData([], problem))
        }),
        Config.withDefault(defaults.tablePrefix)
      )
    ),
    poolSize: described(
      "EFFECT_AUTH_DATABASE_POOL_SIZE",
      Config.string("EFFECT_AUTH_DATABASE_POOL_SIZE").pipe(
        Config.mapOrFail((text) => {
          const size = parsePoolSize(text)
          return size !== undefined
            ? Either.right(size)
            : Either.left(ConfigError.InvalidData([], `Expected ${poolSizeAllowed} but received "${text}"`))
        }),
        Config.withDefault(defaults.poolSize)
      )
    )
  })),
  logLevel: described("EFFECT_AUTH_LOG_LEVEL", optional(Config.logLevel("EFFECT_AUTH_LOG_LEVEL")))
})

/**
 * The library's configuration.
 *
 * @example
 * const live = AuthManager.layer.pipe(
 *   Layer.provideMerge(Layer.mergeAll(AuthStore.layerFile, TokenRefresher.layerHttp)),
 *   Layer.provide(Configuration.layerConfig)
 * )
 */
export class Configuration extends Context.Tag("effect-auth-manager/Configuration")<Configuration, Options>() {
  /**
   * Set in code: the given options over the defaults; no environment variable is read. A value
   * that cannot work (a duration at or below zero, a port out of range…) is a `ConfigError` naming it.
   */
  static readonly layer = (input: Input = {}): Layer.Layer<Configuration, ConfigError.ConfigError> =>
    Layer.effect(
      Configuration,
      Effect.suspend(() => {
        const options = resolve(input)
        return Option.match(check(options), { onNone: () => Effect.succeed(options), onSome: Effect.fail })
      })
    )

  /** Read from the environment (`variables`), through `Config`. A value that cannot work is a `ConfigError` at start. */
  static readonly layerConfig: Layer.Layer<Configuration, ConfigError.ConfigError> = Layer.effect(Configuration, config)
}
