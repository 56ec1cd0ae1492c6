// The single-credential store over a real auth.json: atomic 0600 writes, the exact text kept, bounded
// reads, typed errors that name the file and never quote it; and the memory store parsing as the file.
import * as Core from "@effect-auth-manager/core/lockPrimitive"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { Effect, FileSystem, Layer, Logger, Option, Redacted, Result, type Scope } from "effect"
import { execFileSync } from "node:child_process"
import { Configuration } from "../src/config/Configuration.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStore, type AuthStoreShape } from "../src/stores/AuthStore.js"
import * as LockPrimitive from "../src/stores/internal/lockPrimitive.js"

const secret = "refresh-token-SECRET-2"
const chatgptJson = (refreshToken: string, extra: Record<string, unknown> = {}) => ({
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: {
    id_token: "header.eyJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSJ9.signature",
    access_token: "access-token-SECRET-1",
    refresh_token: refreshToken,
    account_id: "acct_123"
  },
  last_refresh: "2026-01-01T00:00:00.000Z",
  ...extra
})
const decode = (json: unknown) => Result.getOrThrow(AuthDocument.decode(json))
const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)
// Codex's lock through the addon the repository builds (native/prebuilds), as the published package has it.
const repositoryAddon = Core.find(Core.nodeHost())
beforeEach(() => LockPrimitive.setForTesting(repositoryAddon))
afterEach(() => LockPrimitive.setForTesting(undefined))

/** A fresh CODEX_HOME (not yet created) in a temporary folder, and the store on it. */
const withStore = <A, E>(
  body: (home: string, store: AuthStoreShape) => Effect.Effect<A, E, FileSystem.FileSystem | Scope.Scope>
) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const home = `${yield* fs.makeTempDirectoryScoped()}/codex-home`
    const store = yield* Effect.provide(
      AuthStore,
      AuthStore.layerFile.pipe(Layer.provide(Configuration.layer({ codexHome: home })), Layer.provide(platform))
    )
    return yield* body(home, store)
  }).pipe(Effect.provide(platform))

describe("AuthStore.layerFile", () => {
  it.live("reads a missing file as logged out", () =>
    withStore((_, store) =>
      Effect.gen(function*() {
        expect((yield* store.load).hash).toBe("absent")
        expect(store.location).toMatch(/codex-home\/auth\.json$/)
      })
    ))

  it.live("writes atomically: a 0600 file in a 0700 folder, no temporary left, the exact text of unknown fields kept", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* fs.makeDirectory(home, { mode: 0o700 })
        // As another program wrote it: a number written as 1.50, key order of its own.
        yield* fs.writeFileString(
          `${home}/auth.json`,
          JSON.stringify(chatgptJson(secret, { zz_newer: { b: 1, a: [true, null] } })).replace(
            "{\"b\":1",
            "{\"b\":1.50"
          )
        )
        const read = yield* store.load
        const next = AuthDocument.applyRefresh(
          Option.getOrThrow(read.document),
          { accessToken: Redacted.make("access-token-SECRET-4") },
          new Date(0)
        )
        const written = yield* store.compareAndSet(read.hash, Option.some(next))
        expect(written._tag).toBe("Written")
        expect((yield* fs.stat(`${home}/auth.json`)).mode & 0o777).toBe(0o600)
        expect((yield* fs.stat(home)).mode & 0o777).toBe(0o700)
        expect((yield* fs.readDirectory(home)).filter((name) => !name.endsWith(".lock"))).toEqual(["auth.json"])
        const text = yield* fs.readFileString(`${home}/auth.json`)
        expect(text).toContain("\"zz_newer\": {\"b\":1.50,\"a\":[true,null]}")
        expect(text).toContain("access-token-SECRET-4")
        if (written._tag === "Written") expect((yield* store.load).hash).toBe(written.snapshot.hash)
      })
    ))

  it.live("a compare-and-set against a snapshot someone replaced answers what is there, and writes nothing", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const first = yield* store.save(decode(chatgptJson("r1")))
        yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson("r-codex")))
        const result = yield* store.compareAndSet(first.hash, Option.some(decode(chatgptJson("r2"))))
        if (result._tag !== "Conflict") return expect.fail("expected a conflict")
        expect(Redacted.value(Option.getOrThrow(result.current.document).tokens!.refresh_token)).toBe("r-codex")
        expect(yield* fs.readFileString(`${home}/auth.json`)).toBe(JSON.stringify(chatgptJson("r-codex")))
      })
    ))

  const badFiles: ReadonlyArray<[string, string, string]> = [
    ["not valid JSON", `{"tokens": {"refresh_token": "${secret}"`, "not valid JSON"],
    ["a field of the wrong type", JSON.stringify({ ...chatgptJson(secret), last_refresh: 12 }), "last_refresh"]
  ]
  for (const [kind, content, said] of badFiles) {
    it.live(`reports ${kind} as AuthStoreError naming the file, never quoting it, leaving it unchanged`, () =>
      withStore((home, store) =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          yield* fs.makeDirectory(home)
          yield* fs.writeFileString(`${home}/auth.json`, content)
          const error = yield* Effect.flip(store.load)
          expect(error._tag).toBe("AuthStoreError")
          expect(error.message).toContain(`${home}/auth.json`)
          expect(error.message).toContain(said)
          expect(error.message).not.toContain(secret)
          expect(error.message).toContain("repair it, or move it away and sign in again")
          expect(yield* fs.readFileString(`${home}/auth.json`)).toBe(content)
        })
      ))
  }

  it.live("keeps an unreadable file aside, untouched, when a sign-in writes over it; removing twice succeeds", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* fs.makeDirectory(home)
        yield* fs.writeFileString(`${home}/auth.json`, "not json")
        yield* store.save(AuthDocument.withApiKey(Option.none(), Redacted.make("sk-test-api-key-SECRET-3")))
        const kept = (yield* fs.readDirectory(home)).find((name) => name.startsWith("auth.json.unreadable-"))
        expect(yield* fs.readFileString(`${home}/${kept}`)).toBe("not json")
        expect((yield* store.load).method).toBe("apikey")
        yield* store.remove
        expect(yield* fs.exists(`${home}/auth.json`)).toBe(false)
        yield* store.remove
      })
    ))

  it.live("a symlinked auth.json is written through the link, atomically in the target's folder", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const elsewhere = yield* fs.makeTempDirectoryScoped()
        yield* fs.makeDirectory(home)
        yield* fs.writeFileString(`${elsewhere}/auth.json`, JSON.stringify(chatgptJson("r1")))
        yield* fs.symlink(`${elsewhere}/auth.json`, `${home}/auth.json`)
        yield* store.save(decode(chatgptJson("r2")))
        expect((yield* fs.lstat(`${home}/auth.json`)).type).toBe("SymbolicLink")
        expect(JSON.parse(yield* fs.readFileString(`${elsewhere}/auth.json`)).tokens.refresh_token).toBe("r2")
        expect(yield* fs.readDirectory(elsewhere)).toEqual(["auth.json"])
      })
    ))
})

