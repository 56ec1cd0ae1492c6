/**
 * The reads of the file store that need nothing else of it: `auth.json` as
 * a snapshot, and the shared-health sidecar beside it. The store reads
 * through these, and so does a status command, which loads only this module
 * of the store to answer sooner.
 */
import { maxSidecarBytes } from "@effect-auth-manager/core/fileRules"
import { Effect, type FileSystem, Option, Result } from "effect"
import { AuthStoreError, SharedHealthError } from "../errors/Errors.js"
import { readBoundedText } from "../util/boundedRead.js"
import { snapshotOf } from "./CredentialStore.js"
import { describe, isNotFound } from "./internal/platformError.js"
import { decodeHealth, type SharedHealth } from "./RefreshCoordinator.js"

export { describe, isNotFound } from "./internal/platformError.js"

/** The file, its shared-health sidecar, and the most of the sidecar that is read (the core's names). */
export { fileName, maxSidecarBytes, sidecarName } from "@effect-auth-manager/core/fileRules"

/** The text of the file at `path`, none when there is none; the problem when it cannot be read. */
export const readOptional = (
  fs: FileSystem.FileSystem,
  path: string,
  maxBytes?: number
): Effect.Effect<Option.Option<string>, string> =>
  readBoundedText(fs, path, maxBytes).pipe(
    Effect.map(Option.some),
    Effect.catchIf((error) => error._tag !== "FileRefused" && isNotFound(error), () => Effect.succeedNone),
    Effect.mapError((error) => (error._tag === "FileRefused" ? error.problem : describe(error)))
  )

/** The text of `file`; none when there is no file. */
export const readText = (
  fs: FileSystem.FileSystem,
  file: string
): Effect.Effect<Option.Option<string>, AuthStoreError> =>
  Effect.mapError(readOptional(fs, file), (problem) => new AuthStoreError({ path: file, operation: "read", problem }))

/** The snapshot `file` holds (`AuthDocument.absent` when there is no file). */
export const readSnapshot = (fs: FileSystem.FileSystem, file: string) =>
  Effect.flatMap(readText(fs, file), snapshotOf(file))

/**
 * The shared health the sidecar holds; none when there is no sidecar. Fails
 * with the problem when it cannot be used (the caller says so and ignores it:
 * the sidecar is an optimisation, never a reason to fail).
 */
export const readShared = (
  fs: FileSystem.FileSystem,
  sidecar: string
): Effect.Effect<Option.Option<SharedHealth>, SharedHealthError> =>
  readOptional(fs, sidecar, maxSidecarBytes).pipe(
    Effect.mapError((problem) => new SharedHealthError({ location: sidecar, operation: "read", problem })),
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeedNone,
      onSome: (content) => Effect.fromResult(Result.map(decodeHealth(sidecar, content), Option.some))
    }))
  )

/** Said once at start where Codex's lock on auth.json cannot be taken (no lock primitive here). */
export { warnIfCodexUnlocked } from "./internal/flock.js"
