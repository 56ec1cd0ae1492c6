/** The defaults both ways of configuring share (in code and from the environment). */
import type * as Classify from "@effect-auth-manager/core/classify"
import { Duration } from "effect"

/** The Codex defaults: the token endpoint, its client, and the sign-in issuer. */
export const codexTokenUrl = "https://auth.openai.com/oauth/token"
export const codexClientId = "app_EMoamEEZ73f0CkXaXp7hrann"
export const codexIssuer = "https://auth.openai.com"

/**
 * Where the programs keep the credentials, as Codex's `cli_auth_credentials_store` says: `file`
 * (`auth.json`), `keyring` (the OS keyring, as Codex), `auto` (the keyring when there is one, else
 * the file) or `ephemeral` (in memory only, for this process).
 */
export { type CredentialsStoreMode, credentialsStoreModes } from "@effect-auth-manager/core/codex"

/** How a client authenticates to the token endpoint (RFC 6749 §2.3.1). */
export type ClientAuth = Classify.ClientAuth
export const clientAuths: ReadonlyArray<ClientAuth> = ["none", "client_secret_post", "client_secret_basic"]

export const defaultRefreshTimeout = Duration.seconds(30)
export const defaultSignInTimeout = Duration.minutes(10)
export const defaultOriginator = "codex_cli_rs"
export const defaultCredentialKey = "default"
export const defaultTablePrefix = "effect_auth"
export const defaultPoolSize = 4
