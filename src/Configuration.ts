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
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"
import { homedir } from "node:os"
import type { Settings } from "./AuthManager.js"

/** The Codex defaults: the token endpoint, its client, and the sign-in issuer. */
export const codexTokenUrl = "https://auth.openai.com/oauth/token"
export const codexClientId = "app_EMoamEEZ73f0CkXaXp7hrann"
export const codexIssuer = "https://auth.openai.com"

/** How a client authenticates to the token endpoint (RFC 6749 §2.3.1). */
export type ClientAuth = "none" | "client_secret_post" | "client_secret_basic"

/** The whole configuration, every default applied. */
export interface Options {
  /** The folder of `auth.json` (`CODEX_HOME`, default `$HOME/.codex`). */
  readonly codexHome: string
  /**
   * How long callers wait for the token endpoint's answer (the request stays open longer: see
   * `TokenRefresher.answerLimit`); lock waits and the shutdown wait are derived from it (30 s).
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
  /** The manager's timings, over `AuthManager.defaultSettings`. */
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
  }>
  readonly logLevel: LogLevel.LogLevel
}

/** What `layer` takes: any part of `Options`, the rest defaulted (`codexHome`: the user's home folder's `.codex`). */
export interface Input {
  readonly codexHome?: string
  readonly refreshTimeout?: Duration.Duration
  readonly tokenEndpoint?: Partial<Options["tokenEndpoint"]>
  readonly manager?: Partial<Settings>
  readonly signIn?: Partial<Options["signIn"]>
  readonly database?: {
    readonly url: Redacted.Redacted<string>
    readonly credentialKey?: string
    readonly tablePrefix?: string
  }
  readonly logLevel?: LogLevel.LogLevel
}

/** The environment variables `layerConfig` reads, and what each sets. */
export const variables = {
  CODEX_HOME: "the folder of auth.json (default $HOME/.codex)",
  EFFECT_AUTH_REFRESH_TIMEOUT: "how long callers wait for the token endpoint; the request stays open up to 5 minutes for its answer (default 30 seconds)",
  CODEX_REFRESH_TOKEN_URL_OVERRIDE: "the token endpoint (default Codex's); http:// or https:// only",
  EFFECT_AUTH_CLIENT_ID: "the OAuth client id (default Codex's)",
  EFFECT_AUTH_CLIENT_SECRET: "the OAuth client secret, if the client has one",
  EFFECT_AUTH_REFRESH_BODY: "json (default, as Codex) or form",
  EFFECT_AUTH_REFRESH_WINDOW: "refresh this long before the access token expires (default 5 minutes)",
  EFFECT_AUTH_MIN_REFRESH_INTERVAL: "never refresh more often than this (default 30 seconds)",
  EFFECT_AUTH_BACKOFF_BASE: "the first backoff after a transient failure (default 1 second)",
  EFFECT_AUTH_REQUIRES_OPENAI_AUTH: "false: getAuthStatus reports that no sign-in is needed (default true)",
  EFFECT_AUTH_ISSUER: "an OpenID Connect issuer to sign in with and refresh through",
  EFFECT_AUTH_CLIENT_AUTH: "none, client_secret_post or client_secret_basic",
  EFFECT_AUTH_SCOPES: "the scopes a sign-in asks for",
  CODEX_APP_SERVER_LOGIN_ISSUER: "the issuer of the Codex sign-in (default https://auth.openai.com)",
  CODEX_APP_SERVER_LOGIN_CLIENT_ID: "the client of the Codex sign-in (default Codex's)",
  EFFECT_AUTH_LOGIN_ORIGINATOR: "the originator a Codex sign-in names (default codex_cli_rs)",
  EFFECT_AUTH_LOGIN_PORTS: "the loopback ports of a browser sign-in, e.g. 1455,1457 (0: any free port)",
  EFFECT_AUTH_LOGIN_TIMEOUT: "how long a sign-in waits for the user (default 10 minutes)",
  EFFECT_AUTH_DATABASE_URL: "a postgres:// URL: keep the credentials in PostgreSQL instead of auth.json",
  EFFECT_AUTH_CREDENTIAL_KEY: "the credential the programs use in the database (default default)",
  EFFECT_AUTH_DATABASE_TABLE_PREFIX: "the prefix of the library's tables (default effect_auth)",
  EFFECT_AUTH_LOG_LEVEL: "the programs' log level on stderr (default Info)"
} as const

