// How the lock on auth.json.lock is taken on each platform, and what happens where no lock primitive
// loads: one clear warning, our own processes still exclude each other, writes still work.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as FileSystem from "@effect/platform/FileSystem"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Option } from "effect"
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"
import { plainStatus } from "../src/cli/PlainStatus.js"
import { parseStatusArgs } from "../src/cli/StatusArgs.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as Flock from "../src/stores/internal/flock.js"
import * as LockPrimitive from "../src/stores/internal/lockPrimitive.js"
import { captureCli } from "./support/cli.js"
import { apiKeyJson } from "./support/fixtures.js"

describe("the lock primitive of this machine", () => {
  it("linux-x64 (glibc) loads the addon the package ships, which takes flock(2)", () => {
    const primitive = LockPrimitive.get()
    expect(primitive._tag).toBe("Addon")
    if (primitive._tag !== "Addon") return
    expect(primitive.file).toBe(
      join(import.meta.dirname, "..", "packages", "core", "native", "prebuilds", "linux-x64", "flock.node")
    )
  })
})

/** Runs the tests below as on a machine where no lock primitive loads. */
const withoutPrimitive = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => LockPrimitive.setForTesting({ _tag: "None", reason: "no lock addon is built for plan9-mips" })),
    () => effect,
    () => Effect.sync(() => LockPrimitive.setForTesting(undefined))
  )

afterEach(() => LockPrimitive.setForTesting(undefined))

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped())

/** A pid that no process has any more. */
const deadPid = () => spawnSync(process.execPath, ["-e", "0"]).pid!

const failedWith = (exit: Exit.Exit<unknown, Flock.FlockError>) =>
  Exit.isFailure(exit) ?
    Option.getOrUndefined(
      Exit.causeOption(exit).pipe(Option.flatMap((cause) =>
        Option.fromNullable(
          (cause as { failure?: Flock.FlockError }).failure ?? (cause as { error?: Flock.FlockError }).error
        )
      ))
    ) :
    undefined

describe("where no lock primitive loads: an owner file among our processes", () => {
  it.scopedLive("one holder at a time; the next one gets it as soon as it is let go", () =>
    withoutPrimitive(
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const lock = join(yield* tempDir, "auth.json.lock")
        const held = yield* Deferred.make<void>()
        const first = yield* Effect.fork(Effect.scoped(Effect.zipRight(
          Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(1) }),
          Effect.zipRight(Deferred.succeed(held, undefined), Effect.never)
        )))
        yield* Deferred.await(held)
        expect(readFileSync(`${lock}.owner`, "utf8")).toMatch(new RegExp(`^${process.pid} \\S+ [0-9a-f]+\\n$`))
        const busy = yield* Effect.exit(Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.millis(100) })))
        expect(failedWith(busy)?.reason).toBe("timeout")
        const second = yield* Effect.fork(Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(10) })))
        yield* Fiber.interrupt(first)
        yield* Fiber.join(second)
        // Released: no owner file, no temporary left behind.
        expect(readdirSync(join(lock, "..")).filter((name) => name.startsWith("auth.json.lock."))).toEqual([])
      }).pipe(Effect.provide(NodeContext.layer))
    ))

  it.scopedLive("a waiter's pending owner file survives a store starting (which clears auth.json's stale temporaries)", () =>
    withoutPrimitive(
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* tempDir
        const lock = join(home, "auth.json.refresh.lock")
        const held = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(Effect.scoped(Effect.zipRight(
          Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(1) }),
          Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release))
        )))
        yield* Deferred.await(held)
        // The waiter says (at debug level) that it waits: by then its pending owner file exists.
        const waiting = yield* Deferred.make<void>()
        const heard = Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ message }) =>
            String(message).includes("Waiting for a lock") && Deferred.unsafeDone(waiting, Exit.void)
          )
        )
        const waiter = yield* Effect.fork(
          Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(10) })).pipe(
            Effect.provide(Layer.merge(heard, Logger.minimumLogLevel(LogLevel.Debug)))
          )
        )
        yield* Deferred.await(waiting)
        expect(readdirSync(home).filter((name) => name.endsWith(".pending")).length).toBe(2)
        // A killed writer's temporary of auth.json: the store clears those at start.
        writeFileSync(join(home, "auth.json.1.2.tmp"), "")
        yield* Effect.scoped(
          Layer.build(
            Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })).pipe(Layer.provide(NodeContext.layer))
          )
        )
        expect(readdirSync(home)).not.toContain("auth.json.1.2.tmp")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        yield* Fiber.join(waiter)
      }).pipe(Effect.provide(NodeContext.layer))
    ))

  it.scopedLive("an owner that died (kill -9) is broken at once; one of another host is never broken", () =>
    withoutPrimitive(
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const lock = join(yield* tempDir, "auth.json.lock")
        writeFileSync(`${lock}.owner`, `${deadPid()} ${hostname().replace(/\s/g, "_")} 0123abcd\n`)
        yield* Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(5) }))
        writeFileSync(`${lock}.owner`, `${deadPid()} another-host.example 0123abcd\n`)
        const busy = yield* Effect.exit(Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.millis(200) })))
        expect(failedWith(busy)?.reason).toBe("timeout")
        expect(readFileSync(`${lock}.owner`, "utf8")).toContain("another-host.example")
      }).pipe(Effect.provide(NodeContext.layer))
    ))

  it.scopedLive("the file store warns once at start, naming the consequence, and still writes", () =>
    withoutPrimitive(
      Effect.gen(function*() {
        const home = join(yield* tempDir, "codex-home")
        const logs: Array<string> = []
        const logger = Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ logLevel, message }) => void logs.push(`${logLevel.label} ${String(message)}`))
        )
        const document = AuthDocument.decode(apiKeyJson()).pipe((either) =>
          either._tag === "Right" ? either.right : undefined
        )!
        yield* Effect.flatMap(AuthStore, (store) => store.save(document)).pipe(
          Effect.provide(
            Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })).pipe(Layer.provide(NodeContext.layer))
          ),
          Effect.provide(logger)
        )
        expect(JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))).toEqual(apiKeyJson())
        const warnings = logs.filter((line) => line.startsWith("WARN"))
        expect(warnings).toEqual([
          "WARN " + Flock.codexLockWarning("no lock addon is built for plan9-mips")
        ])
        expect(warnings[0]).toContain(
          "Codex's lock on auth.json cannot be taken here: do not run the Codex CLI on this CODEX_HOME at the same time"
        )
      }).pipe(Effect.provide(NodeContext.layer))
    ))

  it.scopedLive("effect-auth status says so too, and answers as usual", () =>
    withoutPrimitive(
      Effect.gen(function*() {
        const home = yield* tempDir
        writeFileSync(join(home, "auth.json"), JSON.stringify(apiKeyJson()), { mode: 0o600 })
        const logs: Array<string> = []
        const logger = Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ logLevel, message }) => void logs.push(`${logLevel.label} ${String(message)}`))
        )
        const result = yield* captureCli(plainStatus(parseStatusArgs(["status"])!, home)).pipe(Effect.provide(logger))
        expect(result.stdout).toBe("Signed in with an API key")
        expect(result.code).toBe(0)
        expect(logs).toEqual(["WARN " + Flock.codexLockWarning("no lock addon is built for plan9-mips")])
      }).pipe(Effect.provide(NodeContext.layer))
    ))
})
