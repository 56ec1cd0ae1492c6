/**
 * Where no lock primitive loads: our processes exclude each other through an
 * owner file, `<lock>.owner`, holding "<pid> <host> <nonce>". It is created
 * whole and atomically (a private temporary file, then link(2), which fails
 * when the owner file exists), so a reader never sees it half written.
 *
 * A holder that dies without removing it leaves it behind; a waiter removes
 * it when its owner is provably gone: same host, and that process no longer
 * exists or the file predates the last boot. Removing it is itself guarded by
 * a `<lock>.owner.break` file created exclusively, so two waiters cannot
 * both break it and one of them remove the other's fresh owner file; a
 * `.break` file is held for microseconds, so one older than a few seconds
 * is a breaker's that was killed, and is removed. An owner file of another
 * host is never broken (its pid means nothing here): waiters then time out
 * with the usual "another process held it" error.
 */
import { Effect, type FileSystem, Option, type PlatformError, Result, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { hostname, uptime } from "node:os"
import { errnoOf } from "./platformError.js"

export interface OwnerLockProblem {
  readonly message: string
  readonly code?: string | undefined
}

const problemOf = (error: PlatformError.PlatformError): OwnerLockProblem => ({
  message: error.message,
  code: errnoOf(error)
})

/** A `.break` file older than this is a killed breaker's. */
const breakerStaleMs = 5_000

/** The owner line, and whether the process it names is gone. */
const parse = (text: string) => {
  const match = /^(\d+) (\S+) ([0-9a-f]+)$/.exec(text.trim())
  return match === null ? undefined : { pid: Number(match[1]), host: match[2]! }
}

const processGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

const bootTime = () => Date.now() - uptime() * 1000

/**
 * Prepares one waiter's attempts on `lockPath` (the temporary owner file is
 * made once, removed when the scope closes); each attempt is true when the
 * lock is now held, its release added to the scope.
 */
export const attempt = (
  fs: FileSystem.FileSystem,
  lockPath: string,
  mode: number
): Effect.Effect<Effect.Effect<boolean, OwnerLockProblem, Scope.Scope>, OwnerLockProblem, Scope.Scope> =>
  Effect.gen(function*() {
    const owner = `${lockPath}.owner`
    const breaker = `${owner}.break`
    const line = `${process.pid} ${hostname().replace(/\s/g, "_")} ${randomBytes(8).toString("hex")}`
    // Not "<name>.….tmp": the file store clears those of auth.json at start as a killed writer's.
    const temporary = `${owner}.${process.pid}.${randomBytes(4).toString("hex")}.pending`
    yield* Effect.acquireRelease(
      fs.writeFileString(temporary, `${line}\n`, { mode, flag: "wx" }),
      () => Effect.ignore(fs.remove(temporary))
    ).pipe(Effect.mapError(problemOf))

    const readOwner = fs.readFileString(owner).pipe(Effect.option)
    const release = Effect.gen(function*() {
      const text = yield* readOwner
      if (Option.isSome(text) && text.value.trim() === line) yield* Effect.ignore(fs.remove(owner))
    })

    const stale = (text: string) =>
      Effect.gen(function*() {
        const parsed = parse(text)
        const info = yield* Effect.option(fs.stat(owner))
        const modified = Option.flatMap(info, (stat) => stat.mtime).pipe(Option.map((date) => date.getTime()))
        // Created whole by link(2): an unreadable line is not someone's half-written one.
        if (parsed === undefined) return true
        if (parsed.host !== hostname().replace(/\s/g, "_")) return false
        if (Option.exists(modified, (at) => at < bootTime())) return true
        return parsed.pid !== process.pid && processGone(parsed.pid)
      })

    const breakStale = (seen: string) =>
      Effect.gen(function*() {
        const guarded = yield* fs.writeFileString(breaker, `${line}\n`, { mode, flag: "wx" }).pipe(Effect.result)
        if (Result.isFailure(guarded)) {
          const age = yield* fs.stat(breaker).pipe(
            Effect.map((stat) =>
              Option.match(stat.mtime, { onNone: () => 0, onSome: (at) => Date.now() - at.getTime() })
            ),
            Effect.orElseSucceed(() => 0)
          )
          if (age > breakerStaleMs) yield* Effect.ignore(fs.remove(breaker))
          return
        }
        const now = yield* readOwner
        if (Option.isSome(now) && now.value === seen) yield* Effect.ignore(fs.remove(owner))
        yield* Effect.ignore(fs.remove(breaker))
      })

    return Effect.gen(function*() {
      const linked = yield* fs.link(temporary, owner).pipe(Effect.result)
      if (Result.isSuccess(linked)) {
        yield* Effect.addFinalizer(() => release)
        return true
      }
      // Anything but "it exists" (no hard links on this file system, no permission) is said, not waited on.
      if (errnoOf(linked.failure) !== "EEXIST") return yield* Effect.fail(problemOf(linked.failure))
      const text = yield* readOwner
      if (Option.isSome(text) && (yield* stale(text.value))) yield* breakStale(text.value)
      return false
    })
  })
