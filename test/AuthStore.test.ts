import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, Option, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { Configuration } from "../src/config/Configuration.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { PermanentRefreshError } from "../src/errors/Errors.js"
import { make as makeManager } from "../src/manager/AuthManager.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { chatgptJson, secrets } from "./support/fixtures.js"
import { decode } from "./support/manager.js"

/** A fresh CODEX_HOME (not yet created) in a temporary folder, and the store on it. */
const withStore = <A, E>(
  body: (home: string, store: AuthStore["Type"]) => Effect.Effect<A, E, FileSystem.FileSystem>
) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const home = `${yield* fs.makeTempDirectoryScoped()}/codex-home`
    const store = yield* Effect.provide(
      AuthStore,
      AuthStore.layerFile.pipe(
        Layer.provide(Configuration.layerConfig),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["CODEX_HOME", home]]))))
      )
    )
    return yield* body(home, store)
  }).pipe(Effect.provide(NodeContext.layer))

describe("AuthStore.layerFile", () => {
  it.scoped("reads a missing file as logged out", () =>
    withStore((_, store) =>
      Effect.gen(function*() {
        expect((yield* store.load).hash).toBe("absent")
      })
    ))

  it.scoped("writes atomically: a 0600 file in a 0700 folder, no temporary file left, content round-trips", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const saved = yield* store.save(decode(chatgptJson({ extra: { unknown_field: [1, "two"] } })))
        expect((yield* fs.stat(`${home}/auth.json`)).mode & 0o777).toBe(0o600)
        expect((yield* fs.stat(home)).mode & 0o777).toBe(0o700)
        expect((yield* fs.readDirectory(home)).filter((name) => !name.endsWith(".lock"))).toEqual(["auth.json"])
        const loaded = yield* store.load
        expect(loaded.hash).toBe(saved.hash)
        expect(JSON.parse(yield* fs.readFileString(`${home}/auth.json`)).unknown_field).toEqual([1, "two"])
      })
    ))

  const badFiles: ReadonlyArray<[string, string, string]> = [
    ["not valid JSON", `{"tokens": {"refresh_token": "${secrets.refresh}"`, "not valid JSON"],
    ["a field of the wrong type", JSON.stringify({ ...chatgptJson(), last_refresh: 12 }), `"last_refresh"`]
  ]
  for (const [kind, content, said] of badFiles) {
    it.scoped(`reports ${kind} as AuthStoreError naming the file, never quoting it, and leaves it byte-for-byte unchanged`, () =>
      withStore((home, store) =>
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          yield* fs.makeDirectory(home)
          yield* fs.writeFileString(`${home}/auth.json`, content)
          const error = yield* Effect.flip(store.load)
          expect(error._tag).toBe("AuthStoreError")
          expect(error.message).toContain(`${home}/auth.json`)
          expect(error.message).toContain(said)
          expect(error.message).not.toContain(secrets.refresh)
          expect(yield* fs.readFileString(`${home}/auth.json`)).toBe(content)
        })
      ))
  }

  it.scoped("keeps an unreadable file aside, untouched, when a sign-in writes over it", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* fs.makeDirectory(home)
        yield* fs.writeFileString(`${home}/auth.json`, "not json")
        yield* store.save(AuthDocument.withApiKey(Option.none(), Redacted.make(secrets.apiKey)))
        const files = yield* fs.readDirectory(home)
        const kept = files.find((name) => name.startsWith("auth.json.unreadable-"))
        expect(kept).toBeDefined()
        expect(yield* fs.readFileString(`${home}/${kept}`)).toBe("not json")
        expect((yield* store.load).method).toBe("apikey")
      })
    ))

  it.scoped("removes the file, and removing nothing succeeds", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* store.save(decode(chatgptJson()))
        yield* store.remove
        expect(yield* fs.exists(`${home}/auth.json`)).toBe(false)
        yield* store.remove
      })
    ))
})

