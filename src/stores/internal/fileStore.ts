/**
 * The `auth.json` store: Codex's file, written the way Codex expects others
 * to write it.
 *
 * - Two flock(2) locks. `auth.json.lock` is the Codex CLI's own commit lock:
 *   it is held only while the file is re-read, compared and written
 *   (milliseconds), never across a network call, because Codex gives up
 *   after 5 s. `auth.json.refresh.lock` is ours: it single-flights refreshes
 *   among our processes and is held across the token request. Always taken
 *   in that order (refresh, then commit), so they cannot deadlock.
 * - Writes are atomic (temporary file in the target's folder, fsync, rename).
 *   A symlinked `auth.json` is written through the link. When the file
 *   cannot be replaced (a bind-mounted single file: EBUSY; EPERM, EXDEV)
 *   it is rewritten in place under the commit lock, as Codex writes it.
 * - Changes by others are heard through a watch of the folder, re-made when
 *   the folder is deleted, moved or re-created, and a stat every few seconds
 *   catches what events miss.
 * - A refresh whose tokens could not be written to `auth.json` when the
 *   process stopped (Codex's lock held by a stuck program) is kept beside it
 *   in `auth-pending-refresh.json`: 0600, atomic, without the lock. It holds
 *   tokens, so it is part of the credential store and is removed once they
 *   are saved (see `pendingRefresh.ts`).
 */
import { sha256Hex } from "@effect-auth-manager/core/canonicalJson"
import {
  cannotOpenLock,
  cannotReplace,
  commitLockName,
  fileName,
  inPlaceNote,
  killedWriterAfterMs,
  lockFallbackWarning,
  maxSidecarBytes,
  notWritableWarning,
  openToOthers,
  openToOthersWarning,
  otherKeyProblem,
  refreshLockName,
  setAsideName,
  setAsideNote,
  sidecarName,
  temporaryName,
  temporaryOf,
  writableByAll,
  writableByAllWarning
} from "@effect-auth-manager/core/fileRules"
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Duration, Effect, Either, Option, Random, Ref, Stream } from "effect"
import * as AuthDocument from "../../document/AuthDocument.js"
import { AuthStoreError, SharedHealthError } from "../../errors/Errors.js"
import type * as CredentialStore from "../CredentialStore.js"
import type { FileOptions } from "../FileOptions.js"
import * as FileRead from "../FileRead.js"
import { describe, isNotFound } from "../FileRead.js"
import type * as RefreshCoordinator from "../RefreshCoordinator.js"
import { lockTimeout } from "../RefreshCoordinator.js"
import * as FileWatch from "./fileWatch.js"
import * as Flock from "./flock.js"
import type * as PendingFile from "./pendingRefresh.js"
import { maxPendingBytes, pendingName } from "./pendingRefresh.js"

export { commitLockName, fileName, refreshLockName, sidecarName } from "@effect-auth-manager/core/fileRules"

/**
 * The file store over `FileSystem`: the backends of the keyed services
 * (`CredentialStore`, `RefreshCoordinator`) for the one key `auth.json`
 * holds. `FileStore` serves them as those services, and `AuthStore.makeFile`
 * binds them to that key: every path to the file goes through these.
 */
