/**
 * An advisory flock(2) exclusive lock between processes, the kind the Codex
 * CLI takes on `auth.json.lock`. The lock file is opened (created 0600 when
 * missing, never truncated, never deleted: someone else may hold a lock on
 * its inode) and locked with `LOCK_EX | LOCK_NB`, polled with a short backoff
 * up to a bound. A blocking flock would occupy a thread of Node's pool and
 * could not be interrupted; a poll can. The lock is released when the scope
 * closes (the descriptor is closed), and by the kernel when the holder dies,
 * so there is nothing stale to break.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import { Data, Duration, Effect, Schedule, type Scope } from "effect"
import { createRequire } from "node:module"

/** Why the lock could not be had. */
export class FlockError extends Data.TaggedError("FlockError")<{
  readonly path: string
  /** "timeout": someone held it longer than the bound; "open": the lock file could not be opened; "flock": the call failed. */
  readonly reason: "timeout" | "open" | "flock"
  readonly problem: string
  /** The errno code (EACCES, EROFS, …) when the system gave one. */
  readonly code?: string | undefined
}> {}

export interface AcquireOptions {
  /** Give up waiting after this long. */
  readonly waitAtMost: Duration.Duration
  /** The mode of a lock file this call creates (an existing one keeps its own). Default 0600. */
  readonly mode?: number
}

type FsExt = typeof import("fs-ext")
let binding: FsExt | undefined
// Loaded on first use: a program that never locks a file never loads native code. In an ES module
// there is no `require`; in a CommonJS bundle of a program (scripts/bundle.mjs) `import.meta` is empty.
const nativeRequire = (): NodeJS.Require => typeof require === "function" ? require : createRequire(import.meta.url)
const fsExt = (): FsExt => (binding ??= nativeRequire()("fs-ext") as FsExt)

/** The errno code of a platform error (Effect maps only a few to a reason). */
export const errnoOf = (error: PlatformError): string | undefined => {
  if (error._tag !== "SystemError") return undefined
  const code = (error.cause as NodeJS.ErrnoException | undefined)?.code
  return typeof code === "string" ? code : /^(E[A-Z]+)\b/.exec(error.description ?? "")?.[1]
}

const describe = (error: PlatformError): string =>
  error._tag === "SystemError" ? `${error.reason}${error.description ? ` (${error.description})` : ""}` : error.message

class Busy extends Data.TaggedError("Busy") {}

// 2, 4, 8… ms, never more than 50 ms apart, jittered so that waiters do not move in step.
const backoff = Schedule.exponential(Duration.millis(2)).pipe(
  Schedule.union(Schedule.spaced(Duration.millis(50))),
  Schedule.jittered
)

/**
 * Holds an exclusive flock on `path` until the scope closes. Fails with
 * `FlockError` after `waitAtMost`; interruptible while it waits.
 *
 * @example
 * Effect.scoped(Effect.zipRight(Flock.acquire(fs, "/home/me/.codex/auth.json.lock", { waitAtMost: "5 seconds" }), write))
 */
export const acquire = (
  fs: FileSystem.FileSystem,
  path: string,
  options: AcquireOptions
): Effect.Effect<void, FlockError, Scope.Scope> =>
  Effect.gen(function*() {
    // "a": O_WRONLY | O_APPEND | O_CREAT, no O_TRUNC.
    const file = yield* fs.open(path, { flag: "a", mode: options.mode ?? 0o600 }).pipe(
      Effect.mapError((error) => new FlockError({ path, reason: "open", problem: describe(error), code: errnoOf(error) }))
    )
    const fd = file.fd as number
    const tryLock = Effect.suspend((): Effect.Effect<void, Busy | FlockError> => {
      try {
        fsExt().flockSync(fd, "exnb")
        return Effect.void
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code
        return code === "EAGAIN" || code === "EWOULDBLOCK"
          ? Effect.fail(new Busy())
          : Effect.fail(new FlockError({ path, reason: "flock", problem: String((cause as Error).message), code: code }))
      }
    })
    // Said once per wait, for whoever wonders why a process is slow: who holds it is not known.
    let said = false
    const sayWaiting = Effect.suspend(() =>
      said ? Effect.void : ((said = true), Effect.logDebug("Waiting for a lock another process holds").pipe(
        Effect.annotateLogs({ lock: path })
      ))
    )
    yield* tryLock.pipe(
      Effect.tapError((error) => error._tag === "Busy" ? sayWaiting : Effect.void),
      Effect.retry({ schedule: backoff, while: (error) => error._tag === "Busy" }),
      Effect.catchTag("Busy", () => Effect.dieMessage("unreachable: the retry ends only on success or another error")),
      Effect.timeoutFail({
        duration: options.waitAtMost,
        onTimeout: () =>
          new FlockError({
            path,
            reason: "timeout",
            problem: `another process held it for more than ${Duration.format(options.waitAtMost)}`
          })
      })
    )
    // Closing the descriptor (the scope's earlier finalizer) releases it too; unlocking first does not
    // depend on no other descriptor sharing this open file.
    yield* Effect.addFinalizer(() => Effect.ignore(Effect.try(() => fsExt().flockSync(fd, "un"))))
  })

/** Runs `effect` holding the flock on `path` (see `acquire`). */
export const withLock = (fs: FileSystem.FileSystem, path: string, options: AcquireOptions) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | FlockError, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.zipRight(acquire(fs, path, options), effect))
