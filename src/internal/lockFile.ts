/**
 * An exclusive lock between processes: a file created with O_EXCL (`wx`)
 * that holds its owner's pid and start time. A lock whose owner is dead, or
 * that is older than `staleAfter`, is broken (and the breaking logged).
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Duration, Effect, Option, Random, Schema } from "effect"

const LockContent = Schema.parseJson(Schema.Struct({
  pid: Schema.Number,
  /** When the owning process started, in epoch ms: with the pid, it names one process. */
  processStartedAt: Schema.Number,
  acquiredAt: Schema.Number,
  nonce: Schema.Number
}))
type LockContent = typeof LockContent.Type

export interface LockOptions {
  /** A lock held longer than this is abandoned, whoever holds it. */
  readonly staleAfter: Duration.Duration
  /** Waiting for the lock gives up after this long. */
  readonly waitAtMost: Duration.Duration
}

const processStartedAt = Date.now() - Math.round(process.uptime() * 1000)

/** Whether a process with this pid exists (EPERM: it exists, and is someone else's). */
const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Runs `self` while holding the lock file at `path`; the lock is released on
 * every exit, interruption included. Fails with `onTimeout()` when the wait is too long.
 */
export const withLockFile = <Failure>(
  fs: FileSystem.FileSystem,
  path: string,
  options: LockOptions,
  errors: { readonly onTimeout: () => Failure; readonly onError: (error: PlatformError) => Failure }
) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Failure, R> => {
  const staleAfter = Duration.toMillis(options.staleAfter)

  const tryCreate = (content: LockContent) =>
    fs.writeFileString(path, Schema.encodeSync(LockContent)(content), { flag: "wx", mode: 0o600 }).pipe(
      Effect.as(true),
      Effect.catchAll((error) =>
        error._tag === "SystemError" && error.reason === "AlreadyExists"
          ? Effect.succeed(false)
          : Effect.fail(errors.onError(error))
      )
    )

  // The holder, if the lock can be read; none when it vanished or is unreadable (a write in progress).
  const readHolder = fs.readFileString(path).pipe(
    Effect.map((text) => Option.getRight(Schema.decodeEither(LockContent)(text))),
    Effect.orElseSucceed(() => Option.none<LockContent>())
  )

  const breakIfStale = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const holder = yield* readHolder
    const ageFromFile = yield* fs.stat(path).pipe(
      Effect.map((info) => Option.map(info.mtime, (mtime) => now - mtime.getTime())),
      Effect.orElseSucceed(() => Option.none<number>())
    )
    const stale = Option.match(holder, {
      onNone: () => Option.getOrElse(ageFromFile, () => 0) > staleAfter,
      onSome: (lock) => !isAlive(lock.pid) || now - lock.acquiredAt > staleAfter
    })
    if (!stale) return
    // Move it aside first: of several processes breaking the same lock, one wins the rename.
    const aside = `${path}.broken-${process.pid}-${yield* Random.nextIntBetween(0, 2 ** 31)}`
    const moved = yield* fs.rename(path, aside).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
    if (!moved) return
    yield* Effect.ignore(fs.remove(aside))
    yield* Effect.logWarning("Broke a stale refresh lock").pipe(
      Effect.annotateLogs({
        lock: path,
        holderPid: Option.match(holder, { onNone: () => null, onSome: (lock) => lock.pid })
      })
    )
  })

  const acquire = Effect.gen(function*() {
    const content: LockContent = {
      pid: process.pid,
      processStartedAt,
      acquiredAt: yield* Clock.currentTimeMillis,
      nonce: yield* Random.nextIntBetween(0, 2 ** 31)
    }
    for (let wait = 5;; wait = Math.min(wait * 2, 100)) {
      if (yield* tryCreate({ ...content, acquiredAt: yield* Clock.currentTimeMillis })) return content
      yield* breakIfStale
      yield* Effect.sleep(Duration.millis(wait / 2 + (yield* Random.nextIntBetween(0, wait / 2 + 1))))
    }
  }).pipe(
    Effect.timeoutFail({ duration: options.waitAtMost, onTimeout: errors.onTimeout })
  )

  // Only our own lock is removed: after a break, the file may be someone else's.
  const release = (mine: LockContent) =>
    readHolder.pipe(
      Effect.flatMap((holder) =>
        Option.isSome(holder) && holder.value.pid === mine.pid && holder.value.nonce === mine.nonce
          ? Effect.ignore(fs.remove(path))
          : Effect.void
      )
    )

  return Effect.acquireUseRelease(acquire, () => self, release)
}
