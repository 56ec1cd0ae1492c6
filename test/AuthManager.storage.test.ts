// The manager over a file store that misbehaves: a file that cannot be replaced or written, a
// folder that is deleted or moved, a store whose lock fails. Real files; faults injected.
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Logger, Option, Redacted, Stream } from "effect"
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Settings } from "../src/config/Settings.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStoreError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { TokenRefresher, TokenRefresherTest } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { type Faults, layerFaulty } from "./support/faultyFs.js"
import { chatgptJson } from "./support/fixtures.js"
import { callCount, poll, rotated, tokenOf } from "./support/manager.js"

/** A CODEX_HOME holding a stale ChatGPT auth.json; removed when the scope closes. */
const homeWith = (json: object) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const root = mkdtempSync(join(tmpdir(), "effect-auth-storage-"))
      const home = join(root, "codex-home")
      mkdirSync(home, { mode: 0o700 })
      writeFileSync(join(home, "auth.json"), JSON.stringify(json), { mode: 0o600 })
      return home
    }),
    (home) => Effect.sync(() => rmSync(join(home, ".."), { recursive: true, force: true }))
  )

/** The messages logged, and a wait for the first one that matches (awaited, never polled). */
const logged = () => {
  const lines: Array<string> = []
  const waiters: Array<{ readonly matches: (line: string) => boolean; readonly resume: () => void }> = []
  const layer = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ message }) => {
      const line = String(message)
      lines.push(line)
      for (const waiter of waiters.filter((w) => w.matches(line))) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resume()
      }
    })
  )
  const waitFor = (matches: (line: string) => boolean) =>
    Effect.async<void>((resume) => {
      if (lines.some(matches)) return resume(Effect.void)
      const waiter = { matches, resume: () => resume(Effect.void) }
      waiters.push(waiter)
      return Effect.sync(() => waiters.includes(waiter) && waiters.splice(waiters.indexOf(waiter), 1))
    })
  return { lines, layer, waitFor }
}

const managerOn = (
  home: string,
  faults: Faults,
  script: Parameters<typeof TokenRefresher.layerTest>[0],
  settings: Partial<Settings> = {}
) =>
  Layer.scoped(AuthManager, AuthManager.make(settings)).pipe(
    Layer.provideMerge(Layer.merge(
      Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home, pollInterval: Duration.millis(50) })).pipe(
        Layer.provide(layerFaulty(faults))
      ),
      TokenRefresher.layerTest(script)
    ))
  )

const onDisk = (home: string) => JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))

/** Waits (bounded) until the manager holds the snapshot of `json`. */
const adopted = (json: object) =>
  Effect.gen(function*() {
    const hash = Either.getOrThrow(AuthDocument.parse(JSON.stringify(json))).hash
    const auth = yield* AuthManager
    yield* auth.changes.pipe(
      Stream.filter((state) => state.hash === hash),
      Stream.runHead,
      Effect.timeout("10 seconds")
    )
  })

