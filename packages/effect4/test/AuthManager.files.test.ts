// A refresh that may have rotated the refresh token is never forgotten, on real files: Codex's lock
// on auth.json.lock held by a stuck program (util-linux `flock`, as the Codex CLI takes it) while the
// manager stops. Time is the test clock; real I/O is awaited, each wait bounded in real time.
import * as Core from "@effect-auth-manager/core/lockPrimitive"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, FileSystem, Layer, Logger, References, Scope } from "effect"
import { TestClock } from "effect/testing"
import { spawn } from "node:child_process"
import { once } from "node:events"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { AuthManager } from "../src/manager/AuthManager.js"
import { makeTest, type ScriptStep, TokenRefresherTest } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as LockPrimitive from "../src/stores/internal/lockPrimitive.js"
import { chatgptJson, rotated, secrets, tokenOf } from "./AuthManager.support.js"

// The addon the repository builds (native/prebuilds), which takes flock(2) as the Codex CLI does.
const repositoryAddon = Core.find(Core.nodeHost())
beforeEach(() => LockPrimitive.setForTesting(repositoryAddon))
afterEach(() => LockPrimitive.setForTesting(undefined))

/** A stuck Codex: `flock` holding `lock` until the scope closes; ready once it has said so. */
const holder = (lock: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const child = spawn("flock", ["-x", lock, "-c", "echo held; exec cat >/dev/null"], {
        stdio: ["pipe", "pipe", "inherit"]
      })
      await once(child.stdout, "data")
      return child
    }),
    (child) =>
      Effect.promise(async () => {
        if (child.exitCode !== null) return
        const exited = once(child, "exit")
        child.stdin!.end()
        await exited
      })
  )

/** Every line logged, and a way to wait until the n-th line holding some text has been logged. */
const logLines = () => {
  const lines: Array<string> = []
  const waiters = new Set<{ readonly text: string; readonly count: number; readonly done: Deferred.Deferred<void> }>()
  const seen = (text: string) => lines.filter((line) => line.includes(text)).length
  const logger = Logger.make(({ fiber, logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    const notes = Object.entries(fiber.getRef(References.CurrentLogAnnotations))
      .map(([key, value]) => `${key}=${String(value)}`)
      .join(" ")
    lines.push(`${logLevel} ${parts.map(String).join(" ")} ${notes}`)
    for (const waiter of waiters) {
      if (seen(waiter.text) >= waiter.count) {
        waiters.delete(waiter)
        Deferred.doneUnsafe(waiter.done, Exit.void)
      }
    }
  })
  const logged = (text: string, count = 1) =>
    Effect.suspend(() => {
      if (seen(text) >= count) return Effect.void
      const done = Deferred.makeUnsafe<void>()
      waiters.add({ text, count, done })
      return Deferred.await(done)
    })
  return { lines, layer: Logger.layer([logger]), logged }
}

/** Fails after `seconds` of real time: a wait for real I/O that never ends is a failed test, not a hung one. */
const within = (seconds: number, what: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutOrElse(effect, {
    duration: `${seconds} seconds`,
    orElse: () => Effect.die(new Error(`${what} did not happen within ${seconds} s`))
  }).pipe(TestClock.withLive)

const waitingForLock = "Waiting for a lock another process holds"

/** A manager on the auth.json in `home`, with its own scripted refresher, in a scope of its own. */
const managerOn = Effect.fnUntraced(function*(home: string, script: ReadonlyArray<ScriptStep>) {
  const scope = yield* Scope.make()
  const refresher = yield* makeTest(script)
  const store = yield* AuthStore.makeFile({ codexHome: home })
  const auth = yield* AuthManager.make().pipe(
    Scope.provide(scope),
    Effect.provideService(AuthStore, store),
    Effect.provideContext(refresher)
  )
  return { scope, auth, calls: Effect.map(Context.get(refresher, TokenRefresherTest).calls, (c) => c.length) }
})

const storedTokens = (home: string) => JSON.parse(readFileSync(join(home, "auth.json"), "utf8")).tokens

describe("a refresh that may have rotated the token is never forgotten", () => {
  const log = logLines()
  it.effect(
    "stopping while Codex's lock never comes: bounded, one ERROR line, the rotated token kept beside auth.json (0600) and saved by the next start with no request",
    () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        writeFileSync(join(home, "auth.json"), JSON.stringify(chatgptJson()), { mode: 0o600 })
        const stuck = yield* Scope.make()
        yield* holder(join(home, "auth.json.lock")).pipe(Scope.provide(stuck))

        const first = yield* managerOn(home, [rotated("new-access", "new-refresh")])
        const refreshing = yield* Effect.forkChild(first.auth.refresh)
        yield* log.logged(waitingForLock).pipe(within(10, "the wait for Codex's lock"))
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(refreshing).pipe(within(10, "the refresh"))
        expect(yield* first.calls).toBe(1)
        expect(tokenOf(yield* first.auth.getAuthStatus({ includeToken: true }))).toBe("new-access")
        expect(storedTokens(home).refresh_token).toBe(secrets.refresh)

        // SIGTERM: the last save waits for the lock a short while, then keeps the tokens aside.
        const stopping = yield* Effect.forkChild(Scope.close(first.scope, Exit.void))
        yield* log.logged(waitingForLock, 2).pipe(within(10, "the last save's wait for Codex's lock"))
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(stopping).pipe(within(10, "stopping"))
        const errors = log.lines.filter((line) => line.startsWith("Error"))
        expect(errors).toHaveLength(1)
        expect(errors[0]).toContain("kept beside the credentials")
        expect(errors[0]).toContain("auth-pending-refresh.json")
        const kept = join(home, "auth-pending-refresh.json")
        expect(statSync(kept).mode & 0o777).toBe(0o600)
        expect(JSON.parse(readFileSync(kept, "utf8"))).toMatchObject({
          replaced_refresh_token: secrets.refresh,
          access_token: "new-access",
          refresh_token: "new-refresh"
        })
        expect(storedTokens(home).refresh_token).toBe(secrets.refresh)

        // Codex lets go; the next start serves and saves the kept tokens, and sends nothing.
        yield* Scope.close(stuck, Exit.void)
        const next = yield* managerOn(home, [rotated("never", "never")])
        expect(tokenOf(yield* next.auth.getAuthStatus({ includeToken: true }))).toBe("new-access")
        yield* TestClock.adjust("1 millis")
        yield* log.logged("saved now").pipe(within(10, "the save of the kept tokens"))
        expect(storedTokens(home)).toMatchObject({ access_token: "new-access", refresh_token: "new-refresh" })
        expect(yield* fs.exists(kept)).toBe(false)
        expect(yield* next.calls).toBe(0)
        yield* Scope.close(next.scope, Exit.void)
        expect(log.lines.join("\n")).not.toContain("SECRET")
      }).pipe(
        Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, log.layer)),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
  )
})