export type Variable = keyof typeof variables

/** Why `url` cannot be a token endpoint, or undefined when it can. */
export const tokenUrlProblem = (url: string): string | undefined => {
  if (!URL.canParse(url)) return "it is not a URL"
  const { protocol } = new URL(url)
  return protocol === "http:" || protocol === "https:" ? undefined : `its scheme is "${protocol}", not http: or https:`
}

const defaultRefreshTimeout = Duration.seconds(30)

/** `Input` with every default applied. */
export const resolve = (input: Input = {}): Options => ({
  codexHome: input.codexHome ?? `${homedir()}/.codex`,
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
    originator: "codex_cli_rs",
    ports: Option.none(),
    timeout: Duration.minutes(10),
    ...input.signIn
  },
  database: Option.map(Option.fromNullable(input.database), (database) => ({
    url: database.url,
    credentialKey: database.credentialKey ?? "default",
    tablePrefix: database.tablePrefix ?? "effect_auth"
  })),
  logLevel: input.logLevel ?? LogLevel.Info
})

const optional = <A>(config: Config.Config<A>) => Config.option(config)

/** `CODEX_HOME`, else `$HOME/.codex`, else the user's home folder's `.codex`. */
export const codexHomeConfig: Config.Config<string> = Config.string("CODEX_HOME").pipe(
  Config.orElse(() => Config.string("HOME").pipe(Config.map((home) => `${home}/.codex`))),
  Config.orElse(() => Config.sync(() => `${homedir()}/.codex`))
)

const ports = (name: Variable) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const parsed = text.split(",").map((part) => Number(part.trim()))
      return parsed.length > 0 && parsed.every((port) => Number.isInteger(port) && port >= 0 && port < 65536)
        ? Either.right(parsed as ReadonlyArray<number>)
        : Either.left(ConfigError.InvalidData([name], "a comma-separated list of ports, e.g. 1455,1457 (0 = any free port)"))
    }),
    optional
  )

const duration = (name: Variable, fallback: Duration.Duration) => Config.duration(name).pipe(Config.withDefault(fallback))

