// The keyring store for real: a private D-Bus session with gnome-keyring unlocked on it, the item checked
// as Codex 0.169 lays it out (through secret-tool), Codex's lock against a real flock holder.
import * as Core from "@effect-auth-manager/core/lockPrimitive"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Queue, Redacted, Result, Stream } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { once } from "node:events"
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as AuthDocument from "../src/document/AuthDocument.js"
import * as LockPrimitive from "../src/stores/internal/lockPrimitive.js"
import * as KeyringStore from "../src/stores/KeyringStore.js"

// The repository's private Secret Service (test/support/keyringSession.ts, shared with the other
// edition's tests): loaded by URL, as it is outside this package's sources.
interface Session {
  readonly address: string
  readonly secretTool: (args: ReadonlyArray<string>, input?: string) => Promise<string>
  readonly stop: () => Promise<void>
}
interface Item {
  readonly label: string
  readonly secret: string
  readonly attributes: Readonly<Record<string, string>>
}
const KeyringSession =
  await (import(new URL("../../../test/support/keyringSession.ts", import.meta.url).href) as Promise<{
    readonly start: (options?: { readonly keyring?: boolean }) => Promise<Session>
    readonly parseItems: (output: string) => ReadonlyArray<Item>
  }>)

let session: Session
const homes: Array<string> = []
const previousBus = process.env.DBUS_SESSION_BUS_ADDRESS
const repositoryAddon = Core.find(Core.nodeHost())

// The binding reaches the Secret Service through the session bus in this process's environment.
beforeAll(async () => {
  session = await KeyringSession.start()
  process.env.DBUS_SESSION_BUS_ADDRESS = session.address
}, 30_000)
afterAll(async () => {
  if (previousBus === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS
  else process.env.DBUS_SESSION_BUS_ADDRESS = previousBus
  await session?.stop()
  homes.forEach((home) => rmSync(home, { recursive: true, force: true }))
})
beforeEach(() => LockPrimitive.setForTesting(repositoryAddon))
afterEach(() => LockPrimitive.setForTesting(undefined))

const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)
const newHome = () => {
  const home = mkdtempSync(join(tmpdir(), "effect4-keyring-home-"))
  homes.push(home)
  return home
}
// Worked out here from Codex's rule, not with the library's code.
const accountOf = (home: string) => `cli|${createHash("sha256").update(realpathSync(home)).digest("hex").slice(0, 16)}`
const items = (account: string) =>
  Effect.promise(async () =>
    KeyringSession.parseItems(
      await session.secretTool(["search", "--all", "service", "Codex Auth", "username", account])
    )
  )
const store = (args: ReadonlyArray<string>, secret: string) =>
  Effect.promise(() => session.secretTool(["store", ...args], secret))

const chatgptJson = (refreshToken: string) => ({
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: { id_token: "h.e30.s", access_token: "a.e30.s", refresh_token: refreshToken, account_id: "acct_1" },
  last_refresh: "2026-01-01T00:00:00.000Z"
})
const doc = (refreshToken: string) => Result.getOrThrow(AuthDocument.decode(chatgptJson(refreshToken)))
const options = (codexHome: string) => ({
  codexHome,
  pollInterval: Duration.millis(100),
  commitLockWait: Duration.seconds(5)
})
const setup = (extra: Partial<KeyringStore.Options> = {}) =>
  Effect.gen(function*() {
    const codexHome = newHome()
    const services = yield* KeyringStore.make({ ...options(codexHome), ...extra })
    return { codexHome, account: accountOf(codexHome), ...services }
  }).pipe(Effect.provide(platform))

