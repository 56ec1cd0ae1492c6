/**
 * The one setting of Codex's `$CODEX_HOME/config.toml` the programs honour:
 * `cli_auth_credentials_store`, where the credentials are kept. Only that
 * top-level key is read, by a small line reader rather than a TOML parser
 * (a dependency for one string): keys after the first table header belong to
 * tables, text inside multi-line strings is skipped, and the file is read
 * within a bound. A value Codex would refuse is refused too, at start, with
 * what is allowed.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { ConfigError, Effect, Either, Option } from "effect"
import { type CredentialsStoreMode, credentialsStoreModes, type Options } from "../config/Configuration.js"
import { readBoundedText } from "../util/boundedRead.js"
import { isNotFound } from "./FileRead.js"

export const configFileName = "config.toml"
export const settingName = "cli_auth_credentials_store"
/** A Codex config.toml is a few KiB; one larger than this is not read. */
export const maxConfigBytes = 1024 * 1024

const keyPattern = new RegExp(`^\\s*(?:${settingName}|"${settingName}"|'${settingName}')\\s*=\\s*(.*)$`)
// A basic string (no escapes in any allowed value) or a literal string, then an optional comment.
const valuePattern = /^(?:"([^"\\]*)"|'([^']*)')\s*(?:#.*)?$/

/**
 * The value of `cli_auth_credentials_store` in the text of a config.toml:
 * none when it is not set; Left: why it cannot be used.
 */
export const parseStoreMode = (text: string): Either.Either<Option.Option<CredentialsStoreMode>, string> => {
  let inMultiline: string | undefined
  for (const line of text.split(/\r?\n/)) {
    if (inMultiline !== undefined) {
      if (line.includes(inMultiline)) inMultiline = undefined
      continue
    }
    // A multi-line string opened (and not closed) on this line: its next lines are text, not keys.
    for (const quote of ["\"\"\"", "'''"]) {
      if (line.split(quote).length === 2) inMultiline = quote
    }
    if (/^\s*\[/.test(line)) return Either.right(Option.none())
    const key = keyPattern.exec(line)
    if (key === null) continue
    const value = valuePattern.exec(key[1]!.trim())
    const mode = value === null ? undefined : value[1] ?? value[2]
    if (mode === undefined) {
      return Either.left(`${settingName} must be a string, one of ${credentialsStoreModes.join(", ")}`)
    }
    return credentialsStoreModes.includes(mode as CredentialsStoreMode)
      ? Either.right(Option.some(mode as CredentialsStoreMode))
      : Either.left(`${settingName} is "${mode}"; it must be one of ${credentialsStoreModes.join(", ")}`)
  }
  return Either.right(Option.none())
}

/** `cli_auth_credentials_store` of `file` (a config.toml); none when the file or the key is not there. */
export const readStoreMode = (
  fs: FileSystem.FileSystem,
  file: string
): Effect.Effect<Option.Option<CredentialsStoreMode>, ConfigError.ConfigError> =>
  readBoundedText(fs, file, maxConfigBytes).pipe(
    Effect.map(Option.some),
    Effect.catchIf(
      (error) => error._tag !== "FileRefused" && isNotFound(error),
      () => Effect.succeed(Option.none<string>())
    ),
    Effect.mapError((error) =>
      ConfigError.InvalidData(
        [settingName],
        `${file} cannot be read: ${error._tag === "FileRefused" ? error.problem : error.message}`
      )
    ),
    Effect.flatMap(Option.match({
      onNone: (): Effect.Effect<Option.Option<CredentialsStoreMode>, ConfigError.ConfigError> => Effect.succeedNone,
      onSome: (text) =>
        Either.match(parseStoreMode(text), {
          onLeft: (problem) => Effect.fail(ConfigError.InvalidData([settingName], `${file}: ${problem}`)),
          onRight: Effect.succeed
        })
    }))
  )

/**
 * The store mode of `configuration`: `EFFECT_AUTH_CREDENTIALS_STORE` (its `credentialsStore`), else
 * `cli_auth_credentials_store` in `$CODEX_HOME/config.toml`, else `file`.
 */
export const resolveMode = (
  configuration: Options
): Effect.Effect<CredentialsStoreMode, ConfigError.ConfigError, FileSystem.FileSystem | Path.Path> =>
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
