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
 * - Writes are atomic, through a symlink, in place where the file cannot be
 *   replaced (`fileWrite.ts`).
 * - Changes by others are heard through a watch of the folder, re-made when
 *   the folder is deleted, moved or re-created, and a stat every few seconds
 *   catches what events miss (`fileWatch.ts`).
 * - A refresh whose tokens could not be written to `auth.json` when the
 *   process stopped (Codex's lock held by a stuck program) is kept beside it
 *   in `auth-pending-refresh.json`: 0600, atomic, without the lock. It holds
 *   tokens, so it is part of the credential store and is removed once they
 *   are saved (see `pendingRefresh.ts`).
 */
import { sha256Hex } from "@effect-auth-manager/core/canonicalJson"
import {
  cannotOpenLock,
  commitLockName,
  fileName,
  killedWriterAfterMs,
  lockFallbackWarning,
  maxSidecarBytes,
  notWritableWarning,
  openToOthers,
  openToOthersWarning,
  otherKeyProblem,
  refreshLockName,
  sidecarName,
  temporaryOf,
  writableByAll,
  writableByAllWarning
} from "@effect-auth-manager/core/fileRules"
import { Duration, Effect, FileSystem, Option, Path, type PlatformError, Ref, Result, Semaphore, Stream } from "effect"
import { AuthStoreError, SharedHealthError } from "../../errors/Errors.js"
import type * as CredentialStore from "../CredentialStore.js"
import type { FileOptions } from "../FileOptions.js"
import * as FileRead from "../FileRead.js"
import type * as RefreshCoordinator from "../RefreshCoordinator.js"
import { lockTimeout } from "../RefreshCoordinator.js"
import * as FileWatch from "./fileWatch.js"
import { makeWriter } from "./fileWrite.js"
import * as Flock from "./flock.js"
import type * as PendingFile from "./pendingRefresh.js"
import { maxPendingBytes, pendingName } from "./pendingRefresh.js"
import { describe, isNotFound } from "./platformError.js"

export { commitLockName, fileName, refreshLockName, sidecarName } from "@effect-auth-manager/core/fileRules"

/** A flock that could not be had, as the store's error: a timeout is someone else busy; anything else
 * (EACCES, EROFS) is this user unable to use the folder, and says so. */
export const lockError = (file: string) => (error: Flock.FlockError) =>
  error.reason === "timeout"
    ? new AuthStoreError({ path: file, operation: "lock", problem: `${error.path}: ${error.problem}` })
    : new AuthStoreError({ path: file, operation: "write", problem: `cannot lock ${error.path}: ${error.problem}` })

/** At start: say once what will go wrong and what to do, and clear what killed writers left. */
const checkFolder = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  dir: string,
  writer: ReturnType<typeof makeWriter>,
  withCommitLock: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E | AuthStoreError>
) =>
  Effect.gen(function*() {
    yield* Flock.warnIfCodexUnlocked
    const folder = yield* Effect.option(fs.stat(dir))
    if (Option.isNone(folder)) return
    if (writableByAll(folder.value.mode)) yield* Effect.logWarning(writableByAllWarning(dir))
    const writable = yield* fs.access(dir, { writable: true }).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
    if (!writable) yield* Effect.logWarning(notWritableWarning(dir))
    const file = path.join(dir, fileName)
    const content = yield* Effect.option(fs.stat(file))
    if (Option.isSome(content) && openToOthers(content.value.mode)) {
      yield* Effect.logWarning(openToOthersWarning(file, content.value.mode, yield* writer.target))
    }
    const names = yield* fs.readDirectory(dir).pipe(Effect.orElseSucceed(() => []))
    if (writable && names.some(temporaryOf(fileName))) {
      yield* withCommitLock(writer.removeStaleTemporaries).pipe(
        Effect.catch((error) =>
          Effect.logDebug("Stale temporary files left for later").pipe(Effect.annotateLogs({ problem: error.problem }))
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

/**
 * The file store over `FileSystem`: the backends of the keyed services
 * (`CredentialStore`, `RefreshCoordinator`) for the one key `auth.json`
 * holds. `FileStore` serves them as those services, and `AuthStore.makeFile`
 * binds them to that key: every path to the file goes through these.
 */
export const makeFiles = Effect.fnUntraced(function*({
  codexHome,
  commitLockWait = Duration.seconds(5),
  credentialKey = "default",
  pollInterval = Duration.seconds(2),
  refreshTimeout = Duration.seconds(30)
}: FileOptions) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const dir = path.resolve(codexHome)
  const file = path.join(dir, fileName)
  const writer = makeWriter(fs, path, { dir, file, fileName })
  const { ensureDir } = writer
  const toStoreError = lockError(file)

  const locked = (lockPath: string, waitAtMost: Duration.Duration) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    ensureDir.pipe(
      // Only the wait is interruptible: a re-read, compare and write under the lock (milliseconds) is
      // never cut half-way (a temporary file left behind, or a write done but not known to be).
      Effect.andThen(Flock.withLock(fs, lockPath, { waitAtMost })(Effect.uninterruptible(effect))),
      Effect.mapError((error): E | AuthStoreError => error instanceof Flock.FlockError ? toStoreError(error) : error)
    )
  const withCommitLock = locked(path.join(dir, commitLockName), commitLockWait)

  const remove = Effect.gen(function*() {
    if (!(yield* fs.exists(dir).pipe(Effect.orElseSucceed(() => true)))) return
    yield* withCommitLock(Effect.andThen(writer.removeFile, writer.removeStaleTemporaries))
  }).pipe(Effect.withSpan("AuthStore.remove"))

  yield* checkFolder(fs, path, dir, writer, withCommitLock)

  const changed = FileWatch.changes(fs, path, { dir, file, pollInterval })
  const credentials = credentialsBackend({ file, credentialKey, writer, withCommitLock, remove, changed, fs })
  const coordinator = yield* coordinatorBackend({
    fs,
    dir,
    file,
    sidecar: path.join(dir, sidecarName),
    refreshLockPath: path.join(dir, refreshLockName),
    // The holder of the refresh lock may wait for the commit lock after its request: both bounds, and a margin.
    refreshLockWait: Duration.sum(Duration.sum(refreshTimeout, commitLockWait), Duration.seconds(5)),
    credentialKey,
    writer,
    toStoreError
  })

  // A refresh whose tokens could not be written to auth.json: beside it, with its protection (0600,
  // atomic), written without Codex's lock, since it is kept when that lock cannot be had.
  const pendingFile = path.join(dir, pendingName)
  const failPending = (error: PlatformError.PlatformError) =>
    new AuthStoreError({ path: pendingFile, operation: "write", problem: describe(error) })
  const pending: PendingFile.Backend = {
    location: pendingFile,
    read: FileRead.readOptional(fs, pendingFile, maxPendingBytes),
    write: (text) =>
      Option.match(text, {
        onNone: () =>
          fs.remove(pendingFile).pipe(Effect.catchIf(isNotFound, () => Effect.void), Effect.mapError(failPending)),
        onSome: (content) =>
          Effect.andThen(ensureDir, Effect.mapError(writer.writeAtomically(pendingFile, content), failPending))
      })
  }

  return { credentials, coordinator, pending } as const
})

/** The file holds one credential: any other key is refused, never mixed in. */
const otherKey = (location: string, credentialKey: string, key: string, operation: AuthStoreError["operation"]) =>
  new AuthStoreError({
    path: location,
    operation,
    problem: otherKeyProblem(credentialKey, key)
  })

// A file has no version: the revision is a hash of its exact text.
const entryOf = (text: string): CredentialStore.Entry => ({ text, revision: sha256Hex(text) })

const credentialsBackend = (options: {
  readonly fs: FileSystem.FileSystem
  readonly file: string
  readonly credentialKey: string
  readonly writer: ReturnType<typeof makeWriter>
  readonly withCommitLock: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E | AuthStoreError>
  readonly remove: Effect.Effect<void, AuthStoreError>
  readonly changed: Stream.Stream<void>
}): CredentialStore.Backend => {
  const { changed, credentialKey, file, fs, withCommitLock, writer } = options
  const readText = FileRead.readText(fs, file)
  const ownKey = (key: string) => key === credentialKey
  const write = (next: Option.Option<CredentialStore.Write>) =>
    Option.match(next, {
      onNone: () => Effect.as(writer.removeFile, Option.none<CredentialStore.Entry>()),
      onSome: ({ text }) =>
        writer.target.pipe(
          Effect.flatMap((destination) => writer.writeAtomically(destination, text)),
          Effect.mapError((error) => writer.fail("write")(describe(error))),
          Effect.as(Option.some(entryOf(text)))
        )
    })
  return {
    location: () => file,
    read: (key) =>
      ownKey(key) ? Effect.map(readText, Option.map(entryOf)) : Effect.fail(otherKey(file, credentialKey, key, "read")),
    swap: (key, expected, next) => {
      if (!ownKey(key)) return Effect.fail(otherKey(file, credentialKey, key, "write"))
      return Option.match(expected, {
        // A sign-in or sign-out: whatever is there (an unreadable file is kept aside, as `save` does).
        onNone: () =>
          Option.isSome(next)
            ? withCommitLock(Effect.andThen(writer.setAsideIfUnreadable, write(next))).pipe(Effect.map(Result.succeed))
            : options.remove.pipe(Effect.as(Result.succeed(Option.none<CredentialStore.Entry>()))),
        // Under Codex's lock only for the re-read, the compare and the write: never across a request.
        onSome: (revision) =>
          withCommitLock(Effect.gen(function*() {
            const current = Option.map(yield* readText, entryOf)
            const currentRevision = Option.match(current, { onNone: () => "absent", onSome: (e) => e.revision })
            if (currentRevision !== revision) return Result.fail(current)
            return Result.succeed(yield* write(next))
          }))
      })
    },
    changes: (key) => ownKey(key) ? changed : Stream.empty
  }
}

const coordinatorBackend = Effect.fnUntraced(function*(options: {
  readonly fs: FileSystem.FileSystem
  readonly dir: string
  readonly file: string
  readonly sidecar: string
  readonly refreshLockPath: string
  readonly refreshLockWait: Duration.Duration
  readonly credentialKey: string
  readonly writer: ReturnType<typeof makeWriter>
  readonly toStoreError: (error: Flock.FlockError) => AuthStoreError
}) {
  const { credentialKey, dir, file, fs, refreshLockPath, refreshLockWait, sidecar, writer } = options
  const ownKey = (key: string) => key === credentialKey
  // The refresh lock. A folder this process cannot write (read-only: EROFS; EACCES, EPERM) cannot
  // hold the lock file: the refresh is made all the same, one at a time in this process, and its
  // tokens are served from memory (saving them is retried) rather than the expired ones served.
  const inProcess = yield* Semaphore.make(1)
  const lockFallbackSaid = Ref.makeUnsafe(false)
  const cannotOpen = (error: unknown): error is Flock.FlockError =>
    error instanceof Flock.FlockError && error.reason === "open" && error.code !== undefined &&
    cannotOpenLock.has(error.code)
  const inProcessOnly = (error: Flock.FlockError) =>
    FileWatch.once(
      lockFallbackSaid,
      Effect.logWarning(lockFallbackWarning(refreshLockPath, dir)).pipe(
        Effect.annotateLogs({ code: error.code ?? null })
      )
    )
  const refreshLock = Effect.gen(function*() {
    // Bounded as the file lock is: a refresh in this process holds it no longer than that.
    yield* Effect.acquireRelease(
      inProcess.take(1).pipe(
        Effect.timeoutOrElse({
          duration: refreshLockWait,
          orElse: () => Effect.fail(lockTimeout(refreshLockPath, `not had within ${Duration.format(refreshLockWait)}`))
        })
      ),
      () => inProcess.release(1)
    )
    yield* writer.ensureDir.pipe(
      Effect.andThen(Flock.acquire(fs, refreshLockPath, { waitAtMost: refreshLockWait })),
      Effect.catchIf(cannotOpen, inProcessOnly),
      Effect.mapError((error) => error instanceof Flock.FlockError ? options.toStoreError(error) : error)
    )
  })
  const wrongKey = (key: string) =>
    new SharedHealthError({
      location: sidecar,
      operation: "write",
      problem: otherKeyProblem(credentialKey, key)
    })
  const backend: RefreshCoordinator.Backend = {
    location: () => sidecar,
    lock: (key) => ownKey(key) ? refreshLock : Effect.fail(otherKey(file, credentialKey, key, "lock")),
    readHealth: (key) =>
      !ownKey(key) ? Effect.succeedNone : FileRead.readOptional(fs, sidecar, maxSidecarBytes).pipe(
        Effect.mapError((problem) => new SharedHealthError({ location: sidecar, operation: "read", problem }))
      ),
    writeHealth: (key, record) =>
      !ownKey(key)
        ? Effect.fail(wrongKey(key))
        : Option.match(record, {
          onNone: () => fs.remove(sidecar),
          onSome: ({ text }) => writer.writeAtomically(sidecar, `${text}\n`)
        }).pipe(Effect.catch((error) =>
          isNotFound(error)
            ? Effect.void
            : Effect.fail(new SharedHealthError({ location: sidecar, operation: "write", problem: describe(error) }))
        ))
  }
  return backend
})
