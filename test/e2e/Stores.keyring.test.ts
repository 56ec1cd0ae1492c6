// The store contract (test/support/storeContract.ts) on the OS keyring, for real: a private D-Bus session
// with gnome-keyring unlocked on it (test/support/keyringSession.ts), and the item checked as Codex 0.169
// lays it out, through secret-tool.
import { NodeContext } from "@effect/platform-node"
import * as FileSystem from "@effect/platform/FileSystem"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import { createHash } from "node:crypto"
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as AuthDocument from "../../src/document/AuthDocument.js"
import * as Flock from "../../src/stores/internal/flock.js"
import * as KeyringStore from "../../src/stores/KeyringStore.js"
import { chatgptJson, secrets } from "../support/fixtures.js"
import * as KeyringSession from "../support/keyringSession.js"
import { cleanup, spawnScript } from "../support/processes.js"
import { storeContract } from "../support/storeContract.js"

let session: KeyringSession.Session
const homes: Array<string> = []
const previousBus = process.env.DBUS_SESSION_BUS_ADDRESS

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

const newHome = () => {
  const home = mkdtempSync(join(tmpdir(), "effect-auth-keyring-home-"))
  homes.push(home)
  return home
}
// Worked out here from Codex's rule, not with the library's code.
const accountOf = (home: string) => `cli|${createHash("sha256").update(realpathSync(home)).digest("hex").slice(0, 16)}`
const items = async (account: string) =>
  KeyringSession.parseItems(await session.secretTool(["search", "--all", "service", "Codex Auth", "username", account]))
