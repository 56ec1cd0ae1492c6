/**
 * Which store the programs keep the credentials in, as Codex chooses it:
 * `EFFECT_AUTH_CREDENTIALS_STORE` (the `Configuration`'s `credentialsStore`)
 * when set, else `cli_auth_credentials_store` in `$CODEX_HOME/config.toml`,
 * else `file`.
 *
 * - `file`: `auth.json`, with Codex's lock (the default).
 * - `keyring`: the OS keyring item Codex uses; an unreachable keyring is an
 *   error on use, as it is for Codex.
 * - `auto`: the keyring when it answers at start (then `auth.json` is read
 *   while the keyring holds nothing, as Codex reads it), else `auth.json`.
 *   Codex decides at each operation; deciding once keeps one compare-and-set
 *   path for the life of the program.
 * - `ephemeral`: memory only, for this process.
 */
import { type Config, Effect, type FileSystem, type Path } from "effect"
import type { Options } from "../config/Configuration.js"
import { type AuthStoreShape, bind, makeFile, makeMemory } from "./AuthStore.js"
import { resolveMode } from "./CodexConfig.js"
import * as CredentialStore from "./CredentialStore.js"
import { fileOptionsOf } from "./FileOptions.js"
import * as KeyringStore from "./KeyringStore.js"

export { resolveMode } from "./CodexConfig.js"

/** The single-credential store `configuration` names (see the module's description). */
export const makeAuthStore = (
  configuration: Options
): Effect.Effect<AuthStoreShape, Config.ConfigError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const mode = yield* resolveMode(configuration)
    const options = fileOptionsOf(configuration)
    switch (mode) {
      case "file":
        return yield* makeFile(options)
      case "ephemeral":
        return yield* makeMemory()
      case "keyring":
        return yield* KeyringStore.makeAuthStore(options)
      case "auto": {
        const keyring = yield* KeyringStore.make({ ...options, fileFallback: true })
        if (!(yield* keyring.available)) return yield* makeFile(options)
        return bind(CredentialStore.defaultKey, keyring.credentials, keyring.coordinator)
      }
    }
  }).pipe(
    Effect.tap((store) => Effect.logDebug("Credentials store").pipe(Effect.annotateLogs({ location: store.location })))
  )
