// Codex's lock on auth.json.lock, against a real holder: util-linux `flock`, which takes flock(2) as the
// Codex CLI does; and the owner file our processes use where no lock primitive loads.
import * as Core from "@effect-auth-manager/core/lockPrimitive"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, FileSystem } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { once } from "node:events"
import { readdirSync, readFileSync } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"
import * as Flock from "../src/stores/internal/flock.js"
import * as LockPrimitive from "../src/stores/internal/lockPrimitive.js"

// The addon the repository builds (native/prebuilds): what the published package carries beside its code.
const repositoryAddon = Core.find(Core.nodeHost())
beforeEach(() => LockPrimitive.setForTesting(repositoryAddon))
afterEach(() => LockPrimitive.setForTesting(undefined))

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped())

/** `flock` holding `lock` until its stdin closes; ready once it has said so (it has the lock then). */
const holder = (lock: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const child = spawn("flock", ["-x", lock, "-c", "echo held; exec cat >/dev/null"], {
        stdio: ["pipe", "pipe", "inherit"]
      })
      await once(child.stdout, "data")
      return child
    }),
    (child) => release(child)
  )

const release = (child: ChildProcess) =>
  Effect.promise(async () => {
    if (child.exitCode !== null) return
    const exited = once(child, "exit")
    child.stdin!.end()
    await exited
  })

/** Whether `flock -n` (no wait) can take `lock` now: what the Codex CLI finds. */
const freeForOthers = (lock: string) => spawnSync("flock", ["-n", lock, "true"]).status === 0

const failure = <A>(exit: Exit.Exit<A, Flock.FlockError>) =>
  Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail")?.error : undefined

describe("Codex's lock, against util-linux flock", () => {
  it("this machine loads the addon, which takes flock(2)", () => {
    expect(repositoryAddon._tag).toBe("Addon")
    expect(Flock.reach().codex).toBe(true)
  })

  it.live("another process holding it: the wait is bounded, a timeout naming the lock; then it is ours", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const lock = join(yield* tempDir, "auth.json.lock")
      const child = yield* holder(lock)
      const busy = yield* Effect.exit(Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.millis(150) })))
      expect(failure(busy)?.reason).toBe("timeout")
      expect(failure(busy)?.path).toBe(lock)
      // Waiting while it is held, and getting it once the holder lets go.
      const inside = yield* Deferred.make<void>()
      // Started at once: its first attempt (open and flock, both synchronous) is made before the check below.
      const waiter = yield* Flock.withLock(fs, lock, { waitAtMost: Duration.seconds(20) })(
        Deferred.succeed(inside, undefined)
      ).pipe(Effect.forkChild({ startImmediately: true }))
      expect(yield* Deferred.isDone(inside)).toBe(false)
      yield* release(child)
      yield* Fiber.join(waiter)
      expect(yield* Deferred.isDone(inside)).toBe(true)
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.live("held by us, Codex's flock cannot take it; released when the scope closes, the file kept", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* tempDir
      const lock = join(dir, "auth.json.lock")
      const seen = yield* Flock.withLock(fs, lock, { waitAtMost: Duration.seconds(1) })(
        Effect.sync(() => freeForOthers(lock))
      )
      expect(seen).toBe(false)
      expect(freeForOthers(lock)).toBe(true)
      // Never deleted: someone may hold a lock on its inode.
      expect(readdirSync(dir)).toEqual(["auth.json.lock"])
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.live("interrupting a waiter ends its wait and leaves the lock to others", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const lock = join(yield* tempDir, "auth.json.lock")
      const child = yield* holder(lock)
      const waiter = yield* Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(30) })).pipe(
        Effect.forkChild
      )
      yield* Fiber.interrupt(waiter)
      yield* release(child)
      expect(freeForOthers(lock)).toBe(true)
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})

describe("where no lock primitive loads: an owner file among our processes", () => {
  it.live("one holder at a time; the next gets it when it is let go; nothing left behind", () =>
    Effect.gen(function*() {
      LockPrimitive.setForTesting({ _tag: "None", reason: "no lock addon is built for plan9-mips" })
      expect(Flock.reach()).toEqual({ codex: false, reason: "no lock addon is built for plan9-mips" })
      const fs = yield* FileSystem.FileSystem
      const lock = join(yield* tempDir, "auth.json.lock")
      const held = yield* Deferred.make<void>()
      const first = yield* Effect.scoped(Effect.andThen(
        Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(1) }),
        Effect.andThen(Deferred.succeed(held, undefined), Effect.never)
      )).pipe(Effect.forkChild)
      yield* Deferred.await(held)
      expect(readFileSync(`${lock}.owner`, "utf8")).toMatch(new RegExp(`^${process.pid} \\S+ [0-9a-f]+\\n$`))
      const busy = yield* Effect.exit(Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.millis(100) })))
      expect(failure(busy)?.reason).toBe("timeout")
      const second = yield* Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(10) })).pipe(
        Effect.forkChild
      )
      yield* Fiber.interrupt(first)
      yield* Fiber.join(second)
      expect(readdirSync(join(lock, "..")).filter((name) => name.startsWith("auth.json.lock."))).toEqual([])
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.live("an owner file left by a process that is gone is broken, not waited on", () =>
    Effect.gen(function*() {
      LockPrimitive.setForTesting({ _tag: "None", reason: "no lock addon is built for plan9-mips" })
      const fs = yield* FileSystem.FileSystem
      const lock = join(yield* tempDir, "auth.json.lock")
      const gone = spawnSync(process.execPath, ["-e", "0"]).pid!
      yield* fs.writeFileString(`${lock}.owner`, `${gone} ${hostname().replace(/\s/g, "_")} 00ff\n`)
      yield* Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(5) }))
      expect(readdirSync(join(lock, "..")).filter((name) => name.startsWith("auth.json.lock."))).toEqual([])
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})
