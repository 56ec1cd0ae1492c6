// The file store's two flock(2) locks, against real processes holding them the way the Codex CLI
// does (util-linux `flock`): Codex's `auth.json.lock` for writes only, ours for refreshes.
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as AuthDocument from "../../src/document/AuthDocument.js"
import { AuthManager } from "../../src/manager/AuthManager.js"
import { TokenRefresher } from "../../src/oauth/TokenRefresher.js"
import { AuthStore } from "../../src/stores/AuthStore.js"
import type { FileOptions } from "../../src/stores/FileOptions.js"
import * as Flock from "../../src/stores/internal/flock.js"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, secrets } from "../support/fixtures.js"
import { callCount, decode, rotated } from "../support/manager.js"
import { appServer, cleanup, endpoint, saysOnStderr, tempHome } from "../support/processes.js"

const homeOf = Effect.map(
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped()),
  (dir) => `${dir}/codex-home`
)

/**
 * Runs util-linux `flock` on `lock` with `command` (run by sh, the lock's descriptor closed in it),
 * and waits until it holds the lock. Killed, with what it started, when the scope closes.
 */
const spawnHolder = (lock: string, command: string) =>
  new Promise<ChildProcess>((resolve, reject) => {
    const child = spawn("flock", ["-o", lock, "-c", `echo held; ${command}`], {
      detached: true,
      stdio: ["ignore", "pipe", "inherit"]
    })
    child.once("error", reject)
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      if (chunk.includes("held")) resolve(child)
    })
  })

const killGroup = (child: ChildProcess) => {
  try {
    process.kill(-child.pid!, "SIGKILL")
  } catch {
    // already gone
  }
}

const holdWithFlock = (lock: string, command: string) =>
  Effect.acquireRelease(
    Effect.promise(() => spawnHolder(lock, command)),
    (child) => Effect.sync(() => killGroup(child))
  )

const exitOf = (child: ChildProcess) =>
  Effect.async<number | null>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })

const fileStore = (home: string, options: Partial<FileOptions> = {}) =>
  Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home, ...options })).pipe(Layer.provide(NodeContext.layer))