export const makeFiles = ({
  codexHome,
  commitLockWait = Duration.seconds(5),
  credentialKey = "default",
  pollInterval = Duration.seconds(2),
  refreshTimeout = Duration.seconds(30)
}: FileOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.resolve(codexHome)
    const file = path.join(dir, fileName)
    const fail = (operation: AuthStoreError["operation"]) => (problem: string) =>
      new AuthStoreError({ path: file, operation, problem })
    const onceFlag = () => Ref.unsafeMake(false)
    const once = (flag: Ref.Ref<boolean>, effect: Effect.Effect<void>) =>
      Effect.whenEffect(effect, Ref.getAndSet(flag, true).pipe(Effect.map((done) => !done))).pipe(Effect.asVoid)

    const readText = FileRead.readText(fs, file)

    const ensureDir = Effect.gen(function*() {
      if (yield* fs.exists(dir)) return
      yield* fs.makeDirectory(dir, { recursive: true, mode: 0o700 })
      yield* fs.chmod(dir, 0o700)
    }).pipe(Effect.mapError((error) => fail("write")(describe(error))))

    // A flock that could not be had: a timeout is someone else busy; anything else (EACCES, EROFS)
    // is this user unable to use the folder, and says so.
    const lockError = (error: Flock.FlockError) =>
      error.reason === "timeout"
        ? fail("lock")(`${error.path}: ${error.problem}`)
        : fail("write")(`cannot lock ${error.path}: ${error.problem}`)
    const locked = (lockPath: string, waitAtMost: Duration.Duration) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      ensureDir.pipe(
        // Only the wait is interruptible: a re-read, compare and write under the lock (milliseconds) is
        // never cut half-way (a temporary file left behind, or a write done but not known to be).
        Effect.zipRight(Flock.withLock(fs, lockPath, { waitAtMost })(Effect.uninterruptible(effect))),
        Effect.mapError((error): E | AuthStoreError => error instanceof Flock.FlockError ? lockError(error) : error)
      )
    const withCommitLock = locked(path.join(dir, commitLockName), commitLockWait)
    // The holder of the refresh lock may wait for the commit lock after its request: both bounds, and a margin.
    const refreshLockWait = Duration.sum(Duration.sum(refreshTimeout, commitLockWait), Duration.seconds(5))

    // Through a symlink (dotfile managers): the file written is the link's target, in its own folder.
    const target = fs.realPath(file).pipe(
      Effect.orElse(() => fs.readLink(file).pipe(Effect.map((link) => path.resolve(dir, link)))),
      Effect.orElseSucceed(() => file)
    )

    const inPlaceLogged = onceFlag()
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

    const writeAtomically = (destination: string, text: string) =>
      Effect.gen(function*() {
        const bytes = new TextEncoder().encode(text)
        const temporary = temporaryName(destination, process.pid, yield* Random.nextIntBetween(0, 2 ** 31))
        const replaced = yield* Effect.scoped(Effect.gen(function*() {
          const handle = yield* fs.open(temporary, { flag: "wx", mode: 0o600 })
          yield* handle.writeAll(bytes)
          yield* handle.sync
        })).pipe(
          Effect.zipRight(fs.rename(temporary, destination)),
          Effect.tapError(() => Effect.ignore(fs.remove(temporary))),
          Effect.either
        )
        if (Either.isRight(replaced)) return
        const code = Flock.errnoOf(replaced.left)
        const exists = yield* fs.exists(destination).pipe(Effect.orElseSucceed(() => false))
        if (code === undefined || !cannotReplace.has(code) || !exists) return yield* Effect.fail(replaced.left)
        yield* writeInPlace(destination, bytes, describe(replaced.left))
      })

    // A file we cannot read is someone's data: keep it beside the new one.
    const setAsideIfUnreadable = readText.pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.void,
        onSome: (text) =>
          Either.isRight(AuthDocument.parse(text)) ? Effect.void : Effect.gen(function*() {
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
      const folders = [...new Set([dir, path.dirname(yield* target)])]
      let removed = 0
      for (const folder of folders) {
        const names = yield* fs.readDirectory(folder).pipe(Effect.orElseSucceed(() => []))
        const base = folder === dir ? fileName : path.basename(yield* target)
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

    const remove = Effect.gen(function*() {
      if (!(yield* fs.exists(dir).pipe(Effect.orElseSucceed(() => true)))) return
      yield* withCommitLock(Effect.zipRight(removeFile, removeStaleTemporaries))
    }).pipe(Effect.withSpan("AuthStore.remove"))

    // The change feed: polls of the folder and the file, and the folder's watch (fileWatch.ts).
    const changed = FileWatch.changes(fs, path, { dir, file, pollInterval })

    const sidecar = path.join(dir, sidecarName)
    // At start: say once what will go wrong and what to do, and clear what killed writers left.
    const checkFolder = Effect.gen(function*() {
      yield* Flock.warnIfCodexUnlocked
      const folder = yield* Effect.option(fs.stat(dir))
      if (Option.isNone(folder)) return
      if (writableByAll(folder.value.mode)) yield* Effect.logWarning(writableByAllWarning(dir))
      const writable = yield* fs.access(dir, { writable: true }).pipe(
        Effect.as(true),
        Effect.orElseSucceed(() => false)
      )
      if (!writable) yield* Effect.logWarning(notWritableWarning(dir))
      const content = yield* Effect.option(fs.stat(file))
      if (Option.isSome(content) && openToOthers(content.value.mode)) {
        yield* Effect.logWarning(openToOthersWarning(file, content.value.mode, yield* target))
      }
      const names = yield* fs.readDirectory(dir).pipe(Effect.orElseSucceed(() => []))
      if (writable && names.some(temporaryOf(fileName))) {
        yield* withCommitLock(removeStaleTemporaries).pipe(
          Effect.catchAll((error) =>
            Effect.logDebug("Stale temporary files left for later").pipe(
              Effect.annotateLogs({ problem: error.problem })
            )
          )
        )
      }
      // A temporary of the sidecar or of the pending refresh older than a minute is a killed writer's.
      const now = Date.now()
      for (const name of names.filter((entry) => temporaryOf(sidecarName)(entry) || temporaryOf(pendingName)(entry))) {
        const old = yield* fs.stat(path.join(dir, name)).pipe(
          Effect.map((info) => Option.exists(info.mtime, (mtime) => now - mtime.getTime() > killedWriterAfterMs)),
          Effect.orElseSucceed(() => false)
        )
        if (old) yield* Effect.ignore(fs.remove(path.join(dir, name)))
      }
    })
    yield* checkFolder

    // The keyed backends. The file holds one credential: any other key is refused, never mixed in.
    const ownKey = (key: string) => key === credentialKey
    const otherKey = (key: string, operation: AuthStoreError["operation"]) =>
      new AuthStoreError({
        path: file,
        operation,
        problem: otherKeyProblem(credentialKey, key)
      })
    // A file has no version: the revision is a hash of its exact text.
    const entryOf = (text: string): CredentialStore.Entry => ({ text, revision: sha256Hex(text) })
    const credentials: CredentialStore.Backend = {
      location: () => file,
      read: (key) => ownKey(key) ? Effect.map(readText, Option.map(entryOf)) : Effect.fail(otherKey(key, "read")),
      swap: (key, expected, next) => {
        if (!ownKey(key)) return Effect.fail(otherKey(key, "write"))
        const write = Option.match(next, {
          onNone: () => Effect.as(removeFile, Option.none<CredentialStore.Entry>()),
          onSome: ({ text }) =>
            target.pipe(
              Effect.flatMap((destination) => writeAtomically(destination, text)),
              Effect.mapError((error) => fail("write")(describe(error))),
              Effect.as(Option.some(entryOf(text)))
            )
        })
        return Option.match(expected, {
          // A sign-in or sign-out: whatever is there (an unreadable file is kept aside, as `save` does).
          onNone: () =>
            Option.isSome(next)
              ? withCommitLock(Effect.zipRight(setAsideIfUnreadable, write)).pipe(Effect.map(Either.right))
              : remove.pipe(Effect.as(Either.right(Option.none<CredentialStore.Entry>()))),
          // Under Codex's lock only for the re-read, the compare and the write: never across a request.
          onSome: (revision) =>
            withCommitLock(Effect.gen(function*() {
              const current = Option.map(yield* readText, entryOf)
              const currentRevision = Option.match(current, { onNone: () => "absent", onSome: (e) => e.revision })
              if (currentRevision !== revision) return Either.left(current)
              return Either.right(yield* write)
            }))
        })
      },
      changes: (key) => ownKey(key) ? changed : Stream.empty
    }
    // The refresh lock. A folder this process cannot write (read-only: EROFS; EACCES, EPERM) cannot
    // hold the lock file: the refresh is made all the same, one at a time in this process, and its
    // tokens are served from memory (saving them is retried) rather than the expired ones served.
    const refreshLockPath = path.join(dir, refreshLockName)
    const inProcess = yield* Effect.makeSemaphore(1)
    const lockFallbackSaid = onceFlag()
    const cannotOpen = (error: unknown): error is Flock.FlockError =>
      error instanceof Flock.FlockError && error.reason === "open" && error.code !== undefined &&
      cannotOpenLock.has(error.code)
    const inProcessOnly = (error: Flock.FlockError) =>
      Effect.zipRight(
        once(
          lockFallbackSaid,
          Effect.logWarning(lockFallbackWarning(refreshLockPath, dir)).pipe(
            Effect.annotateLogs({ code: error.code ?? null })
          )
        ),
        Effect.void
      )
    const refreshLock = Effect.gen(function*() {
      // Bounded as the file lock is: a refresh in this process holds it no longer than that.
      yield* Effect.acquireRelease(
        inProcess.take(1).pipe(
          Effect.timeoutFail({
            duration: refreshLockWait,
            onTimeout: () => lockTimeout(refreshLockPath, `not had within ${Duration.format(refreshLockWait)}`)
          })
        ),
        () => inProcess.release(1)
      )
      yield* ensureDir.pipe(
        Effect.zipRight(Flock.acquire(fs, refreshLockPath, { waitAtMost: refreshLockWait })),
        Effect.catchIf(cannotOpen, inProcessOnly),
        Effect.mapError((error) => error instanceof Flock.FlockError ? lockError(error) : error)
      )
    })
    const coordinator: RefreshCoordinator.Backend = {
      location: () => sidecar,
      lock: (key) => ownKey(key) ? refreshLock : Effect.fail(otherKey(key, "lock")),
      readHealth: (key) =>
        !ownKey(key) ? Effect.succeedNone : FileRead.readOptional(fs, sidecar, maxSidecarBytes).pipe(
          Effect.mapError((problem) => new SharedHealthError({ location: sidecar, operation: "read", problem }))
        ),
      writeHealth: (key, record) =>
        !ownKey(key)
          ? Effect.fail(
            new SharedHealthError({
              location: sidecar,
              operation: "write",
              problem: otherKeyProblem(credentialKey, key)
            })
          )
          : Option.match(record, {
            onNone: () => fs.remove(sidecar),
            onSome: ({ text }) => writeAtomically(sidecar, `${text}\n`)
          }).pipe(Effect.catchAll((error) =>
            isNotFound(error)
              ? Effect.void
              : Effect.fail(new SharedHealthError({ location: sidecar, operation: "write", problem: describe(error) }))
          ))
    }

    // A refresh whose tokens could not be written to auth.json: beside it, with its protection (0600,
    // atomic), written without Codex's lock, since it is kept when that lock cannot be had.
    const pendingFile = path.join(dir, pendingName)
    const failPending = (error: PlatformError) =>
      new AuthStoreError({ path: pendingFile, operation: "write", problem: describe(error) })
    const pending: PendingFile.Backend = {
      location: pendingFile,
      read: FileRead.readOptional(fs, pendingFile, maxPendingBytes),
      write: (text) =>
        Option.match(text, {
          onNone: () =>
            fs.remove(pendingFile).pipe(Effect.catchIf(isNotFound, () => Effect.void), Effect.mapError(failPending)),
          onSome: (content) =>
            Effect.zipRight(ensureDir, Effect.mapError(writeAtomically(pendingFile, content), failPending))
        })
    }

    return { credentials, coordinator, pending } as const
  })
