/**
 * How the file store writes in its folder: atomically (a temporary file in
 * the target's folder, fsync, rename), through a symlinked `auth.json` to its
 * target, in place under the lock where the file cannot be replaced (a
 * bind-mounted single file: EBUSY; EPERM, EXDEV), an unreadable file kept
 * aside rather than overwritten, and the temporaries a killed writer left.
 */
import {
  cannotReplace,
  inPlaceNote,
  setAsideName,
  setAsideNote,
  temporaryName,
  temporaryOf
} from "@effect-auth-manager/core/fileRules"
import { Effect, type FileSystem, Option, type Path, type PlatformError, Random, Ref, Result } from "effect"
import * as AuthDocument from "../../document/AuthDocument.js"
import { AuthStoreError } from "../../errors/Errors.js"
import { readText } from "../FileRead.js"
import { once } from "./fileWatch.js"
import { describe, errnoOf, isNotFound } from "./platformError.js"

export interface Folder {
  readonly dir: string
  /** `auth.json` in `dir`. */
  readonly file: string
  readonly fileName: string
}

/** The writes of the file store in `folder`. */
export const makeWriter = (fs: FileSystem.FileSystem, path: Path.Path, { dir, file, fileName }: Folder) => {
  const fail = (operation: AuthStoreError["operation"]) => (problem: string) =>
    new AuthStoreError({ path: file, operation, problem })

  const ensureDir = Effect.gen(function*() {
    if (yield* fs.exists(dir)) return
    yield* fs.makeDirectory(dir, { recursive: true, mode: 0o700 })
    yield* fs.chmod(dir, 0o700)
  }).pipe(Effect.mapError((error) => fail("write")(describe(error))))

  // Through a symlink (dotfile managers): the file written is the link's target, in its own folder.
  const target = fs.realPath(file).pipe(
    Effect.catch(() => fs.readLink(file).pipe(Effect.map((link) => path.resolve(dir, link)))),
    Effect.orElseSucceed(() => file)
  )

  const inPlaceLogged = Ref.makeUnsafe(false)
  const writeInPlace = (destination: string, bytes: Uint8Array, why: string) =>
    Effect.gen(function*() {
      yield* Effect.scoped(Effect.gen(function*() {
        const handle = yield* fs.open(destination, { flag: "r+" })
        yield* handle.writeAll(bytes)
        yield* handle.truncate(bytes.length)
        yield* handle.sync
      }))
      yield* once(
        inPlaceLogged,
        Effect.logInfo(inPlaceNote).pipe(
          Effect.annotateLogs({ file: destination, why })
        )
      )
    })

  const writeAtomically = (destination: string, text: string): Effect.Effect<void, PlatformError.PlatformError> =>
    Effect.gen(function*() {
      const bytes = new TextEncoder().encode(text)
      const temporary = temporaryName(destination, process.pid, yield* Random.nextIntBetween(0, 2 ** 31))
      const replaced = yield* Effect.scoped(Effect.gen(function*() {
        const handle = yield* fs.open(temporary, { flag: "wx", mode: 0o600 })
        yield* handle.writeAll(bytes)
        yield* handle.sync
      })).pipe(
        Effect.andThen(fs.rename(temporary, destination)),
        Effect.tapError(() => Effect.ignore(fs.remove(temporary))),
        Effect.result
      )
      if (Result.isSuccess(replaced)) return
      const code = errnoOf(replaced.failure)
      const exists = yield* fs.exists(destination).pipe(Effect.orElseSucceed(() => false))
      if (code === undefined || !cannotReplace.has(code) || !exists) return yield* Effect.fail(replaced.failure)
      yield* writeInPlace(destination, bytes, describe(replaced.failure))
    })

  // A file we cannot read is someone's data: keep it beside the new one.
  const setAsideIfUnreadable = readText(fs, file).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.void,
      onSome: (text) =>
        Result.isSuccess(AuthDocument.parse(text)) ? Effect.void : Effect.gen(function*() {
          const kept = setAsideName(file, Date.now())
          yield* fs.rename(file, kept).pipe(Effect.mapError((error) => fail("write")(describe(error))))
          yield* Effect.logWarning(setAsideNote).pipe(
            Effect.annotateLogs({ kept })
          )
        })
    })),
    Effect.catchIf((error) => error.operation === "read", () => Effect.void)
  )

  const removeFile = fs.remove(file).pipe(
    Effect.catchIf(isNotFound, () => Effect.void),
    Effect.mapError((error) => fail("remove")(describe(error)))
  )

  // Temporary files of auth.json are written only under the commit lock: under it, any is stale
  // (a process killed between write and rename), and may hold a refresh token.
  const removeStaleTemporaries = Effect.gen(function*() {
    const destination = yield* target
    const folders = [...new Set([dir, path.dirname(destination)])]
    let removed = 0
    for (const folder of folders) {
      const names = yield* fs.readDirectory(folder).pipe(Effect.orElseSucceed(() => []))
      const base = folder === dir ? fileName : path.basename(destination)
      for (const name of names.filter(temporaryOf(base))) {
        yield* fs.remove(path.join(folder, name)).pipe(
          Effect.tap(() => Effect.sync(() => removed++)),
          Effect.ignore
        )
      }
    }
    if (removed > 0) {
      yield* Effect.logInfo("Removed stale temporary files of auth.json").pipe(Effect.annotateLogs({ removed }))
    }
  })

  return { ensureDir, target, writeAtomically, setAsideIfUnreadable, removeFile, removeStaleTemporaries, fail }
}