describe("the flock primitive", () => {
  it.scopedLive("a holder killed with SIGKILL frees the lock at once: nothing stale to break", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const lock = `${yield* fs.makeTempDirectoryScoped()}/x.lock`
      const holder = yield* holdWithFlock(lock, "sleep 1000")
      const busy = yield* Effect.exit(Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.millis(50) })))
      expect(Exit.isFailure(busy) && Exit.causeOption(busy).pipe(Option.map(String), Option.getOrElse(() => "")))
        .toContain(
          "FlockError"
        )
      process.kill(holder.pid!, "SIGKILL")
      yield* exitOf(holder)
      // The `sleep` it started still runs, without the lock's descriptor.
      yield* Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(1) }))
      expect(existsSync(lock)).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a wait is interruptible, and an interrupted waiter holds nothing", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const lock = `${yield* fs.makeTempDirectoryScoped()}/x.lock`
      const holder = yield* holdWithFlock(lock, "sleep 1000")
      const waiter = yield* Effect.fork(Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.minutes(10) })))
      yield* Fiber.interrupt(waiter)
      process.kill(holder.pid!, "SIGKILL")
      yield* exitOf(holder)
      yield* Effect.scoped(Flock.acquire(fs, lock, { waitAtMost: Duration.seconds(1) }))
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("AuthStore.layerFile: Codex's auth.json.lock", () => {
  it.scopedLive("a sign-in waits while another process holds auth.json.lock (util-linux flock, 2 s), then succeeds", () =>
    Effect.gen(function*() {
      const home = yield* homeOf
      const store = yield* Effect.provide(AuthStore, fileStore(home))
      yield* store.save(decode(chatgptJson()))
      // The holder writes a marker just before it lets go: a write that lands saw it.
      yield* holdWithFlock(`${home}/auth.json.lock`, `sleep 2; echo released > ${home}/marker`)
      yield* store.save(AuthDocument.withApiKey(Option.none(), Redacted.make(secrets.apiKey)))
      expect(readFileSync(`${home}/marker`, "utf8")).toBe("released\n")
      expect((yield* store.load).method).toBe("apikey")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a leftover empty auth.json.lock (as Codex leaves it, 0644) costs no wait and is left as it was", () =>
    Effect.gen(function*() {
      const home = yield* homeOf
      mkdirSync(home, { mode: 0o700 })
      writeFileSync(`${home}/auth.json.lock`, "", { mode: 0o644 })
      chmodSync(`${home}/auth.json.lock`, 0o644)
      const before = statSync(`${home}/auth.json.lock`)
      // A bound of 200 ms: the old O_EXCL lock waited 30 s on this file, then deleted it.
      const store = yield* Effect.provide(AuthStore, fileStore(home, { commitLockWait: Duration.millis(200) }))
      yield* store.save(AuthDocument.withApiKey(Option.none(), Redacted.make(secrets.apiKey)))
      const after = statSync(`${home}/auth.json.lock`)
      expect([after.ino, after.size, after.mode & 0o777]).toEqual([before.ino, 0, 0o644])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("one holder at a time within a process too; the lock files are created 0600 and never deleted", () =>
    Effect.gen(function*() {
      const home = yield* homeOf
      const store = yield* Effect.provide(AuthStore, fileStore(home))
      const events: Array<string> = []
      const holder = (name: string) =>
        store.withRefreshLock(Effect.gen(function*() {
          events.push(`${name} in`)
          yield* Effect.sleep("20 millis")
          events.push(`${name} out`)
        }))
      yield* Effect.all([holder("a"), holder("b"), holder("c")], { concurrency: "unbounded" })
      expect(events.map((event) => event.split(" ")[1])).toEqual(["in", "out", "in", "out", "in", "out"])
      yield* store.save(decode(chatgptJson()))
      for (const name of ["auth.json.lock", "auth.json.refresh.lock"]) {
        expect(statSync(`${home}/${name}`).mode & 0o777).toBe(0o600)
      }
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive(
    "a token request in flight holds only our refresh lock: a Codex-style writer (flock -w 5) is not delayed, and the late result never overwrites what it saved",
    () =>
      Effect.gen(function*() {
        const home = yield* homeOf
        const called = yield* Deferred.make<void>()
        const answer = yield* Deferred.make<void>()
        const slowRequest = Deferred.succeed(called, undefined).pipe(
          Effect.zipRight(Deferred.await(answer)),
          Effect.zipRight(rotated("late-access", "late-refresh"))
        )
        const layer = Layer.scoped(AuthManager, AuthManager.make({})).pipe(
          Layer.provideMerge(Layer.merge(fileStore(home), TokenRefresher.layerTest([slowRequest])))
        )
        yield* Effect.gen(function*() {
          const store = yield* AuthStore
          const auth = yield* AuthManager
          yield* store.save(decode(chatgptJson({ now: Date.now() })))
          yield* auth.reload
          const refreshing = yield* Effect.fork(auth.refresh)
          yield* Deferred.await(called)
          // As the Codex CLI writes: under flock on auth.json.lock, waiting at most 5 s.
          const codex = JSON.stringify(
            chatgptJson({
              now: Date.now(),
              refreshedAgo: 0,
              accessToken: "codex-access",
              refreshToken: "codex-refresh"
            })
          )
          writeFileSync(`${home}/codex.json`, codex)
          const writer = spawn("flock", [
            "-w",
            "5",
            `${home}/auth.json.lock`,
            "-c",
            `cp ${home}/codex.json ${home}/auth.json`
          ], {
            stdio: "ignore"
          })
          expect(yield* exitOf(writer)).toBe(0)
          // The writer finished while our request was still unanswered.
          expect(yield* Deferred.isDone(answer)).toBe(false)
          yield* Deferred.succeed(answer, undefined)
          yield* Fiber.join(refreshing)
          expect(readFileSync(`${home}/auth.json`, "utf8")).toBe(codex)
          const status = yield* auth.getAuthStatus({ includeToken: true })
          expect(status.authToken === null ? null : Redacted.value(status.authToken)).toBe("codex-access")
          expect(yield* callCount).toBe(1)
        }).pipe(Effect.provide(layer))
      }).pipe(Effect.provide(NodeContext.layer))
  )
})

describe("the app server waiting for a lock", () => {
  afterEach(cleanup)

  it("SIGTERM ends it at once, while another process still holds the refresh lock", async () => {
    const tokens = await endpoint(TokenEndpoint.rotating(secrets.refresh))
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const holder = await spawnHolder(`${home}/auth.json.refresh.lock`, "sleep 1000")
    try {
      const server = await appServer({ codexHome: home, tokenUrl: tokens.url })
      server.send({ id: "waits", method: "getAuthStatus", params: { includeToken: true, refreshToken: true } })
      await saysOnStderr(server, "Waiting for a lock another process holds", 0)
      server.child.kill("SIGTERM")
      await server.exited
      // It ended while the lock was still held (its bound is 40 s): the wait did not hold it back.
      expect(holder.exitCode).toBeNull()
      expect(server.messages.some((message) => message.id === "waits")).toBe(false)
      expect(await tokens.count()).toBe(0)
    } finally {
      killGroup(holder)
    }
  })
})