/** `Options` from the environment (`variables`), through Effect's `Config`. */
export const config: Config.Config<Options> = Config.all({
  codexHome: codexHomeConfig,
  refreshTimeout: duration("EFFECT_AUTH_REFRESH_TIMEOUT", defaultRefreshTimeout),
  tokenEndpoint: Config.all({
    // A typo here would fail every refresh: it is refused when the program starts instead.
    url: Config.string("CODEX_REFRESH_TOKEN_URL_OVERRIDE").pipe(
      Config.validate({
        message: "CODEX_REFRESH_TOKEN_URL_OVERRIDE must be an http:// or https:// URL",
        validation: (url) => tokenUrlProblem(url) === undefined
      }),
      Config.withDefault(codexTokenUrl)
    ),
    clientId: Config.string("EFFECT_AUTH_CLIENT_ID").pipe(Config.withDefault(codexClientId)),
    clientSecret: optional(Config.redacted("EFFECT_AUTH_CLIENT_SECRET")),
    bodyFormat: Config.literal("json", "form")("EFFECT_AUTH_REFRESH_BODY").pipe(Config.withDefault("json" as const))
  }),
  manager: Config.all({
    refreshWindow: optional(Config.duration("EFFECT_AUTH_REFRESH_WINDOW")),
    minRefreshInterval: optional(Config.duration("EFFECT_AUTH_MIN_REFRESH_INTERVAL")),
    backoffBase: optional(Config.duration("EFFECT_AUTH_BACKOFF_BASE")),
    requiresOpenaiAuth: optional(Config.boolean("EFFECT_AUTH_REQUIRES_OPENAI_AUTH"))
  }).pipe(Config.map((manager): Partial<Settings> => ({
    ...Option.match(manager.refreshWindow, { onNone: () => ({}), onSome: (refreshWindow) => ({ refreshWindow }) }),
    ...Option.match(manager.minRefreshInterval, { onNone: () => ({}), onSome: (minRefreshInterval) => ({ minRefreshInterval }) }),
    ...Option.match(manager.backoffBase, { onNone: () => ({}), onSome: (backoffBase) => ({ backoffBase }) }),
    ...Option.match(manager.requiresOpenaiAuth, { onNone: () => ({}), onSome: (requiresOpenaiAuth) => ({ requiresOpenaiAuth }) })
  }))),
  signIn: Config.all({
    issuer: optional(Config.string("EFFECT_AUTH_ISSUER")),
    clientId: optional(Config.string("EFFECT_AUTH_CLIENT_ID")),
    clientSecret: optional(Config.redacted("EFFECT_AUTH_CLIENT_SECRET")),
    clientAuth: optional(Config.literal("none", "client_secret_post", "client_secret_basic")("EFFECT_AUTH_CLIENT_AUTH")),
    scopes: optional(Config.string("EFFECT_AUTH_SCOPES")),
    codexIssuer: Config.string("CODEX_APP_SERVER_LOGIN_ISSUER").pipe(Config.withDefault(codexIssuer)),
    codexClientId: Config.string("CODEX_APP_SERVER_LOGIN_CLIENT_ID").pipe(Config.withDefault(codexClientId)),
    originator: Config.string("EFFECT_AUTH_LOGIN_ORIGINATOR").pipe(Config.withDefault("codex_cli_rs")),
    ports: ports("EFFECT_AUTH_LOGIN_PORTS"),
    timeout: duration("EFFECT_AUTH_LOGIN_TIMEOUT", Duration.minutes(10))
  }),
  database: optional(Config.all({
    url: Config.redacted("EFFECT_AUTH_DATABASE_URL").pipe(
      Config.validate({
        message: "EFFECT_AUTH_DATABASE_URL must be a postgres:// URL",
        validation: (url) => /^postgres(ql)?:\/\//.test(Redacted.value(url))
      })
    ),
    credentialKey: Config.string("EFFECT_AUTH_CREDENTIAL_KEY").pipe(Config.withDefault("default")),
    tablePrefix: Config.string("EFFECT_AUTH_DATABASE_TABLE_PREFIX").pipe(Config.withDefault("effect_auth"))
  })),
  logLevel: Config.logLevel("EFFECT_AUTH_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
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
  /** Set in code: the given options over the defaults; no environment variable is read. */
  static readonly layer = (input: Input = {}): Layer.Layer<Configuration> => Layer.succeed(Configuration, resolve(input))

  /** Read from the environment (`variables`), through `Config`. A value that cannot work is a `ConfigError` at start. */
  static readonly layerConfig: Layer.Layer<Configuration, ConfigError.ConfigError> = Layer.effect(Configuration, config)

  /**
   * What the configured layers use: the `Configuration` in context, or, when
   * none was provided, the environment's, read through `Config` (as SPEC §6
   * has `AuthStore.layerFile`, `TokenRefresher.layerHttp` and
   * `AuthManager.layer` do).
   */
  static readonly current: Effect.Effect<Options, ConfigError.ConfigError> = Effect.flatMap(
    Effect.serviceOption(Configuration),
    Option.match({ onNone: () => config, onSome: Effect.succeed })
  )
}
