// A refresh that may have rotated the refresh token is never forgotten: not when the manager stops
// while Codex's lock is held by a stuck program, not when the token endpoint answers after the
// callers' timeout. Real files and a real endpoint on 127.0.0.1; time is the TestClock.
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberId,
  Layer,
  Logger,
  LogLevel,
  Option,
  Queue,
  Redacted,
  Scope,
  Stream,
  TestClock,
  TestServices
} from "effect"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import * as Configuration from "../src/config/Configuration.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as Flock from "../src/stores/internal/flock.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { chatgptJson, secrets } from "./support/fixtures.js"
import { callCount, rotated, tokenOf } from "./support/manager.js"

/** Every line logged, and a way to wait until the n-th line holding some text has been logged. */
const logLines = () => {
  const lines: Array<string> = []
  const waiters = new Set<{ readonly text: string; readonly count: number; readonly done: Deferred.Deferred<void> }>()
  const seen = (text: string) => lines.filter((line) => line.includes(text)).length
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    const notes = [...annotations].map(([key, value]) => `${key}=${String(value)}`).join(" ")
    lines.push(`${logLevel.label} ${parts.map(String).join(" ")} ${notes}`)
    for (const waiter of waiters) {
      if (seen(waiter.text) >= waiter.count) {
        waiters.delete(waiter)
        Deferred.unsafeDone(waiter.done, Exit.void)
      }
    }
  })
  const logged = (text: string, count = 1) =>
    Effect.suspend(() => {
      if (seen(text) >= count) return Effect.void
      const done = Deferred.unsafeMake<void>(FiberId.none)
      waiters.add({ text, count, done })
      return Deferred.await(done)
    })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger), logged }
}

