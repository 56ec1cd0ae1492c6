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
import * as Rules from "@effect-auth-manager/core/fileRules"
import type { PlatformError } from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Option, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { uptime } from "node:os"

export interface OwnerLockProblem {
  readonly message: string
  readonly code?: string | undefined
}

const codeOf = (error: PlatformError): string | undefined =>
  error._tag === "SystemError" ? (error.cause as NodeJS.ErrnoException | undefined)?.code ?? undefined : undefined

const problemOf = (error: PlatformError): OwnerLockProblem => ({ message: error.message, code: codeOf(error) })

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
    const owner = Rules.ownerName(lockPath)
    const breaker = Rules.breakerName(owner)
    const here = Rules.thisHost()
    const line = Rules.ownerLine(process.pid, here, randomBytes(8).toString("hex"))
    const temporary = Rules.ownerTemporaryName(owner, process.pid, randomBytes(4).toString("hex"))
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
        const info = yield* Effect.option(fs.stat(owner))
        const modified = Option.flatMap(info, (stat) => stat.mtime).pipe(Option.map((date) => date.getTime()))
        return Rules.ownerIsStale({
          text,
          here,
          pid: process.pid,
          modifiedMs: Option.getOrUndefined(modified),
          bootMs: bootTime(),
          gone: Rules.processGone
        })
      })

    const breakStale = (seen: string) =>
      Effect.gen(function*() {
        const guarded = yield* fs.writeFileString(breaker, `${line}\n`, { mode, flag: "wx" }).pipe(Effect.either)
        if (guarded._tag === "Left") {
          const age = yield* fs.stat(breaker).pipe(
            Effect.map((stat) =>
              Option.match(stat.mtime, { onNone: () => 0, onSome: (at) => Date.now() - at.getTime() })
            ),
            Effect.orElseSucceed(() => 0)
          )
          if (age > Rules.breakerStaleMs) yield* Effect.ignore(fs.remove(breaker))
          return
        }
        const now = yield* readOwner
        if (Option.isSome(now) && now.value === seen) yield* Effect.ignore(fs.remove(owner))
        yield* Effect.ignore(fs.remove(breaker))
      })

    return Effect.gen(function*() {
      const linked = yield* fs.link(temporary, owner).pipe(Effect.either)
      if (linked._tag === "Right") {
        yield* Effect.addFinalizer(() => release)
        return true
      }
      // Anything but "it exists" (no hard links on this file system, no permission) is said, not waited on.
      if (codeOf(linked.left) !== "EEXIST") return yield* Effect.fail(problemOf(linked.left))
      const text = yield* readOwner
      if (Option.isSome(text) && (yield* stale(text.value))) yield* breakStale(text.value)
      return false
    })
  })
