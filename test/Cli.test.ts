import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as Cli from "../src/cli/Cli.js"
import { FileSystem } from "@effect/platform"
import { Option, Redacted } from "effect"
import { AuthStore } from "../src/stores/AuthStore.js"
import { callCount, dead, down, rotated, scripted } from "./support/manager.js"
import { captureCli } from "./support/cli.js"
import { apiKeyJson, chatgptJson, idToken, secrets } from "./support/fixtures.js"
import { Configuration } from "../src/config/Configuration.js"

/** Runs `effect-auth ARGS` in process over a memory store; returns what it printed and its exit code. */
const runCli = (
  args: ReadonlyArray<string>,
  options: {
    readonly json?: object
    readonly stdin?: string
    readonly terminal?: boolean
    readonly script?: Parameters<typeof scripted>[1]
  } = {}
) =>
  captureCli(
    Cli.run(["node", "effect-auth", ...args]).pipe(
      Effect.zipRight(Effect.flatMap(AuthStore, (store) => store.load)),
      Effect.zip(callCount)
    ),
    options
  ).pipe(
    Effect.provide(Layer.mergeAll(
      scripted(options.json, options.script ?? [rotated(secrets.newAccess, secrets.newRefresh)]),
      NodeContext.layer,
      NodeHttpClient.layerUndici,
      Configuration.layer()
    )),
    Effect.map(({ code, stderr, stdout, value: [stored, requests] }) => ({ stdout, stderr, code, stored, requests }))
  )

describe("Cli, in process", () => {
  it.effect("status of nobody exits 1", () =>
    Effect.gen(function*() {
      const result = yield* runCli(["status"])
      expect(result).toMatchObject({ code: 1, stdout: "Not signed in" })
    }))

  it.effect("login --api-key-stdin reads the key from the given input; status then exits 0", () =>
    Effect.gen(function*() {
      const result = yield* runCli(["login", "--api-key-stdin"], { stdin: `${secrets.apiKey}\n` })
      expect(result).toMatchObject({ code: 0, stdout: "Signed in with an API key" })
      expect(result.stdout).not.toContain(secrets.apiKey)
    }))

  it.effect("status --refresh exits 1 when the refresh it asked for failed (an expired token is not success)", () =>
    Effect.gen(function*() {
      const expired = chatgptJson({ expiresIn: -60_000 })
      expect((yield* runCli(["status", "--refresh"], { json: expired, script: [down()] })).code).toBe(1)
      expect((yield* runCli(["status", "--refresh"], { json: expired })).code).toBe(0)
    }))

  it.effect("bad usage exits 2", () =>
    Effect.gen(function*() {
      expect((yield* runCli(["login", "--port", "not-a-port"])).code).toBe(2)
      expect((yield* runCli(["login", "--api-key-stdin", "--tokens-file", "package.json"])).code).toBe(2)
    }))
})