describe("a refresh whose result cannot be saved the usual way", () => {
  it.scopedLive("auth.json that cannot be replaced (bind mount: rename fails with EBUSY) is rewritten in place", () =>
    Effect.gen(function*() {
      const home = yield* homeWith(chatgptJson({ now: Date.now() }))
      const before = statSync(join(home, "auth.json")).ino
      const faults: Faults = { rename: (to) => (to.endsWith("/auth.json") ? "EBUSY" : undefined) }
      yield* Effect.gen(function*() {
        expect(tokenOf(yield* poll())).toBe("a2")
        expect(onDisk(home).tokens.refresh_token).toBe("r2")
        expect(statSync(join(home, "auth.json")).ino).toBe(before)
        expect(readdirSync(home).filter((name) => name.endsWith(".tmp"))).toEqual([])
        expect(yield* callCount).toBe(1)
      }).pipe(Effect.provide(managerOn(home, faults, [rotated("a2", "r2")])))
    }))

  it.scopedLive(
    "auth.json that cannot be written at all (immutable: EPERM): the new tokens are served, no storm, the old refresh token is never sent again, saving is retried, one WARN",
    () =>
      Effect.gen(function*() {
        const home = yield* homeWith(chatgptJson({ now: Date.now() }))
        const original = readFileSync(join(home, "auth.json"), "utf8")
        const immutable = (path: string) => path.endsWith("/auth.json") || path.endsWith(".tmp")
        const faults: Faults = {
          rename: (to) => (immutable(to) ? "EPERM" : undefined),
          open: (path, flag) => (immutable(path) && flag !== "r" ? "EPERM" : undefined)
        }
        const logs = logged()
        yield* Effect.gen(function*() {
          const auth = yield* AuthManager
          // (a) served from memory; (c) 20 more polls ask for nothing.
          expect(tokenOf(yield* poll())).toBe("a2")
          for (let i = 0; i < 20; i++) expect(tokenOf(yield* poll())).toBe("a2")
          expect(yield* callCount).toBe(1)
          expect(readFileSync(join(home, "auth.json"), "utf8")).toBe(original)
          // A forced refresh (an API refused a2) sends r2, never the old token.
          expect(yield* auth.reportUnauthorized(Redacted.make("a2"))).toBe("refreshed")
          const sent = (yield* Effect.flatMap(TokenRefresherTest, (t) => t.calls)).map(Redacted.value)
          expect(sent.slice(1)).toEqual(["r2"])
          expect(tokenOf(yield* poll())).toBe("a3")
          // (d) said once, though two saves failed.
          expect(logs.lines.filter((line) => line.includes("could not be saved")).length).toBe(1)
          // (b) the file heals: the retry saves the newest tokens.
          faults.rename = undefined
          faults.open = undefined
          // The line is logged just after the write lands (the test's timeout bounds the wait).
          yield* logs.waitFor((line) => line.includes("saved now"))
          expect(onDisk(home).tokens.refresh_token).toBe("r3")
          expect(tokenOf(yield* poll())).toBe("a3")
          expect(yield* callCount).toBe(2)
        }).pipe(
          Effect.provide(managerOn(home, faults, [rotated("a2", "r2"), rotated("a3", "r3")], {
            backoffBase: Duration.millis(20),
            backoffCap: Duration.millis(100)
          })),
          Effect.provide(logs.layer)
        )
      }).pipe(Effect.timeout("20 seconds"))
  )
})

describe("a read-only CODEX_HOME", () => {
  it.scopedLive("(EROFS) the refresh lock cannot be opened: the refresh is made anyway, its tokens served from memory, said in one WARN; the replaced refresh token is never sent again", () =>
    Effect.gen(function*() {
      const home = yield* homeWith(chatgptJson({ now: Date.now() }))
      const original = readFileSync(join(home, "auth.json"), "utf8")
      const inHome = (path: string) => path.startsWith(home)
      const faults: Faults = {
        access: (path) => (path === home ? "EROFS" : undefined),
        open: (path, flag) => (inHome(path) && flag !== "r" ? "EROFS" : undefined),
        rename: (to) => (inHome(to) ? "EROFS" : undefined)
      }
      const logs = logged()
      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        expect(tokenOf(yield* poll())).toBe("a2")
        for (let i = 0; i < 20; i++) expect(tokenOf(yield* poll())).toBe("a2")
        expect(yield* callCount).toBe(1)
        // A forced refresh (an API refused a2) takes the lock again: it sends r2, never the replaced token.
        expect(yield* auth.reportUnauthorized(Redacted.make("a2"))).toBe("refreshed")
        const sent = (yield* Effect.flatMap(TokenRefresherTest, (t) => t.calls)).map(Redacted.value)
        expect(sent.slice(1)).toEqual(["r2"])
        expect(tokenOf(yield* poll())).toBe("a3")
        expect(readFileSync(join(home, "auth.json"), "utf8")).toBe(original)
        expect(logs.lines.filter((line) => line.includes("refresh lock")).length).toBe(1)
      }).pipe(
        Effect.provide(managerOn(home, faults, [rotated("a2", "r2"), rotated("a3", "r3")], {
          backoffBase: Duration.millis(20),
          backoffCap: Duration.millis(100)
        })),
        Effect.provide(logs.layer)
      )
    }).pipe(Effect.timeout("20 seconds")))
})

