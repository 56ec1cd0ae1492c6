/**
 * The credentials where the Codex CLI keeps them with
 * `cli_auth_credentials_store = "keyring"`: one OS keyring item per
 * `CODEX_HOME` (service `Codex Auth`, account `cli|<16 hex digits of the
 * SHA-256 of the canonical CODEX_HOME>`, the whole `auth.json` document as
 * its secret), as the keyed services `CredentialStore` and
 * `RefreshCoordinator`.
 *
 * Compare-and-set under Codex's `auth.json.lock` (Codex takes it around its
 * keyring writes too), changes by polling the item, the refresh lock and the
 * shared health as files in `CODEX_HOME`, as the file store keeps them. The
 * keyring binding (`@napi-rs/keyring`) is loaded only when a keyring store is
 * used.
 */
import { Effect, type FileSystem, Layer, type Path } from "effect"
import { Configuration } from "../config/Configuration.js"
import type { AuthStoreShape } from "./AuthStore.js"
import { bind } from "./AuthStore.js"
import * as CredentialStore from "./CredentialStore.js"
import { fileOptionsOf, type KeyringOptions } from "./FileOptions.js"
import * as KeyringBackend from "./internal/keyringStore.js"
import * as RefreshCoordinator from "./RefreshCoordinator.js"
import * as StoreServices from "./StoreServices.js"

export type Options = KeyringOptions

/**
 * Both services over the keyring item of `options.codexHome`.
 *
 * @example
 * const { credentials } = yield* KeyringStore.make({ codexHome: "/home/me/.codex" })
 */
export const make = (
  options: Options
): Effect.Effect<
  StoreServices.StoreServices & {
    /** Whether the keyring answers (a Secret Service is running): what Codex's `auto` asks. */
    readonly available: Effect.Effect<boolean>
  },
  never,
  FileSystem.FileSystem | Path.Path
> =>
  Effect.map(KeyringBackend.makeKeyring(options), (backends) => ({
    ...StoreServices.fromBackends(backends),
    available: backends.available
  }))

/** The single-credential `AuthStore` over the keyring item of `options.codexHome`. */
export const makeAuthStore = (
  options: Options
): Effect.Effect<AuthStoreShape, never, FileSystem.FileSystem | Path.Path> =>
  Effect.map(
    make(options),
    ({ coordinator, credentials }) =>
      bind(options.credentialKey ?? CredentialStore.defaultKey, credentials, coordinator)
  )

/** Both services over the keyring item of `options.codexHome`. */
export const layer = (
  options: Options
): Layer.Layer<
  CredentialStore.CredentialStore | RefreshCoordinator.RefreshCoordinator,
  never,
  FileSystem.FileSystem | Path.Path
> => StoreServices.layerOf(make(options))

/** `layer` for the `codexHome` of the `Configuration` in context. */
export const layerConfig: Layer.Layer<
  CredentialStore.CredentialStore | RefreshCoordinator.RefreshCoordinator,
  never,
  Configuration | FileSystem.FileSystem | Path.Path
> = Layer.unwrap(Effect.map(Configuration, (configuration) => layer(fileOptionsOf(configuration))))