/** Fails after `seconds` of real time: a wait for real I/O that never ends is a failed test, not a hung one. */
const within = (seconds: number, what: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.raceFirst(
    effect,
    TestServices.provideLive(Effect.sleep(Duration.seconds(seconds))).pipe(
      Effect.zipRight(Effect.dieMessage(`${what} did not happen within ${seconds} s`))
    )
  )

const waitingForLock = "Waiting for a lock another process holds"

describe("a refresh that may have rotated the token is never forgotten", () => {
  it.scoped(
    "stopping while Codex's lock never comes: bounded, one ERROR line, the rotated token kept beside auth.json and adopted by the next start",
    () => {
      const log = logLines()
      return Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson()), { mode: 0o600 })
        const managerOn = (script: Parameters<typeof TokenRefresher.layerTest>[0]) =>
          Effect.gen(function*() {
            const scope = yield* Scope.make()
            const context = yield* Layer.buildWithScope(
              Layer.scoped(AuthManager, AuthManager.make({})).pipe(
                Layer.provideMerge(
                  Layer.merge(
                    Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })),
                    TokenRefresher.layerTest(script)
                  )
                ),
                Layer.provide(NodeContext.layer)
              ),
              scope
            )
            return { scope, auth: Context.get(context, AuthManager), calls: Effect.provide(callCount, context) }
          })

        // A stuck Codex: it holds auth.json.lock and never lets go.
        const holder = yield* Scope.make()
        yield* Flock.acquire(fs, `${home}/auth.json.lock`, { waitAtMost: Duration.seconds(1) }).pipe(
          Scope.extend(holder)
        )

        const first = yield* managerOn([rotated(secrets.newAccess, secrets.newRefresh)])
        const refreshing = yield* Effect.fork(first.auth.refresh)
        yield* log.logged(waitingForLock).pipe(within(10, "the wait for Codex's lock"))
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(refreshing)
        expect(yield* first.calls).toBe(1)
        expect(tokenOf(yield* first.auth.getAuthStatus({ includeToken: true }))).toBe(secrets.newAccess)
        expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens.refresh_token).toBe(secrets.refresh)

        // SIGTERM: the last save waits for the lock a short while, then keeps the tokens aside.
        const stopping = yield* Effect.fork(Scope.close(first.scope, Exit.void))
        yield* log.logged(waitingForLock, 2).pipe(within(10, "the last save's wait for Codex's lock"))
        yield* TestClock.adjust("2 seconds")
        // No more time passes: stopping is done by then (only real I/O is waited for).
        yield* Fiber.join(stopping).pipe(within(10, "stopping"))
        const errors = log.lines.filter((line) => line.startsWith("ERROR"))
        expect(errors).toHaveLength(1)
        expect(errors[0]).toContain("kept beside the credentials")
        expect(errors[0]).toContain("auth-pending-refresh.json")
        expect(errors[0]).toContain("auth.json.lock: another process held it")
        const kept = `${home}/auth-pending-refresh.json`
        expect(statSync(kept).mode & 0o777).toBe(0o600)
        expect(JSON.parse(readFileSync(kept, "utf8"))).toMatchObject({
          replaced_refresh_token: secrets.refresh,
          access_token: secrets.newAccess,
          refresh_token: secrets.newRefresh
        })
        expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens.refresh_token).toBe(secrets.refresh)

        // Codex lets go; the next start serves and saves the kept tokens, and sends nothing.
        yield* Scope.close(holder, Exit.void)
        const next = yield* managerOn([rotated("never", "never")])
        expect(tokenOf(yield* next.auth.getAuthStatus({ includeToken: true }))).toBe(secrets.newAccess)
        yield* log.logged("saved now").pipe(within(10, "the save of the kept tokens"))
        expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens).toMatchObject({
          access_token: secrets.newAccess,
          refresh_token: secrets.newRefresh
        })
        expect(yield* fs.exists(kept)).toBe(false)
        expect(yield* next.calls).toBe(0)
        yield* Scope.close(next.scope, Exit.void)
        expect(log.lines.join("\n")).not.toContain("SECRET")
      }).pipe(Effect.provide(Layer.merge(NodeContext.layer, log.layer)), Logger.withMinimumLogLevel(LogLevel.Debug))
    }
  )

  it.scoped(
    "stopping while the refresh's own save waits for Codex's lock: the answer is not lost with the interrupted save, it is kept beside auth.json",
    () => {
      const log = logLines()
      return Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson()), { mode: 0o600 })
        // A stuck Codex holds auth.json.lock for longer than the manager waits when it stops.
        const holder = yield* Scope.make()
        yield* Flock.acquire(fs, `${home}/auth.json.lock`, { waitAtMost: Duration.seconds(1) }).pipe(
          Scope.extend(holder)
        )
        const scope = yield* Scope.make()
        const auth = Context.get(
          yield* Layer.buildWithScope(
            Layer.scoped(
              AuthManager,
              AuthManager.make({ shutdownWait: Duration.seconds(1), shutdownSaveWait: Duration.seconds(1) })
            ).pipe(
              Layer.provide(Layer.merge(
                Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })),
                TokenRefresher.layerTest([rotated(secrets.newAccess, secrets.newRefresh)])
              )),
              Layer.provide(NodeContext.layer)
            ),
            scope
          ),
          AuthManager
        )
        // The token endpoint answered; the save of that answer waits for Codex's lock when SIGTERM comes.
        const refreshing = yield* Effect.fork(auth.refresh)
        yield* log.logged(waitingForLock).pipe(within(10, "the save's wait for Codex's lock"))
        const stopping = yield* Effect.fork(Scope.close(scope, Exit.void))
        // The wait for the flight ends (1 s), then the last save's (1 s): the save in flight is cut.
        yield* log.logged("Stopping: waiting for the refresh in flight").pipe(within(10, "the wait for the flight"))
        yield* TestClock.adjust("1 second")
        yield* log.logged("did not finish in time").pipe(within(10, "the end of the wait for the flight"))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(stopping).pipe(within(10, "stopping"))
        yield* Fiber.await(refreshing)
        const kept = `${home}/auth-pending-refresh.json`
        expect(JSON.parse(readFileSync(kept, "utf8"))).toMatchObject({
          replaced_refresh_token: secrets.refresh,
          refresh_token: secrets.newRefresh
        })
        expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens.refresh_token).toBe(secrets.refresh)
        yield* Scope.close(holder, Exit.void)
      }).pipe(Effect.provide(Layer.merge(NodeContext.layer, log.layer)), Logger.withMinimumLogLevel(LogLevel.Debug))
    }
  )

  it.scoped(
    "a second refresh while the first's tokens wait to be saved: the save of the first keeps the second's tokens, and both land in order",
    () => {
      const log = logLines()
      return Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson()), { mode: 0o600 })
        const holder = yield* Scope.make()
        yield* Flock.acquire(fs, `${home}/auth.json.lock`, { waitAtMost: Duration.seconds(1) }).pipe(
          Scope.extend(holder)
        )
        const scope = yield* Scope.make()
        const auth = Context.get(
          yield* Layer.buildWithScope(
            // No minimum interval: a second refresh may follow the first at once.
            Layer.scoped(AuthManager, AuthManager.make({ minRefreshInterval: Duration.zero })).pipe(
              Layer.provide(Layer.merge(
                Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })),
                TokenRefresher.layerTest([rotated("access-1", "refresh-1"), rotated("access-2", "refresh-2")])
              )),
              Layer.provide(NodeContext.layer)
            ),
            scope
          ),
          AuthManager
        )
        // The first refresh is answered; its save gives up on Codex's lock (5 s): unsaved, served.
        const first = yield* Effect.fork(auth.refresh)
        yield* log.logged(waitingForLock).pipe(within(10, "the first save's wait"))
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(first).pipe(Effect.either, within(10, "the first refresh"))
        expect(tokenOf(yield* auth.getAuthStatus({ includeToken: true }))).toBe("access-1")
        // Its save is retried (after 1 s) and waits for Codex's lock again.
        yield* TestClock.adjust("1 second")
        yield* log.logged(waitingForLock, 2).pipe(within(10, "the retried save's wait"))
        // Meanwhile a second refresh sends refresh-1 and gets access-2, made current at once, its own
        // save waiting behind the retried one.
        const firstHash = (yield* auth.state).hash
        const secondCurrent = yield* Effect.fork(
          Stream.runHead(Stream.filter(auth.changes, (state) => state.hash !== firstHash))
        )
        const second = yield* Effect.fork(auth.refresh)
        yield* Fiber.join(secondCurrent).pipe(within(10, "the second refresh's answer"))
        // Codex lets go: the retried save writes the first tokens, then the second's onto them.
        yield* Scope.close(holder, Exit.void)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(second).pipe(within(10, "the second refresh"))
        expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens).toMatchObject({
          access_token: "access-2",
          refresh_token: "refresh-2"
        })
        expect(tokenOf(yield* auth.getAuthStatus({ includeToken: true }))).toBe("access-2")
        yield* Scope.close(scope, Exit.void).pipe(within(10, "stopping"))
      }).pipe(Effect.provide(Layer.merge(NodeContext.layer, log.layer)), Logger.withMinimumLogLevel(LogLevel.Debug))
    }
  )

  it.scoped(
    "a process about to send a refresh token another one replaced but could not save adopts the kept tokens instead",
    () => {
      const log = logLines()
      return Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson()), { mode: 0o600 })
        const managerOn = (script: Parameters<typeof TokenRefresher.layerTest>[0]) =>
          Effect.gen(function*() {
            const scope = yield* Scope.make()
            const context = yield* Layer.buildWithScope(
              Layer.scoped(AuthManager, AuthManager.make({})).pipe(
                Layer.provideMerge(
                  Layer.merge(
                    Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })),
                    TokenRefresher.layerTest(script)
                  )
                ),
                Layer.provide(NodeContext.layer)
              ),
              scope
            )
            return { scope, auth: Context.get(context, AuthManager), calls: Effect.provide(callCount, context) }
          })
        const holder = yield* Scope.make()
        yield* Flock.acquire(fs, `${home}/auth.json.lock`, { waitAtMost: Duration.seconds(1) }).pipe(
          Scope.extend(holder)
        )
        // Two processes on one CODEX_HOME, both holding the same refresh token.
        const one = yield* managerOn([rotated(secrets.newAccess, secrets.newRefresh)])
        const other = yield* managerOn([rotated("never", "never")])

        // The first refreshes; Codex's lock never comes, so its tokens are kept beside auth.json.
        const refreshing = yield* Effect.fork(one.auth.refresh)
        yield* log.logged(waitingForLock).pipe(within(10, "the wait for Codex's lock"))
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(refreshing)
        expect(yield* fs.exists(`${home}/auth-pending-refresh.json`)).toBe(true)

        // The other would send the refresh token still in auth.json, replaced already: it adopts instead.
        yield* other.auth.refresh
        expect(yield* other.calls).toBe(0)
        expect(tokenOf(yield* other.auth.getAuthStatus({ includeToken: true }))).toBe(secrets.newAccess)

        // Codex lets go: both stop and save; auth.json ends with the rotated tokens, nothing kept aside.
        yield* Scope.close(holder, Exit.void)
        // The other first: its retries, waiting for the lock on the test's clock, are stopped, and it saves
        // at once; the first then finds them saved. (Stopped the other way round, the first would wait for
        // the lock the other's retry holds, on a clock that does not move.)
        yield* Scope.close(other.scope, Exit.void).pipe(within(10, "the other process stopping"))
        yield* Scope.close(one.scope, Exit.void).pipe(within(10, "the first process stopping"))
        expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens.refresh_token).toBe(secrets.newRefresh)
        expect(yield* fs.exists(`${home}/auth-pending-refresh.json`)).toBe(false)
      }).pipe(Effect.provide(Layer.merge(NodeContext.layer, log.layer)), Logger.withMinimumLogLevel(LogLevel.Debug))
    }
  )

  it.scoped("an answer after the callers' timeout is adopted and saved, and the refresh token is sent once", () =>
    Effect.gen(function*() {
      const arrived = yield* Queue.unbounded<void>()
      const rotating = yield* TokenEndpoint.rotating(secrets.refresh)
      // The provider rotates at once and answers 35 s later: past the 30 s refresh timeout.
      const endpoint = yield* TokenEndpoint.make((request) =>
        Effect.gen(function*() {
          const answer = yield* rotating(request)
          yield* Queue.offer(arrived, undefined)
          yield* Effect.sleep("35 seconds")
          return answer
        })
      )
      const context = yield* Layer.build(
        AuthManager.layer.pipe(
          Layer.provideMerge(Layer.merge(
            AuthStore.layerMemory(chatgptJson()),
            TokenRefresher.layerHttp.pipe(Layer.provide(layerNodeHttpClient))
          )),
          Layer.provide(
            Configuration.Configuration.layer({
              refreshTimeout: Duration.seconds(30),
              tokenEndpoint: { url: endpoint.url }
            })
          )
        )
      )
      const auth = Context.get(context, AuthManager)
      const store = Context.get(context, AuthStore)
      const before = yield* auth.state

      const first = yield* Effect.fork(Effect.flip(auth.refresh))
      yield* Queue.take(arrived).pipe(within(10, "the token request"))
      yield* TestClock.adjust("30 seconds")
      // The caller stops waiting: a transient timeout.
      expect(yield* Fiber.join(first).pipe(within(10, "the callers' timeout"))).toMatchObject({
        _tag: "TransientRefreshError",
        kind: "timeout"
      })
      // While the request is open, later refreshes (past any backoff) send nothing.
      yield* TestClock.adjust("3 seconds")
      const second = yield* Effect.fork(Effect.flip(auth.refresh))
      const sentAgain = yield* Effect.raceFirst(
        Effect.as(Fiber.join(second), false),
        Effect.as(Queue.take(arrived), true)
      ).pipe(within(10, "the second refresh"))
      expect(sentAgain, "a second request was sent while the first was open").toBe(false)
      expect(yield* Fiber.join(second)).toMatchObject({ _tag: "TransientRefreshError" })
      yield* auth.getAuthStatus({ includeToken: true, refreshToken: true })
      expect(yield* endpoint.count).toBe(1)

      // The late answer comes: it is served and saved.
      const adopted = yield* Effect.fork(
        auth.changes.pipe(Stream.filter((state) => state.hash !== before.hash), Stream.runHead)
      )
      yield* TestClock.adjust("2 seconds")
      const after = Option.getOrThrow(yield* Fiber.join(adopted).pipe(within(10, "the adoption of the late answer")))
      expect(after.status).toBe("healthy")
      const served = tokenOf(yield* auth.getAuthStatus({ includeToken: true }))
      expect(served).not.toBeNull()
      expect(served).not.toBe(secrets.access)
      const saved = Option.getOrThrow((yield* store.load).document)
      expect(Redacted.value(saved.tokens!.refresh_token)).toBe("rt-1")
      expect(Redacted.value(saved.tokens!.access_token)).toBe(served)

      // Later refreshes send the rotated token, never the replaced one.
      yield* TestClock.adjust("1 minute")
      const next = yield* Effect.fork(auth.refresh)
      yield* Queue.take(arrived).pipe(within(10, "the next token request"))
      const sent = (yield* endpoint.requests).map((request) => request.fields.refresh_token)
      expect(sent).toEqual([secrets.refresh, "rt-1"])
      // Its answer is late too (the test's endpoint always is), and adopted as well.
      const again = yield* Effect.fork(
        auth.changes.pipe(Stream.filter((state) => state.hash !== after.hash), Stream.runHead)
      )
      yield* TestClock.adjust("35 seconds")
      yield* Fiber.await(next)
      yield* Fiber.join(again).pipe(within(10, "the adoption of the second late answer"))
      expect(yield* endpoint.count).toBe(2)
    }))
})