describe("Cli: as a person uses it", () => {
  it.effect("--help lists every command with its description; ANSI styling only on a terminal", () =>
    Effect.gen(function*() {
      const help = yield* runCli(["--help"])
      expect(help.code).toBe(0)
      for (const [command, description] of [
        ["status", "Show who is signed in"],
        ["login", "Sign in with an API key"],
        ["logout", "Remove the stored credentials"],
        ["refresh", "Refresh the access token now"],
        ["watch", "Print each change"]
      ]) {
        expect(help.stdout).toMatch(new RegExp(`- ${command}\\b.*${description}`))
      }
      expect(help.stdout).not.toContain("\u001b[")
      expect((yield* runCli(["--help"], { terminal: true })).stdout).toContain("\u001b[")
    }))

  it.effect("status --json and watch --json share one vocabulary, with a logged-out state that says so", () =>
    Effect.gen(function*() {
      const nobody = yield* runCli(["status", "--json"])
      expect(nobody.code).toBe(1)
      expect(JSON.parse(nobody.stdout)).toEqual({
        status: "loggedOut",
        authMethod: null,
        email: null,
        planType: null,
        reason: null,
        retryAt: null,
        lastRefresh: null
      })
      const view = Cli.jsonView({
        hash: "h",
        method: "chatgpt",
        email: "a@b",
        planType: "plus",
        status: "cooling-down",
        reason: null,
        retryAt: 0,
        lastRefreshAt: 0
      })
      expect(Object.keys(view).sort()).toEqual(Object.keys(JSON.parse(nobody.stdout)).sort())
      expect(view.status).toBe("coolingDown")
    }))

  it.effect("status without --refresh is a read: an expired token makes no request; with --refresh it does", () =>
    Effect.gen(function*() {
      const expired = chatgptJson({ expiresIn: -60_000 })
      const read = yield* runCli(["status", "--json"], { json: expired })
      expect(read.requests).toBe(0)
      expect(JSON.parse(read.stdout)).toMatchObject({ status: "healthy", authMethod: "chatgpt" })
      expect(read.stderr).toBe("")
      const refreshed = yield* runCli(["status", "--json", "--refresh"], { json: expired })
      expect(refreshed.requests).toBe(1)
    }))

  it.effect("refresh inside the minimum interval says so, and exits 3; outside it, it refreshes", () =>
    Effect.gen(function*() {
      const recent = yield* runCli(["refresh"], { json: chatgptJson({ refreshedAgo: 3_000 }) })
      expect(recent.requests).toBe(0)
      expect(recent.code).toBe(Cli.exitNotRefreshed)
      expect(recent.stdout).toBe("Not refreshed: the token was refreshed 3s ago; the next refresh is allowed in 27s.")
      const due = yield* runCli(["refresh"], { json: chatgptJson() })
      expect(due).toMatchObject({ requests: 1, code: 0 })
      expect(due.stdout).toMatch(/^Refreshed\. Signed in with ChatGPT/)
    }))

  it.effect("login --tokens-file refuses an id_token that is not a JWT, writes nothing; account_id comes from the id_token", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const file = `${dir}/tokens.json`
      yield* fs.writeFileString(file, JSON.stringify({ id_token: "not-a-jwt", access_token: "a", refresh_token: "r" }))
      const bad = yield* runCli(["login", "--tokens-file", file])
      expect(bad.code).toBe(1)
      expect(bad.stderr).toContain("the id_token is not a JWT")
      expect(bad.stored.hash).toBe("absent")
      yield* fs.writeFileString(file, JSON.stringify({ id_token: idToken, access_token: "a", refresh_token: "r" }))
      const good = yield* runCli(["login", "--tokens-file", file])
      expect(good.code).toBe(0)
      const tokens = Option.getOrThrow(good.stored.document).tokens!
      expect(tokens.account_id).toBe("acct_123")
      expect(Redacted.value(tokens.refresh_token)).toBe("r")
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))
})

describe("Cli, in process: bounded reads of what the person points at", () => {
  it.effect("login --tokens-file refuses a file over 1 MiB and a named pipe without reading them; --api-key-stdin stops past 64 KiB", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped()
      const large = `${dir}/large.json`
      yield* fs.writeFileString(large, " ".repeat(1024 * 1024 + 1))
      const tooLarge = yield* runCli(["login", "--tokens-file", large])
      expect(tooLarge.code).toBe(1)
      expect(tooLarge.stderr).toContain("larger than")
      expect(tooLarge.stored.hash).toBe("absent")
      const pipe = `${dir}/pipe`
      execFileSync("mkfifo", [pipe])
      // Opening a FIFO for reading would wait for a writer for ever.
      const fifo = yield* runCli(["login", "--tokens-file", pipe])
      expect(fifo.code).not.toBe(0)
      expect(fifo.stored.hash).toBe("absent")
      const stdin = yield* runCli(["login", "--api-key-stdin"], { stdin: "k".repeat(64 * 1024 + 1) })
      expect(stdin.code).toBe(1)
      expect(stdin.stderr).toContain("larger than")
      expect(stdin.stored.hash).toBe("absent")
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))
})

