/** The defaults both ways of configuring share (in code and from the environment). */
import type * as Classify from "@effect-auth-manager/core/classify"
import { defaults } from "@effect-auth-manager/core/settings"
import { Duration } from "effect"

/** The Codex defaults: the token endpoint, its client, and the sign-in issuer. */
export const { codexClientId, codexIssuer, codexTokenUrl } = defaults

/**
 * Where the programs keep the credentials, as Codex's `cli_auth_credentials_store` says: `file`
 * (`auth.json`), `keyring` (the OS keyring, as Codex), `auto` (the keyring when there is one, else
 * the file) or `ephemeral` (in memory only, for this process).
 */
export { type CredentialsStoreMode, credentialsStoreModes } from "@effect-auth-manager/core/codex"

/** How a client authenticates to the token endpoint (RFC 6749 §2.3.1). */
export type ClientAuth = Classify.ClientAuth
export const clientAuths: ReadonlyArray<ClientAuth> = ["none", "client_secret_post", "client_secret_basic"]

// The core's defaults (in milliseconds), as this edition holds them.
export const defaultRefreshTimeout = Duration.millis(defaults.refreshTimeoutMillis)
export const defaultSignInTimeout = Duration.millis(defaults.signInTimeoutMillis)
export const {
  bodyFormat: defaultBodyFormat,
  credentialKey: defaultCredentialKey,
  originator: defaultOriginator,
  poolSize: defaultPoolSize,
  tablePrefix: defaultTablePrefix
} = defaults
