/**
 * What the configuration holds (`Options`, every default applied) and what `Configuration.layer` takes
 * (`Input`); the service itself is `Configuration`.
 */
import type { Duration, LogLevel, Option, Redacted } from "effect"
import type { ClientAuth, CredentialsStoreMode } from "./internal/defaults.js"
import type { Settings } from "./Settings.js"

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