describe("the keyring item, as Codex 0.169 lays it out", () => {
  it.live("one item: Codex's label and attributes, the whole document as compact JSON; a sign-out deletes it", () =>
    Effect.gen(function*() {
      const { account, credentials } = yield* setup()
      const written = yield* credentials.set("default", Option.some(doc("r1")))
      const found = yield* items(account)
      expect(found).toHaveLength(1)
      expect(found[0]!.label).toBe(`${account}@Codex Auth:default (keyring v3.6.3)`)
      expect(found[0]!.attributes).toEqual({
        application: "rust-keyring",
        service: "Codex Auth",
        target: "default",
        username: account
      })
      expect(found[0]!.secret).toBe(AuthDocument.toText(doc("r1"), 0))
      expect(credentials.location("default")).toBe(`keyring:Codex Auth/${account}`)
      expect((yield* credentials.compareAndSet("default", written, Option.none()))._tag).toBe("Written")
      expect(yield* items(account)).toHaveLength(0)
    }))

  it.live("the v2 layout of newer Codex versions is read first; a write replaces it with the single item", () =>
    Effect.gen(function*() {
      const { account, credentials } = yield* setup()
      const revision = "1764633600000000000"
      const fields: Record<string, string> = {
        manifest: JSON.stringify({
          auth_mode: "chatgpt",
          has_openai_api_key: false,
          has_tokens: true,
          has_account_id: true,
          last_refresh: "2026-12-01T00:00:00Z"
        }),
        "tokens.id_token": "h.e30.s",
        "tokens.access_token": "a.e30.s",
        "tokens.refresh_token": "r-v2",
        "tokens.account_id": "account-v2"
      }
      for (const [field, value] of Object.entries(fields)) {
        yield* store(["--label=v2", "service", "Codex Auth", "username", `${account}|v2|${revision}|${field}`], value)
      }
      yield* store(["--label=v2", "service", "Codex Auth", "username", `${account}|v2|active`], revision)
      // A stale single item too: the v2 record is what newer versions read first.
      yield* store(["--label=stale", "service", "Codex Auth", "username", account], "{\"OPENAI_API_KEY\":\"sk-stale\"}")
      const read = yield* credentials.get("default")
      const tokens = Option.getOrThrow(read.snapshot.document).tokens!
      expect(Redacted.value(tokens.refresh_token)).toBe("r-v2")
      expect(tokens.account_id).toBe("account-v2")
      expect((yield* credentials.compareAndSet("default", read, Option.some(doc("r3"))))._tag).toBe("Written")
      const all = KeyringSession.parseItems(
        yield* Effect.promise(() => session.secretTool(["search", "--all", "service", "Codex Auth"]))
      )
      expect(all.filter((item) => item.attributes.username!.startsWith(`${account}|v2|`))).toEqual([])
      const single = all.filter((item) => item.attributes.username === account)
      expect(single.map((item) => JSON.parse(item.secret).tokens.refresh_token)).toEqual(["r3"])
    }))

  it.live("a compare-and-set waits for Codex's auth.json.lock (a real flock holder), then gives up without writing", () =>
    Effect.gen(function*() {
      const { account, codexHome, credentials } = yield* setup({ commitLockWait: Duration.millis(300) })
      const current = yield* credentials.set("default", Option.some(doc("r1")))
      const holder = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const child = spawn("flock", [
            "-x",
            join(codexHome, "auth.json.lock"),
            "-c",
            "echo held; exec cat >/dev/null"
          ], {
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
      const error = yield* Effect.flip(credentials.compareAndSet("default", current, Option.some(doc("r2"))))
      expect(error.operation).toBe("lock")
      expect(JSON.parse((yield* items(account))[0]!.secret).tokens.refresh_token).toBe("r1")
      expect(holder.exitCode).toBe(null)
    }))

  it.live("a write to the keyring removes a leftover auth.json, as Codex's does; the file is not read", () =>
    Effect.gen(function*() {
      const { codexHome, credentials } = yield* setup()
      writeFileSync(join(codexHome, "auth.json"), JSON.stringify(chatgptJson("r-file")), { mode: 0o600 })
      expect((yield* credentials.get("default")).snapshot.hash).toBe("absent")
      yield* credentials.set("default", Option.some(doc("r1")))
      expect(existsSync(join(codexHome, "auth.json"))).toBe(false)
    }))

  it.live("with the file fallback (Codex's auto), auth.json is read while the keyring holds nothing", () =>
    Effect.gen(function*() {
      const { account, available, codexHome, credentials } = yield* setup({ fileFallback: true })
      writeFileSync(join(codexHome, "auth.json"), JSON.stringify(chatgptJson("r-file")), { mode: 0o600 })
      expect(yield* available).toBe(true)
      const read = yield* credentials.get("default")
      expect(Redacted.value(Option.getOrThrow(read.snapshot.document).tokens!.refresh_token)).toBe("r-file")
      expect((yield* credentials.compareAndSet("default", read, Option.some(doc("r2"))))._tag).toBe("Written")
      expect(existsSync(join(codexHome, "auth.json"))).toBe(false)
      expect(JSON.parse((yield* items(account))[0]!.secret).tokens.refresh_token).toBe("r2")
    }))

  it.live("another program's write is heard through the poll of the item", () =>
    Effect.gen(function*() {
      const { account, credentials } = yield* setup()
      const heard = yield* Queue.unbounded<void>()
      yield* credentials.changes("default").pipe(
        Stream.runForEach((change) => Queue.offer(heard, change)),
        Effect.forkScoped
      )
      // The poll's first look, then the change.
      yield* Queue.take(heard)
      yield* store(
        [
          `--label=${account}@Codex Auth:default (keyring v3.6.3)`,
          "application",
          "rust-keyring",
          "service",
          "Codex Auth",
          "target",
          "default",
          "username",
          account
        ],
        JSON.stringify(chatgptJson("r-codex"))
      )
      yield* Queue.take(heard)
      expect(
        Redacted.value(Option.getOrThrow((yield* credentials.get("default")).snapshot.document).tokens!.refresh_token)
      )
        .toBe("r-codex")
    }).pipe(Effect.timeout("20 seconds")))
})
