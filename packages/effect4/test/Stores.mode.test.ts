// Where the programs keep the credentials: EFFECT_AUTH_CREDENTIALS_STORE, else Codex's
// cli_auth_credentials_store in $CODEX_HOME/config.toml (read by the core), else auth.json.
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type CredentialsStoreMode, resolve } from "../src/config/Configuration.js"
import * as StoreMode from "../src/stores/StoreMode.js"

const homes: Array<string> = []
afterAll(() => homes.forEach((home) => rmSync(home, { recursive: true, force: true })))
const homeWith = (config?: string) => {
  const home = mkdtempSync(join(tmpdir(), "effect4-store-mode-"))
  homes.push(home)
  if (config !== undefined) writeFileSync(join(home, "config.toml"), config)
  return home
}

describe("the programs' store", () => {
  const locationFor = (codexHome: string, credentialsStore?: CredentialsStoreMode) =>
    StoreMode.makeAuthStore(resolve(credentialsStore === undefined ? { codexHome } : { codexHome, credentialsStore }))
      .pipe(
        Effect.map((store) => store.location),
        Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))
      )

  it.live("is auth.json without a config.toml, or when it does not say", () =>
    Effect.gen(function*() {
      const bare = homeWith()
      expect(yield* locationFor(bare)).toBe(join(bare, "auth.json"))
      const silent = homeWith("model = \"o3\"\n[profiles.work]\ncli_auth_credentials_store = \"keyring\"\n")
      expect(yield* locationFor(silent)).toBe(join(silent, "auth.json"))
    }))

  it.live("follows config.toml: the keyring item of this CODEX_HOME, or memory", () =>
    Effect.gen(function*() {
      const keyring = homeWith("cli_auth_credentials_store = \"keyring\"\n")
      // Worked out here from Codex's rule, not with the library's code.
      const account = `cli|${createHash("sha256").update(realpathSync(keyring)).digest("hex").slice(0, 16)}`
      expect(yield* locationFor(keyring)).toBe(`keyring:Codex Auth/${account}`)
      expect(yield* locationFor(homeWith("cli_auth_credentials_store = 'ephemeral'\n"))).toBe("memory:default")
    }))

  it.live("EFFECT_AUTH_CREDENTIALS_STORE wins over config.toml", () =>
    Effect.gen(function*() {
      const home = homeWith("cli_auth_credentials_store = \"keyring\"\n")
      expect(yield* locationFor(home, "file")).toBe(join(home, "auth.json"))
    }))

  it.live("a value Codex would refuse stops the program at start, naming the file and what is allowed", () =>
    Effect.gen(function*() {
      const home = homeWith("cli_auth_credentials_store = \"keychain\"\n")
      const exit = yield* Effect.exit(locationFor(home))
      if (!Exit.isFailure(exit)) return expect.fail("expected a refusal")
      const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
      expect(error?._tag).toBe("ConfigError")
      expect(error?.message).toContain(join(home, "config.toml"))
      expect(error?.message).toContain("file, keyring, auto, ephemeral")
    }))

  it.live("a config.toml that is not a regular file is refused at start, not read", () =>
    Effect.gen(function*() {
      const home = homeWith()
      execFileSync("mkfifo", [join(home, "config.toml")])
      const exit = yield* Effect.exit(locationFor(home))
      if (!Exit.isFailure(exit)) return expect.fail("expected a refusal")
      expect(String(exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error.message)).toContain(
        "a named pipe (FIFO)"
      )
    }))
})