describe("AuthStore.layerFile: bounded reads", () => {
  it.live("a FIFO, /dev/zero behind a symlink, a folder and a huge file are refused with a clear error, at once", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* fs.makeDirectory(home, { recursive: true })
        const cases: ReadonlyArray<[string, Effect.Effect<void, unknown>]> = [
          ["a named pipe (FIFO)", Effect.sync(() => execFileSync("mkfifo", [`${home}/auth.json`]))],
          ["a character device", fs.symlink("/dev/zero", `${home}/auth.json`)],
          ["a folder", fs.makeDirectory(`${home}/auth.json`)],
          ["larger than 1048576 bytes", fs.writeFileString(`${home}/auth.json`, `{"pad": "${"x".repeat(2 ** 21)}"}`)]
        ]
        for (const [problem, plant] of cases) {
          yield* fs.remove(`${home}/auth.json`, { recursive: true }).pipe(Effect.ignore)
          yield* plant
          const error = yield* Effect.flip(store.load)
          expect(error._tag).toBe("AuthStoreError")
          expect(error.message).toContain(problem)
          expect(error.message).toContain(`${home}/auth.json`)
        }
      })
    ))
})

describe("AuthStore.layerFile: what is kept beside auth.json", () => {
  it.live("the shared health holds no secret; a corrupt sidecar is ignored", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const saved = yield* store.save(decode(chatgptJson(secret)))
        yield* store.saveShared(Option.some({ hash: saved.hash, state: "poisoned", reason: "reused", at: 1 }))
        const sidecar = yield* fs.readFileString(`${home}/auth-refresh-state.json`)
        expect(JSON.parse(sidecar)).toEqual({ hash: saved.hash, state: "poisoned", reason: "reused", at: 1 })
        expect(Option.map(yield* store.loadShared, (h) => h.state)).toEqual(Option.some("poisoned"))
        yield* fs.writeFileString(`${home}/auth-refresh-state.json`, "{ corrupt")
        expect(Option.isNone(yield* store.loadShared)).toBe(true)
      })
    ))

  it.live("a pending refresh is kept 0600 beside auth.json, read back, and removed", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const pending = {
          replaced: Redacted.make(secret),
          tokens: { refreshToken: Redacted.make("refresh-token-SECRET-5") },
          at: 42
        }
        yield* store.keepPending!(Option.some(pending))
        expect((yield* fs.stat(`${home}/auth-pending-refresh.json`)).mode & 0o777).toBe(0o600)
        const loaded = Option.getOrThrow(yield* store.loadPending!)
        expect(Redacted.value(loaded.replaced)).toBe(secret)
        expect(Redacted.value(loaded.tokens.refreshToken!)).toBe("refresh-token-SECRET-5")
        expect(loaded.at).toBe(42)
        yield* store.keepPending!(Option.none())
        expect(yield* fs.exists(`${home}/auth-pending-refresh.json`)).toBe(false)
      })
    ))
})

