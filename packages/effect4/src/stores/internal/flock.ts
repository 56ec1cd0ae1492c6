/**
 * An advisory exclusive lock between processes, the kind the Codex CLI takes
 * on `auth.json.lock` (flock(2) on Linux and macOS, LockFileEx on Windows).
 * The lock file is opened (created 0600 when missing, never truncated, never
 * deleted: someone else may hold a lock on its inode) and locked without
 * blocking, polled with a short backoff up to a bound. A blocking lock would
 * occupy a thread of Node's pool and could not be interrupted; a poll can.
 * The lock is released when the scope closes, and by the kernel when the
 * holder dies, so there is nothing stale to break.
 *
 * Where no lock primitive loads (`lockPrimitive.ts`), our own
 * processes still exclude each other through an owner file beside the lock
 * (`ownerLock.ts`); the Codex CLI does not see that one, and the file store
 * warns about it.
 */
import * as Rules from "@effect-auth-manager/core/fileRules"
import { Data, Duration, Effect, type FileSystem, Schedule, type Scope } from "effect"
import { closeSync, constants, openSync } from "node:fs"
import * as LockPrimitive from "./lockPrimitive.js"
import * as OwnerLock from "./ownerLock.js"

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

/** What a lock on `auth.json.lock` excludes here: the Codex CLI and our processes, or only our processes. */
export const reach = (): { readonly codex: true } | { readonly codex: false; readonly reason: string } => {
  const primitive = LockPrimitive.get()
  return primitive._tag === "None" ? { codex: false, reason: primitive.reason } : { codex: true }
}

/** The warning said at start where `reach` is not the Codex CLI: what it means, what to do, and why. */
export const codexLockWarning = Rules.codexLockWarning

/** Logs `codexLockWarning` when the lock here does not exclude the Codex CLI. */
export const warnIfCodexUnlocked: Effect.Effect<void> = Effect.suspend(() => {
  const here = reach()
  return here.codex ? Effect.void : Effect.logWarning(codexLockWarning(here.reason))
})

const codeOf = (cause: unknown): string | undefined => {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return typeof code === "string" ? code : undefined
}

const messageOf = (cause: unknown): string => String((cause as Error | undefined)?.message ?? cause)

// 2, 4, 8… ms, never more than 50 ms apart, jittered so that waiters do not move in step.
const backoff = Schedule.min([Schedule.exponential(Duration.millis(2)), Schedule.spaced(Duration.millis(50))]).pipe(
  Schedule.jittered
)

/** One attempt: true when the lock is now held (its release added to the scope), false when someone else holds it. */
type Attempt = Effect.Effect<boolean, FlockError, Scope.Scope>

// "a": O_WRONLY | O_APPEND | O_CREAT, no O_TRUNC. The descriptor itself is what the primitive locks, and
// `FileSystem` keeps its descriptors to itself: this one is opened here, closed when the scope closes.
const openLockFile = (path: string, mode: number) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => openSync(path, "a", mode),
      catch: (cause) => new FlockError({ path, reason: "open", problem: messageOf(cause), code: codeOf(cause) })
    }),
    (fd) => Effect.sync(() => closeSync(fd))
  )

/** The prebuilt addon: the lock file is opened once, its descriptor locked on each attempt. */
const addonAttempt = (
  primitive: Extract<LockPrimitive.Primitive, { _tag: "Addon" }>,
  path: string,
  mode: number
): Effect.Effect<Attempt, FlockError, Scope.Scope> =>
  Effect.map(openLockFile(path, mode), (fd) =>
    Effect.try({
      try: () => primitive.lock(fd),
      catch: (cause) => new FlockError({ path, reason: "flock", problem: messageOf(cause), code: codeOf(cause) })
    }).pipe(
      // Closing the descriptor (the scope's earlier finalizer) releases it too; unlocking first does not
      // depend on no other descriptor sharing this open file.
      Effect.tap((held) =>
        held ? Effect.addFinalizer(() => Effect.ignore(Effect.try(() => primitive.unlock(fd)))) : Effect.void
      )
    ))

/** macOS: each attempt is an open that takes the lock itself, or fails with EAGAIN when it is held. */
const openExlockAttempt = (flags: number, path: string, mode: number): Attempt =>
  Effect.suspend(() => {
    let fd: number
    try {
      // As "a": O_WRONLY | O_APPEND | O_CREAT, no O_TRUNC.
      fd = openSync(path, flags | constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, mode)
    } catch (cause) {
      const code = codeOf(cause)
      return code !== undefined && Rules.lockBusy.has(code)
        ? Effect.succeed(false)
        : Effect.fail(new FlockError({ path, reason: "open", problem: messageOf(cause), code }))
    }
    return Effect.as(Effect.addFinalizer(() => Effect.sync(() => closeSync(fd))), true)
  })

const ownerProblem = (path: string) => (problem: OwnerLock.OwnerLockProblem) =>
  new FlockError({ path, reason: "open", problem: problem.message, code: problem.code })

/**
 * Holds an exclusive lock on `path` until the scope closes. Fails with
 * `FlockError` after `waitAtMost`; interruptible while it waits.
 *
 * @example
 * Effect.scoped(Effect.andThen(Flock.acquire(fs, "/home/me/.codex/auth.json.lock", { waitAtMost: "5 seconds" }), write))
 */
export const acquire = Effect.fnUntraced(function*(
  fs: FileSystem.FileSystem,
  path: string,
  options: AcquireOptions
): Effect.fn.Return<void, FlockError, Scope.Scope> {
  const mode = options.mode ?? 0o600
  const primitive = LockPrimitive.get()
  const attempt: Attempt = primitive._tag === "Addon"
    ? yield* addonAttempt(primitive, path, mode)
    : primitive._tag === "OpenExlock"
    ? openExlockAttempt(primitive.flags, path, mode)
    : yield* OwnerLock.attempt(fs, path, mode).pipe(
      Effect.map(Effect.mapError(ownerProblem(path))),
      Effect.mapError(ownerProblem(path))
    )
  // Said once per wait, for whoever wonders why a process is slow: who holds it is not known.
  let said = false
  const sayWaiting = Effect.suspend(() =>
    said ?
      Effect.void :
      ((said = true),
        Effect.logDebug("Waiting for a lock another process holds").pipe(Effect.annotateLogs({ lock: path })))
  )
  // An attempt is short and never interrupted halfway: a lock taken always has its release in the scope.
  const once = Effect.tap(Effect.uninterruptible(attempt), (held) => held ? Effect.void : sayWaiting)
  yield* once.pipe(
    Effect.repeat({ schedule: backoff, until: (held) => held }),
    Effect.timeoutOrElse({
      duration: options.waitAtMost,
      orElse: () =>
        Effect.fail(
          new FlockError({
            path,
            reason: "timeout",
            problem: `another process held it for more than ${Duration.format(options.waitAtMost)}`
          })
        )
    })
  )
})

/** Runs `effect` holding the lock on `path` (see `acquire`). */
export const withLock =
  (fs: FileSystem.FileSystem, path: string, options: AcquireOptions) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | FlockError, Exclude<R, Scope.Scope>> =>
    Effect.scoped(Effect.andThen(acquire(fs, path, options), effect))