describe("the watch", () => {
  it.scopedLive("re-establishes itself when CODEX_HOME is deleted and re-created, or moved aside and re-created", () =>
    Effect.gen(function*() {
      const home = yield* homeWith(chatgptJson({ now: Date.now(), refreshedAgo: 0 }))
      yield* Effect.gen(function*() {
        rmSync(home, { recursive: true })
        mkdirSync(home, { mode: 0o700 })
        const second = chatgptJson({ now: Date.now(), refreshedAgo: 0, accessToken: "second" })
        writeFileSync(join(home, "auth.json"), JSON.stringify(second))
        yield* adopted(second)
        expect(tokenOf(yield* poll())).toBe("second")

        renameSync(home, `${home}-aside`)
        mkdirSync(home, { mode: 0o700 })
        const third = chatgptJson({ now: Date.now(), refreshedAgo: 0, accessToken: "third" })
        writeFileSync(join(home, "auth.json"), JSON.stringify(third))
        yield* adopted(third)
        expect(tokenOf(yield* poll())).toBe("third")
        expect(yield* callCount).toBe(0)
      }).pipe(Effect.provide(managerOn(home, {}, [])))
    }))
})

describe("store errors during a refresh", () => {
  it.effect("a lock that always fails is logged and cools down (kind storage), not retried on every poll", () => {
    const logs = logged()
    let attempts = 0
    const failingLock = Layer.effect(
      AuthStore,
      Effect.map(AuthStore, (store) => ({
        ...store,
        withRefreshLock: () =>
          Effect.fail(new AuthStoreError({ path: "memory", operation: "lock", problem: "held too long" })).pipe(
            Effect.ensuring(Effect.sync(() => attempts++))
          )
      }))
    ).pipe(Layer.provide(AuthStore.layerMemory(chatgptJson())))
    return Effect.gen(function*() {
      for (let i = 0; i < 5; i++) expect(tokenOf(yield* poll())).not.toBeNull()
      expect(attempts).toBe(1)
      expect(yield* callCount).toBe(0)
      const state = yield* Effect.flatMap(AuthManager, (auth) => auth.state)
      expect(state.status).toBe("cooling-down")
      expect(logs.lines.filter((line) => line.includes("backing off")).length).toBe(1)
    }).pipe(
      Effect.provide(
        Layer.scoped(AuthManager, AuthManager.make({})).pipe(
          Layer.provideMerge(Layer.merge(failingLock, TokenRefresher.layerTest([rotated("a2", "r2")])))
        )
      ),
      Effect.provide(logs.layer)
    )
  })

  it.effect("refreshed tokens not saved yet are saved when the manager stops (their refresh token would be sent again by the next one)", () =>
    Effect.gen(function*() {
      let failures = 1
      const flakyStore = Layer.effect(
        AuthStore,
        Effect.map(AuthStore, (store) => ({
          ...store,
          compareAndSet: (expected: string, next: Parameters<typeof store.compareAndSet>[1]) =>
            failures-- > 0
              ? Effect.fail(new AuthStoreError({ path: "memory", operation: "write", problem: "disk full" }))
              : store.compareAndSet(expected, next)
        }))
      )
      const memory = yield* Layer.build(AuthStore.layerMemory(chatgptJson()))
      const stack = Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(Layer.merge(flakyStore, TokenRefresher.layerTest([rotated("a2", "r2")]))),
        Layer.provide(Layer.succeedContext(memory))
      )
      // The manager stops before its save retry (a backoff away on the TestClock) has run.
      yield* Effect.gen(function*() {
        expect(tokenOf(yield* poll())).toBe("a2")
        expect(yield* callCount).toBe(1)
      }).pipe(Effect.provide(stack))
      const stored = yield* Effect.flatMap(AuthStore, (store) => store.load).pipe(Effect.provide(memory))
      const tokens = Option.getOrThrow(stored.document).tokens!
      expect(Redacted.value(tokens.refresh_token)).toBe("r2")
      expect(Redacted.value(tokens.access_token)).toBe("a2")
    }).pipe(Effect.scoped))

  /**
   * A store whose compare-and-set finds, `times` times in a row, that another program rewrote
   * auth.json meanwhile, changing `account_id` only (the refresh token stays the one being replaced).
   */
  const rewrittenDuringSaves = (times: number) =>
    Layer.effect(
      AuthStore,
      Effect.map(AuthStore, (store) => {
        let rewrites = 0
        return {
          ...store,
          compareAndSet: (expected: string, next: Parameters<typeof store.compareAndSet>[1]) =>
            Effect.zipRight(
              rewrites < times
                ? Effect.flatMap(Effect.sync(() => ++rewrites), (n) =>
                  store.save(Option.getOrThrow(Either.getRight(AuthDocument.decode({
                    ...chatgptJson(),
                    OPENAI_API_KEY: null,
                    tokens: { ...(chatgptJson().tokens as object), account_id: `acct_other_${n}` }
                  })))))
                : Effect.void,
              store.compareAndSet(expected, next)
            )
        }
      })
    )
  const refreshAgainst = (times: number) =>
    Effect.gen(function*() {
      const memory = yield* Layer.build(AuthStore.layerMemory(chatgptJson()))
      const stack = Layer.scoped(AuthManager, AuthManager.make({})).pipe(
        Layer.provideMerge(Layer.merge(rewrittenDuringSaves(times), TokenRefresher.layerTest([rotated("a2", "r2")]))),
        Layer.provide(Layer.succeedContext(memory))
      )
      const served = yield* Effect.map(poll(), tokenOf).pipe(Effect.provide(stack))
      const stored = yield* Effect.flatMap(AuthStore, (store) => store.load).pipe(Effect.provide(memory))
      return { served, tokens: Option.getOrThrow(stored.document).tokens! }
    })

  it.effect("writes during the request that left the refresh token alone do not cost the rotated one, however many", () =>
    Effect.gen(function*() {
      for (const times of [1, 2, 5]) {
        const { served, tokens } = yield* refreshAgainst(times)
        expect(served).toBe("a2")
        expect(Redacted.value(tokens.refresh_token)).toBe("r2")
        // Applied onto the last rewrite: its other fields are kept.
        expect(tokens.account_id).toBe(`acct_other_${times}`)
      }
    }).pipe(Effect.scoped))

  it.effect("storage that keeps changing past the bound: the rotated tokens are served from memory and saved later, never dropped", () =>
    Effect.gen(function*() {
      // Six rewrites: the first save and five re-applications all find storage changed.
      const { served, tokens } = yield* refreshAgainst(6)
      expect(served).toBe("a2")
      // Kept in memory, then saved: at the latest by the last save when the manager stops.
      expect(Redacted.value(tokens.refresh_token)).toBe("r2")
      expect(tokens.account_id).toBe("acct_other_6")
    }).pipe(Effect.scoped))

  it.scopedLive("a CODEX_HOME this user may not write: said once at start, the refresh is made and served from memory, and no one blames another process", () =>
    Effect.gen(function*() {
      const home = yield* homeWith(chatgptJson({ now: Date.now() }))
      const inHome = (path: string) => path.startsWith(home)
      const faults: Faults = {
        access: (path) => (path === home ? "EACCES" : undefined),
        open: (path, flag) => (inHome(path) && flag !== "r" ? "EACCES" : undefined)
      }
      const logs = logged()
      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        expect(tokenOf(yield* poll())).toBe("a2")
        expect(tokenOf(yield* poll())).toBe("a2")
        expect(yield* callCount).toBe(1)
        expect((yield* auth.state).status).toBe("healthy")
        expect(logs.lines.filter((line) => line.includes("is not writable by this user")).length).toBe(1)
        const signIn = yield* Effect.flip(auth.loginWithApiKey(Redacted.make("sk-x")))
        expect(signIn.message).not.toContain("Another process")
        expect(signIn.message).toContain("may write")
      }).pipe(Effect.provide(managerOn(home, faults, [rotated("a2", "r2")])), Effect.provide(logs.layer))
    }))
})