describe("AuthStore.layerFile: permissions after every write path", () => {
  it.live("auth.json, the sidecar, the pending refresh and the locks are 0600 in a 0700 folder", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const saved = yield* store.save(decode(chatgptJson(secret)))
        yield* store.withRefreshLock(store.compareAndSet(saved.hash, Option.some(decode(chatgptJson("r2")))))
        yield* store.saveShared(Option.some({ hash: saved.hash, state: "poisoned", reason: "reused", at: 1 }))
        yield* store.keepPending!(Option.some({ replaced: Redacted.make(secret), tokens: {}, at: 1 }))
        const names = (yield* fs.readDirectory(home)).sort()
        expect(names).toEqual([
          "auth-pending-refresh.json",
          "auth-refresh-state.json",
          "auth.json",
          "auth.json.lock",
          "auth.json.refresh.lock"
        ])
        const modes: Array<[string, number]> = [[".", (yield* fs.stat(home)).mode & 0o777]]
        for (const name of names) modes.push([name, (yield* fs.stat(`${home}/${name}`)).mode & 0o777])
        expect(modes).toEqual(modes.map(([name]) => [name, name === "." ? 0o700 : 0o600]))
      })
    ))
})

describe("AuthStore.layerFile: housekeeping and what it says", () => {
  const captured = () => {
    const lines: Array<string> = []
    return { lines, layer: Logger.layer([Logger.make(({ message }) => lines.push(String(message)))]) }
  }
  const storeOn = (home: string) =>
    Effect.provide(AuthStore, Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })))

  it.live("temporary files a killed writer left (they may hold a refresh token) are removed at start and at sign-out", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson(secret)))
      yield* fs.writeFileString(`${home}/auth.json.4242.17.tmp`, JSON.stringify(chatgptJson(secret)))
      yield* fs.writeFileString(`${home}/auth-refresh-state.json.4242.18.tmp`, "{}")
      yield* fs.utimes(`${home}/auth-refresh-state.json.4242.18.tmp`, new Date(0), new Date(0))
      const store = yield* storeOn(home)
      expect((yield* fs.readDirectory(home)).filter((name) => name.endsWith(".tmp"))).toEqual([])
      yield* fs.writeFileString(`${home}/auth.json.4243.19.tmp`, JSON.stringify(chatgptJson(secret)))
      yield* store.remove
      expect((yield* fs.readDirectory(home)).filter((name) => name.startsWith("auth.json") && !name.endsWith(".lock")))
        .toEqual([])
    }).pipe(Effect.provide(platform)))

  it.live("an auth.json readable by others, or a folder writable by everyone, is reported at start with the fix", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson(secret)))
      yield* fs.chmod(`${home}/auth.json`, 0o644)
      yield* fs.chmod(home, 0o777)
      const logs = captured()
      yield* Effect.provide(storeOn(home), logs.layer)
      expect(logs.lines.join("\n")).toContain(`chmod 600 ${home}/auth.json`)
      expect(logs.lines.join("\n")).toContain(`chmod 700 ${home}`)
      const quiet = captured()
      yield* fs.chmod(`${home}/auth.json`, 0o600)
      yield* fs.chmod(home, 0o700)
      yield* Effect.provide(storeOn(home), quiet.layer)
      expect(quiet.lines).toEqual([])
    }).pipe(Effect.provide(platform)))
})

describe("AuthStore.layerMemory", () => {
  it.effect("parses its seed as the file would be, and refuses a bad one with a typed error", () =>
    Effect.gen(function*() {
      const good = yield* Effect.provide(AuthStore, AuthStore.layerMemory(chatgptJson(secret)))
      expect((yield* good.load).method).toBe("chatgpt")
      expect(good.location).toBe("memory:default")
      const bad = yield* Effect.provide(AuthStore, AuthStore.layerMemory("{ nope"))
      const error = yield* Effect.flip(bad.load)
      expect(error._tag).toBe("AuthStoreError")
      expect(error.message).toContain("not valid JSON")
    }))
})