describe("AuthStore.layerFile: bounded reads", () => {
  it.scoped("a FIFO, /dev/zero behind a symlink, a folder and a huge file are refused with a clear error, at once", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* fs.makeDirectory(home, { recursive: true })
        const cases: ReadonlyArray<[string, Effect.Effect<void, unknown>]> = [
          ["a named pipe (FIFO)", Effect.sync(() => execFileSync("mkfifo", [`${home}/auth.json`]))],
          ["a character device", fs.symlink("/dev/zero", `${home}/auth.json`)],
          ["a folder", fs.makeDirectory(`${home}/auth.json`)],
          [
            "larger than 1048576 bytes",
            fs.writeFileString(`${home}/auth.json`, `{"pad": "${"x".repeat(2 * 1024 * 1024)}"}`)
          ]
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

describe("AuthStore.layerMemory", () => {
  it.effect("parses its seed as the file would be", () =>
    Effect.gen(function*() {
      const store = yield* AuthStore
      expect((yield* store.load).method).toBe("chatgpt")
      yield* store.remove
      expect((yield* store.load).hash).toBe("absent")
    }).pipe(Effect.provide(AuthStore.layerMemory(chatgptJson()))))

  it.effect("reports a bad seed as AuthStoreError", () =>
    Effect.gen(function*() {
      const store = yield* AuthStore
      const error = yield* Effect.flip(store.load)
      expect(error.path).toBe("memory:default")
    }).pipe(Effect.provide(AuthStore.layerMemory("{"))))
})

describe("AuthStore.layerFile: shared state", () => {
  it.scoped("shares refresh state without secrets; a corrupt sidecar is ignored", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        yield* store.save(decode(chatgptJson()))
        expect(yield* store.loadShared).toEqual(Option.none())
        const shared = { hash: "h", state: "poisoned", reason: "reused", status: 401, at: 1 } as const
        yield* store.saveShared(Option.some(shared))
        expect(yield* store.loadShared).toEqual(Option.some(shared))
        const text = yield* fs.readFileString(`${home}/auth-refresh-state.json`)
        expect(text).not.toContain(secrets.refresh)
        expect((yield* fs.stat(`${home}/auth-refresh-state.json`)).mode & 0o777).toBe(0o600)
        yield* fs.writeFileString(`${home}/auth-refresh-state.json`, "{corrupt")
        expect(yield* store.loadShared).toEqual(Option.none())
        yield* store.saveShared(Option.none())
        expect(yield* fs.exists(`${home}/auth-refresh-state.json`)).toBe(false)
      })
    ))
})

describe("permissions after every write path", () => {
  it.scopedLive("auth.json, the sidecar and the locks are 0600 in a 0700 folder, whichever path wrote them", () =>
    withStore((home, store) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const modes = Effect.gen(function*() {
          const files = (yield* fs.readDirectory(home)).filter((name) => !name.endsWith(".tmp"))
          const result: Record<string, number> = { ".": (yield* fs.stat(home)).mode & 0o777 }
          for (const name of files) result[name] = (yield* fs.stat(`${home}/${name}`)).mode & 0o777
          return result
        })
        const manager = yield* makeManager().pipe(
          Effect.provideService(AuthStore, store),
          Effect.provide(TokenRefresher.layerTest([
            Effect.succeed({ accessToken: Redacted.make("a2"), refreshToken: Redacted.make("r2") }),
            Effect.fail(new PermanentRefreshError({ reason: "reused" }))
          ]))
        )
        const expectPrivate = (files: Record<string, number>) =>
          Object.entries(files).forEach(([name, mode]) =>
            expect([name, mode]).toEqual([name, name === "." ? 0o700 : 0o600])
          )

        yield* manager.loginWithApiKey(Redacted.make(secrets.apiKey))
        expectPrivate(yield* modes)
        yield* manager.loginWithTokens({
          idToken: Redacted.make("i"),
          accessToken: Redacted.make("a"),
          refreshToken: Redacted.make("r")
        })
        expectPrivate(yield* modes)
        // Past the minimum interval: a refresh rewrites auth.json, then a dead token writes the sidecar.
        yield* store.save({ ...Option.getOrThrow((yield* store.load).document), last_refresh: "2020-01-01T00:00:00Z" })
        yield* manager.reload
        yield* manager.refresh
        yield* store.save({ ...Option.getOrThrow((yield* store.load).document), last_refresh: "2020-01-01T00:00:00Z" })
        yield* manager.reload
        yield* Effect.ignore(manager.refresh)
        const files = yield* modes
        expect(Object.keys(files).sort()).toEqual([
          ".",
          "auth-refresh-state.json",
          "auth.json",
          "auth.json.lock",
          "auth.json.refresh.lock"
        ])
        expectPrivate(files)
      }).pipe(Effect.scoped)
    ))
})

describe("AuthStore.layerFile: housekeeping and what it says", () => {
  const captured = () => {
    const lines: Array<string> = []
    return {
      lines,
      layer: Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => lines.push(String(message))))
    }
  }
  const storeOn = (home: string) =>
    Effect.provide(AuthStore, Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })))

  it.scoped("temporary files a killed writer left (they may hold a refresh token) are removed at start and at sign-out", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson()))
      yield* fs.writeFileString(`${home}/auth.json.4242.17.tmp`, JSON.stringify(chatgptJson()))
      yield* fs.writeFileString(`${home}/auth-refresh-state.json.4242.18.tmp`, "{}")
      yield* fs.utimes(`${home}/auth-refresh-state.json.4242.18.tmp`, new Date(0), new Date(0))
      const store = yield* storeOn(home)
      expect((yield* fs.readDirectory(home)).filter((name) => name.endsWith(".tmp"))).toEqual([])
      yield* fs.writeFileString(`${home}/auth.json.4243.19.tmp`, JSON.stringify(chatgptJson()))
      yield* store.remove
      expect((yield* fs.readDirectory(home)).filter((name) => name.startsWith("auth.json") && !name.endsWith(".lock")))
        .toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("an auth.json readable by others, or a folder writable by everyone, is reported at start with the fix", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson()))
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
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a symlinked auth.json (dotfile managers) is written through the link, atomically in the target's folder", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const root = yield* fs.makeTempDirectoryScoped()
      yield* fs.makeDirectory(`${root}/dotfiles`)
      yield* fs.makeDirectory(`${root}/home`, { mode: 0o700 })
      yield* fs.writeFileString(`${root}/dotfiles/codex-auth.json`, JSON.stringify(chatgptJson()))
      yield* fs.symlink("../dotfiles/codex-auth.json", `${root}/home/auth.json`)
      const store = yield* storeOn(`${root}/home`)
      const saved = yield* store.save(AuthDocument.withApiKey(Option.none(), Redacted.make(secrets.apiKey)))
      expect(yield* fs.readLink(`${root}/home/auth.json`)).toBe("../dotfiles/codex-auth.json")
      expect(JSON.parse(yield* fs.readFileString(`${root}/dotfiles/codex-auth.json`)).OPENAI_API_KEY).toBe(
        secrets.apiKey
      )
      expect((yield* fs.stat(`${root}/dotfiles/codex-auth.json`)).mode & 0o777).toBe(0o600)
      expect(yield* fs.readDirectory(`${root}/dotfiles`)).toEqual(["codex-auth.json"])
      expect((yield* store.load).hash).toBe(saved.hash)
    }).pipe(Effect.provide(NodeContext.layer)))
})
