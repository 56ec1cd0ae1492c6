/**
 * Where the file store keeps `auth.json`, and its bounds: the options of
 * `AuthStore.layerFile` and `FileStore.layer`.
 */
import type { Duration } from "effect"
import type * as Configuration from "../config/Configuration.js"

/** The file store's options in `configuration`: its folder, and the bounds derived from the refresh timeout. */
export const fileOptionsOf = (configuration: Configuration.Options): FileOptions => ({
  codexHome: configuration.codexHome,
  refreshTimeout: configuration.refreshTimeout
})

/** Where the file store keeps `auth.json`, and its bounds. */
export interface FileOptions {
  readonly codexHome: string
  /** The token request's timeout: the refresh lock is waited for this long and a margin (default 30 s). */
  readonly refreshTimeout?: Duration.Duration
  /** How long Codex's `auth.json.lock` is waited for (default 5 s, as Codex waits). */
  readonly commitLockWait?: Duration.Duration
  /** How often the file is checked for changes the watch missed (default 2 s). */
  readonly pollInterval?: Duration.Duration
  /** The credential key the file holds, as the keyed services name it (default `default`). */
  readonly credentialKey?: string
}

/** Where the keyring store is, and its bounds. */
export interface KeyringOptions extends FileOptions {
  /** Read `auth.json` while the keyring holds nothing (Codex's `auto`). Default false. */
  readonly fileFallback?: boolean
  /** How long one keyring call may take (default 10 s). */
  readonly keyringTimeout?: Duration.Duration
}