// As another writer would put it: secret-tool, with the attributes keyring-rs 3.6.3 gives Codex's item.
const putItem = (account: string, text: string) =>
  session.secretTool(
    [
      "store",
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
    text
  )
const doc = (refreshToken: string) => Either.getOrThrow(AuthDocument.decode(chatgptJson({ refreshToken })))
// Racing writers take Codex's lock one after the other, each for a keyring read and write (tens of
// milliseconds, more on a busy machine): the wait is long enough for all of them.
const options = (codexHome: string) => ({
  codexHome,
  pollInterval: Duration.millis(100),
  commitLockWait: Duration.seconds(15)
})

storeContract({
  name: "OS keyring (Secret Service)",
  keys: ["default"],
  hearsOthers: true,
  layer: async () => {
    const codexHome = newHome()
    const layer = () => KeyringStore.layer(options(codexHome)).pipe(Layer.provide(NodeContext.layer))
    return {
      first: layer(),
      second: layer(),
      writeRaw: (_key, text) => putItem(accountOf(codexHome), text).then(() => undefined)
    }
  }
})

describe("the keyring item, as Codex 0.169 lays it out", () => {
  const setup = Effect.gen(function*() {
    const codexHome = newHome()
    const store = yield* KeyringStore.make(options(codexHome))
    return { codexHome, account: accountOf(codexHome), ...store }
  }).pipe(Effect.provide(NodeContext.layer))

  it.scopedLive("one item: Codex's label and attributes, the whole document as compact JSON", () =>
    Effect.gen(function*() {
      const { account, credentials } = yield* setup
      const written = yield* credentials.set("default", Option.some(doc("r1")))
      const found = yield* Effect.promise(() => items(account))
      expect(found).toHaveLength(1)
      expect(found[0]!.label).toBe(`${account}@Codex Auth:default (keyring v3.6.3)`)
      expect(found[0]!.attributes).toEqual({
        application: "rust-keyring",
        service: "Codex Auth",
        target: "default",
        username: account
      })
      expect(found[0]!.secret).toBe(AuthDocument.toText(doc("r1"), 0))
      expect(JSON.parse(found[0]!.secret).tokens.refresh_token).toBe("r1")
      expect(credentials.location("default")).toBe(`keyring:Codex Auth/${account}`)
      // A sign-out deletes it.
      yield* credentials.compareAndSet("default", written, Option.none())
      expect(yield* Effect.promise(() => items(account))).toHaveLength(0)
    }))

  it.scopedLive("an item another program wrote is read, and updated in place", () =>
    Effect.gen(function*() {
      const { account, credentials } = yield* setup
      yield* Effect.promise(() =>
        putItem(account, JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: "sk-from-elsewhere" }))
      )
      const read = yield* credentials.get("default")
      expect(read.snapshot.method).toBe("apikey")
      expect(Redacted.value(Option.getOrThrow(read.snapshot.document).OPENAI_API_KEY!)).toBe("sk-from-elsewhere")
      expect((yield* credentials.compareAndSet("default", read, Option.some(doc("r2"))))._tag).toBe("Written")
      const found = yield* Effect.promise(() => items(account))
      expect(found).toHaveLength(1)
      expect(JSON.parse(found[0]!.secret).tokens.refresh_token).toBe("r2")
    }))

  it.scopedLive("the v2 layout of newer Codex versions is read; a write replaces it with the single item", () =>
    Effect.gen(function*() {
      const { account, credentials } = yield* setup
      const revision = "1764633600000000000"
      const json = chatgptJson({ refreshToken: "r-v2" }) as { tokens: Record<string, string> }
      const fields: Record<string, string> = {
        manifest: JSON.stringify({
          auth_mode: "chatgpt",
          has_openai_api_key: false,
          has_tokens: true,
          has_account_id: true,
          last_refresh: "2026-12-01T00:00:00Z"
        }),
        "tokens.id_token": json.tokens.id_token!,
        "tokens.access_token": json.tokens.access_token!,
        "tokens.refresh_token": "r-v2",
        "tokens.account_id": "account-v2"
      }
      for (const [field, value] of Object.entries(fields)) {
        yield* Effect.promise(() =>
          session.secretTool([
            "store",
            "--label=v2",
            "service",
            "Codex Auth",
            "username",
            `${account}|v2|${revision}|${field}`
          ], value)
        )
      }
      yield* Effect.promise(() =>
        session.secretTool(
          ["store", "--label=v2", "service", "Codex Auth", "username", `${account}|v2|active`],
          revision
        )
      )
      // A stale single item too: the v2 record is what newer versions read first.
      yield* Effect.promise(() => putItem(account, JSON.stringify({ OPENAI_API_KEY: "sk-stale" })))
      const read = yield* credentials.get("default")
      const tokens = Option.getOrThrow(read.snapshot.document).tokens!
      expect(Redacted.value(tokens.refresh_token)).toBe("r-v2")
      expect(tokens.account_id).toBe("account-v2")
      expect(read.snapshot.method).toBe("chatgpt")

      expect((yield* credentials.compareAndSet("default", read, Option.some(doc("r3"))))._tag).toBe("Written")
      const all = KeyringSession.parseItems(
        yield* Effect.promise(() => session.secretTool(["search", "--all", "service", "Codex Auth"]))
      )
      expect(all.filter((item) => item.attributes.username!.startsWith(`${account}|v2|`))).toEqual([])
      const single = all.filter((item) => item.attributes.username === account)
      expect(single).toHaveLength(1)
      expect(JSON.parse(single[0]!.secret).tokens.refresh_token).toBe("r3")
    }))

  it.scopedLive("a compare-and-set waits for Codex's auth.json.lock, then gives up without writing", () =>
    Effect.gen(function*() {
      const codexHome = newHome()
      const account = accountOf(codexHome)
      const { credentials } = yield* KeyringStore.make({ ...options(codexHome), commitLockWait: Duration.seconds(1) })
      const fs = yield* FileSystem.FileSystem
      const current = yield* credentials.set("default", Option.some(doc("r1")))
      const error = yield* Flock.withLock(fs, join(codexHome, "auth.json.lock"), { waitAtMost: Duration.seconds(5) })(
        Effect.flip(credentials.compareAndSet("default", current, Option.some(doc("r2"))))
      )
      expect(error.operation).toBe("lock")
      expect(JSON.parse((yield* Effect.promise(() => items(account)))[0]!.secret).tokens.refresh_token).toBe("r1")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a write to the keyring removes a leftover auth.json, as Codex's does", () =>
    Effect.gen(function*() {
      const { codexHome, credentials } = yield* setup
      writeFileSync(join(codexHome, "auth.json"), JSON.stringify(chatgptJson({ refreshToken: "r-file" })), {
        mode: 0o600
      })
      // In keyring mode the file is not read.
      expect((yield* credentials.get("default")).snapshot.hash).toBe("absent")
      yield* credentials.set("default", Option.some(doc("r1")))
      expect(existsSync(join(codexHome, "auth.json"))).toBe(false)
    }))

  it.scopedLive("with the file fallback (Codex's auto), auth.json is read while the keyring holds nothing", () =>
    Effect.gen(function*() {
      const codexHome = newHome()
      writeFileSync(join(codexHome, "auth.json"), JSON.stringify(chatgptJson({ refreshToken: "r-file" })), {
        mode: 0o600
      })
      const { available, credentials } = yield* KeyringStore.make({ ...options(codexHome), fileFallback: true })
      expect(yield* available).toBe(true)
      const read = yield* credentials.get("default")
      expect(Redacted.value(Option.getOrThrow(read.snapshot.document).tokens!.refresh_token)).toBe("r-file")
      expect((yield* credentials.compareAndSet("default", read, Option.some(doc("r2"))))._tag).toBe("Written")
      expect(existsSync(join(codexHome, "auth.json"))).toBe(false)
      expect(JSON.parse((yield* Effect.promise(() => items(accountOf(codexHome))))[0]!.secret).tokens.refresh_token)
        .toBe("r2")
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("effect-auth, the bundled binary, with cli_auth_credentials_store = \"keyring\"", () => {
  afterEach(cleanup)
  const run = async (home: string, args: ReadonlyArray<string>, stdin?: string) => {
    const cli = spawnScript("effect-auth", args, { ...(session.env as Record<string, string>), CODEX_HOME: home })
    if (stdin !== undefined) cli.write(stdin)
    const code = await cli.close()
    return { code, stdout: cli.stdout(), stderr: cli.stderr() }
  }

  it("login writes Codex's item and no auth.json; status reads it; logout deletes it", async () => {
    const home = newHome()
    writeFileSync(join(home, "config.toml"), "model = \"o3\"\ncli_auth_credentials_store = \"keyring\"\n")
    const login = await run(home, ["login", "--api-key-stdin"], `${secrets.apiKey}\n`)
    expect(login).toMatchObject({ code: 0, stdout: "Signed in with an API key\n" })
    expect(existsSync(join(home, "auth.json"))).toBe(false)
    const found = await items(accountOf(home))
    expect(found.map((item) => [item.label, JSON.parse(item.secret)])).toEqual([
      [`${accountOf(home)}@Codex Auth:default (keyring v3.6.3)`, {
        auth_mode: "apikey",
        OPENAI_API_KEY: secrets.apiKey
      }]
    ])
    const status = await run(home, ["status", "--json"])
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ status: "healthy", authMethod: "apikey" })
    expect((await run(home, ["logout"])).code).toBe(0)
    expect(await items(accountOf(home))).toEqual([])
    expect(await run(home, ["status"])).toMatchObject({
      code: 1,
      stdout: "Not signed in (no credentials in the OS keyring). Sign in with: effect-auth login\n"
    })
  })

  it("without a Secret Service on the bus: keyring mode says so; auto keeps the credentials in auth.json", async () => {
    const bare = await KeyringSession.start({ keyring: false })
    try {
      const home = newHome()
      writeFileSync(join(home, "config.toml"), "cli_auth_credentials_store = \"keyring\"\n")
      const env = { ...(bare.env as Record<string, string>), CODEX_HOME: home }
      const keyring = spawnScript("effect-auth", ["login", "--api-key-stdin"], env)
      keyring.write(`${secrets.apiKey}\n`)
      expect(await keyring.close()).toBe(1)
      expect(keyring.stderr()).toContain("Secret Service")
      expect(keyring.stderr()).not.toContain(secrets.apiKey)
      const auto = spawnScript("effect-auth", ["login", "--api-key-stdin"], {
        ...env,
        EFFECT_AUTH_CREDENTIALS_STORE: "auto"
      })
      auto.write(`${secrets.apiKey}\n`)
      expect(await auto.close(), auto.stderr()).toBe(0)
      expect(existsSync(join(home, "auth.json"))).toBe(true)
    } finally {
      await bare.stop()
    }
  })
})

describe("the app server, with cli_auth_credentials_store = \"keyring\"", () => {
  afterEach(cleanup)

  it("answers from Codex's item, hears another program change it, and signs out of it", async () => {
    const home = newHome()
    writeFileSync(join(home, "config.toml"), "cli_auth_credentials_store = \"keyring\"\n")
    // Written as Codex writes it, before the server starts.
    await putItem(accountOf(home), JSON.stringify({ auth_mode: "apikey", OPENAI_API_KEY: secrets.apiKey }))
    const server = spawnScript("app-server", [], { ...(session.env as Record<string, string>), CODEX_HOME: home })
    await server.request("initialize", { clientInfo: { name: "tests", version: "1" } }, 0)
    expect((await server.request("getAuthStatus", {})).result).toMatchObject({ authMethod: "apikey" })
    // Another program (Codex) signs in with ChatGPT: the poll of the item notices it.
    await putItem(accountOf(home), JSON.stringify(chatgptJson({ refreshToken: "r-elsewhere" })))
    await server.waitFor((m) => m.method === "account/updated" && m.params.authMode === "chatgpt")
    expect((await server.request("account/logout", {})).error).toBeUndefined()
    expect(await items(accountOf(home))).toEqual([])
    expect(await server.close()).toBe(0)
  })
})
