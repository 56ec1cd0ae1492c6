// Where the programs keep the credentials: EFFECT_AUTH_CREDENTIALS_STORE, else Codex's
// cli_auth_credentials_store in $CODEX_HOME/config.toml, else auth.json.
import { NodeContext } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Option } from "effect"
import { createHash } from "node:crypto"
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type CredentialsStoreMode, resolve } from "../src/config/Configuration.js"
import { parseStoreMode } from "../src/stores/CodexConfig.js"
import * as StoreMode from "../src/stores/StoreMode.js"

const homes: Array<string> = []
afterAll(() => homes.forEach((home) => rmSync(home, { recursive: true, force: true })))
const homeWith = (config?: string) => {
  const home = mkdtempSync(join(tmpdir(), "effect-auth-store-mode-"))
  homes.push(home)
  if (config !== undefined) writeFileSync(join(home, "config.toml"), config)
  return home
}

describe("cli_auth_credentials_store in config.toml", () => {
  const cases: ReadonlyArray<readonly [string, Either.Either<Option.Option<string>, string>]> = [
    ["", Either.right(Option.none())],
    ["model = \"o3\"\n", Either.right(Option.none())],
    ["cli_auth_credentials_store = \"keyring\"\n", Either.right(Option.some("keyring"))],
    [
      "model = \"o3\"\ncli_auth_credentials_store='auto'   # as Codex documents it\r\n",
      Either.right(Option.some("auto"))
    ],
    ["\"cli_auth_credentials_store\" = \"ephemeral\"", Either.right(Option.some("ephemeral"))],
    // A key of a table is not the top-level setting.
    ["[profiles.work]\ncli_auth_credentials_store = \"keyring\"\n", Either.right(Option.none())],
    // Nor is text inside a multi-line string.
    ["instructions = \"\"\"\ncli_auth_credentials_store = \"keyring\"\n\"\"\"\n", Either.right(Option.none())],
    [
      "cli_auth_credentials_store = \"keychain\"\n",
      Either.left("cli_auth_credentials_store is \"keychain\"; it must be one of file, keyring, auto, ephemeral")
    ],
    [
      "cli_auth_credentials_store = true\n",
      Either.left("cli_auth_credentials_store must be a string, one of file, keyring, auto, ephemeral")
    ]
  ]
  for (const [text, expected] of cases) {
    it(`reads ${JSON.stringify(text)}`, () => {
      expect(parseStoreMode(text)).toEqual(expected)
    })
  }
})

describe("the programs' store", () => {
  const locationFor = (codexHome: string, credentialsStore?: CredentialsStoreMode) =>
    StoreMode.makeAuthStore(resolve(credentialsStore === undefined ? { codexHome } : { codexHome, credentialsStore }))
      .pipe(
        Effect.map((store) => store.location),
        Effect.provide(NodeContext.layer)
      )

  it.effect("is auth.json without a config.toml, or when it does not say", () =>
    Effect.gen(function*() {
      const bare = homeWith()
      expect(yield* locationFor(bare)).toBe(join(bare, "auth.json"))
      const silent = homeWith("model = \"o3\"\n")
      expect(yield* locationFor(silent)).toBe(join(silent, "auth.json"))
    }))

  it.effect("follows config.toml: the keyring item of this CODEX_HOME, or memory", () =>
    Effect.gen(function*() {
      const keyring = homeWith("cli_auth_credentials_store = \"keyring\"\n")
      const account = `cli|${createHash("sha256").update(realpathSync(keyring)).digest("hex").slice(0, 16)}`
      expect(yield* locationFor(keyring)).toBe(`keyring:Codex Auth/${account}`)
      expect(yield* locationFor(homeWith("cli_auth_credentials_store = \"ephemeral\"\n"))).toBe("memory:default")
    }))

  it.effect("EFFECT_AUTH_CREDENTIALS_STORE wins over config.toml", () =>
    Effect.gen(function*() {
      const home = homeWith("cli_auth_credentials_store = \"keyring\"\n")
      expect(yield* locationFor(home, "file")).toBe(join(home, "auth.json"))
    }))

  it.effect("a value Codex would refuse stops the program at start, naming the file and what is allowed", () =>
    Effect.gen(function*() {
      const home = homeWith("cli_auth_credentials_store = \"keychain\"\n")
      const exit = yield* Effect.exit(locationFor(home))
      expect(Exit.isFailure(exit)).toBe(true)
      const message = String(Exit.isFailure(exit) ? exit.cause : "")
      expect(message).toContain(join(home, "config.toml"))
      expect(message).toContain("file, keyring, auto, ephemeral")
    }))
})
