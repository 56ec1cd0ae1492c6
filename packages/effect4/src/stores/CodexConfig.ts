/**
 * The one setting of Codex's `$CODEX_HOME/config.toml` the programs honour:
 * `cli_auth_credentials_store`, where the credentials are kept, read by the
 * core's line reader (`@effect-auth-manager/core/codex`, a TOML parser would
 * be a dependency for one string) from a file read within a bound. A value
 * Codex would refuse is refused too, at start, with what is allowed.
 */
import * as Codex from "@effect-auth-manager/core/codex"
import { type Config, Effect, FileSystem, Option, Path, Result } from "effect"
import { type CredentialsStoreMode, type Options, refusal } from "../config/Configuration.js"
import { readBoundedText } from "../util/boundedRead.js"
import { isNotFound } from "./internal/platformError.js"

export const { configFileName, maxConfigBytes, settingName } = Codex

/**
 * The value of `cli_auth_credentials_store` in the text of a config.toml:
 * none when it is not set; a failure: why it cannot be used.
 */
export const parseStoreMode = (text: string): Result.Result<Option.Option<CredentialsStoreMode>, string> => {
  const setting = Codex.parseStoreMode(text)
  return setting._tag === "Invalid"
    ? Result.fail(setting.problem)
    : Result.succeed(setting._tag === "Set" ? Option.some(setting.mode) : Option.none())
}

/** `cli_auth_credentials_store` of `file` (a config.toml); none when the file or the key is not there. */
export const readStoreMode = (
  fs: FileSystem.FileSystem,
  file: string
): Effect.Effect<Option.Option<CredentialsStoreMode>, Config.ConfigError> =>
  readBoundedText(fs, file, maxConfigBytes).pipe(
    Effect.map(Option.some),
    Effect.catchIf(
      (error) => error._tag !== "FileRefused" && isNotFound(error),
      () => Effect.succeed(Option.none<string>())
    ),
    Effect.mapError((error) =>
      refusal([settingName], `${file} cannot be read: ${error._tag === "FileRefused" ? error.problem : error.message}`)
    ),
    Effect.flatMap(Option.match({
      onNone: (): Effect.Effect<Option.Option<CredentialsStoreMode>, Config.ConfigError> => Effect.succeedNone,
      onSome: (text) =>
        Result.match(parseStoreMode(text), {
          onFailure: (problem) => Effect.fail(refusal([settingName], `${file}: ${problem}`)),
          onSuccess: Effect.succeed
        })
    }))
  )

/**
 * The store mode of `configuration`: `EFFECT_AUTH_CREDENTIALS_STORE` (its `credentialsStore`), else
 * `cli_auth_credentials_store` in `$CODEX_HOME/config.toml`, else `file`.
 */
export const resolveMode = (
  configuration: Options
): Effect.Effect<CredentialsStoreMode, Config.ConfigError, FileSystem.FileSystem | Path.Path> =>
  Option.match(configuration.credentialsStore, {
    onSome: Effect.succeed,
    onNone: () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const path = yield* Path.Path
        const mode = yield* readStoreMode(fs, path.join(path.resolve(configuration.codexHome), configFileName))
        return Option.getOrElse(mode, (): CredentialsStoreMode => "file")
      })
  })