// Moved from the end-to-end suite: the same checks, in process (test/e2e/Cli.test.ts keeps a few real runs of the bundled binary).
describe("Cli, in process: the commands", () => {
  it.effect("login --tokens-file accepts a tokens object or a whole auth.json; a file holding neither is refused", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const file = `${yield* fs.makeTempDirectoryScoped()}/tokens.json`
      yield* fs.writeFileString(file, JSON.stringify({ id_token: idToken, access_token: secrets.access, refresh_token: secrets.refresh }))
      const login = yield* runCli(["login", "--tokens-file", file])
      expect(login.code).toBe(0)
      expect(login.stdout).toContain("ada@example.com")
      expect(Redacted.value(Option.getOrThrow(login.stored.document).tokens!.refresh_token)).toBe(secrets.refresh)
      yield* fs.writeFileString(file, JSON.stringify(chatgptJson({ refreshToken: "other-refresh" })))
      const whole = yield* runCli(["login", "--tokens-file", file])
      expect(whole.code).toBe(0)
      expect(Redacted.value(Option.getOrThrow(whole.stored.document).tokens!.refresh_token)).toBe("other-refresh")
      yield* fs.writeFileString(file, "{}")
      const bad = yield* runCli(["login", "--tokens-file", file])
      expect(bad.code).toBe(1)
      expect(bad.stderr).toContain("does not hold id_token")
      expect(bad.stored.hash).toBe("absent")
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))

  it.effect("status of a ChatGPT sign-in: human and JSON", () =>
    Effect.gen(function*() {
      const human = yield* runCli(["status"], { json: chatgptJson() })
      expect(human.code).toBe(0)
      expect(human.stdout).toContain("ada@example.com")
      const json = yield* runCli(["status", "--json"], { json: chatgptJson() })
      expect(JSON.parse(json.stdout)).toMatchObject({ authMethod: "chatgpt", email: "ada@example.com", planType: "plus", status: "healthy" })
    }))

  it.effect("the key or token is printed only with --include-token", () =>
    Effect.gen(function*() {
      const quiet = yield* runCli(["status", "--json"], { json: apiKeyJson() })
      expect(quiet.code).toBe(0)
      expect(quiet.stdout).not.toContain(secrets.apiKey)
      expect(JSON.parse((yield* runCli(["status", "--json", "--include-token"], { json: apiKeyJson() })).stdout).authToken).toBe(secrets.apiKey)
      expect((yield* runCli(["status", "--include-token"], { json: apiKeyJson() })).stdout).toContain(secrets.apiKey)
    }))

  it.effect("a dead refresh token: status --refresh and refresh exit 1 and say to sign in again; no token printed", () =>
    Effect.gen(function*() {
      const json = chatgptJson()
      const status = yield* runCli(["status", "--json", "--refresh"], { json, script: [dead()] })
      expect(status.code).toBe(1)
      expect(JSON.parse(status.stdout)).toMatchObject({ authMethod: "chatgpt", status: "poisoned", reason: "reused" })
      const human = yield* runCli(["status", "--refresh"], { json, script: [dead()] })
      expect(human.code).toBe(1)
      expect(human.stdout).toContain("sign in again")
      const refresh = yield* runCli(["refresh"], { json, script: [dead()] })
      expect(refresh.code).toBe(1)
      expect(refresh.stderr).toContain("already used")
      for (const output of [status, human, refresh]) {
        for (const secret of Object.values(secrets)) expect(output.stdout + output.stderr).not.toContain(secret)
      }
    }))

  it.effect("logout removes the credentials", () =>
    Effect.gen(function*() {
      const logout = yield* runCli(["logout"], { json: chatgptJson() })
      expect(logout).toMatchObject({ code: 0, stdout: "Signed out." })
      expect(logout.stored.hash).toBe("absent")
    }))

  it.effect("an unknown command or option exits 2; --help exits 0 for every command", () =>
    Effect.gen(function*() {
      expect((yield* runCli(["frobnicate"])).code).toBe(2)
      expect((yield* runCli(["status", "--nope"])).code).toBe(2)
      for (const command of [[], ["status"], ["login"], ["logout"], ["refresh"], ["watch"]]) {
        const help = yield* runCli([...command, "--help"])
        expect(help.code).toBe(0)
        expect(help.stdout).toContain("USAGE")
      }
    }))
})
