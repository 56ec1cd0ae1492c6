import { FileSystem } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import { type Console, Deferred, Effect, Fiber, Layer, LogLevel } from "effect"
import { Option, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import * as Cli from "../src/cli/Cli.js"
import { Configuration, type Input as ConfigurationInput } from "../src/config/Configuration.js"
import { layerCliLogger } from "../src/node/StderrLogger.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import * as CodexIssuer from "../src/testing/CodexIssuer.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { captureCli } from "./support/cli.js"
import { apiKeyJson, chatgptJson, idToken, secrets } from "./support/fixtures.js"
import { callCount, dead, down, rotated, scripted } from "./support/manager.js"

/** Runs `effect-auth ARGS` in process over a memory store; returns what it printed and its exit code. */
const runCli = (
  args: ReadonlyArray<string>,
  options: {
    readonly json?: object
    readonly stdin?: string
    readonly terminal?: boolean
    readonly script?: Parameters<typeof scripted>[1]
    readonly configuration?: ConfigurationInput
    readonly onStderr?: (text: string) => Effect.Effect<void>
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
      Configuration.layer(options.configuration)
    )),
    Effect.map(({ code, stderr, stdout, value: [stored, requests] }) => ({ stdout, stderr, code, stored, requests }))
  )

describe("Cli, in process", () => {
  it.effect("status of nobody exits 1", () =>
    Effect.gen(function*() {
      const result = yield* runCli(["status"])
      expect(result).toMatchObject({
        code: 1,
        stdout: "Not signed in (no credentials in memory:default). Sign in with: effect-auth login"
      })
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
      // Said as what it is (a missing flag), not as a provider that could not be read.
      const noClient = yield* runCli(["login", "--issuer", "https://idp.example"])
      expect(noClient).toMatchObject({ code: 2, requests: 0 })
      expect(noClient.stderr).toBe(
        "--issuer needs the id of the client registered there: give --client-id ID (or set EFFECT_AUTH_CLIENT_ID)."
      )
    }))

  it.effect("refresh refused as a wrong client names the client id and secret", () =>
    Effect.gen(function*() {
      const refused = yield* runCli(["refresh"], { json: chatgptJson(), script: [dead("invalid_client")] })
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain("Check the configured client id and client secret")
    }))

  it.effect("refresh of nobody says where it looked and how to sign in; exit 1", () =>
    Effect.gen(function*() {
      expect(yield* runCli(["refresh"])).toMatchObject({
        code: 1,
        stdout: "Nothing to refresh. Not signed in (no credentials in memory:default). Sign in with: effect-auth login"
      })
    }))
})

describe("Cli: as a person uses it", () => {
  it.effect("--help lists every command with what it does; ANSI styling only on a terminal", () =>
    Effect.gen(function*() {
      const help = yield* runCli(["--help"])
      expect(help.code).toBe(0)
      for (
        const [command, description] of [
          ["status", "Show who is signed in"],
          // The default is a browser sign-in: the description says so first.
          ["login", "Sign in: in a browser on this computer \\(the default\\)"],
          ["logout", "Remove the stored credentials"],
          ["refresh", "Refresh the access token now"],
          ["watch", "Print each change"]
        ]
      ) {
        expect(help.stdout).toMatch(new RegExp(`^  ${command} +${description}`, "m"))
      }
      expect(help.stdout).toContain("with a code\n           entered on another device (--device)")
      expect(help.stdout).not.toContain("\u001b[")
      expect((yield* runCli(["--help"], { terminal: true })).stdout).toContain("\u001b[")
      // No command: the same page.
      expect((yield* runCli([])).stdout).toBe(help.stdout)
    }))

  it.effect("every help page fits in 80 columns, on a terminal too; a command's usage names the program", () =>
    Effect.gen(function*() {
      const pages = [
        [],
        ["--help"],
        ["-h"],
        ["status", "--help"],
        ["login", "--help"],
        ["login", "--device", "-h"],
        [
          "logout",
          "--help"
        ],
        ["refresh", "--help"],
        ["watch", "--help"]
      ]
      for (const args of pages) {
        for (const terminal of [false, true]) {
          const help = yield* runCli(args, { terminal })
          expect(help.code).toBe(0)
          const lines = help.stdout.replace(/\u001b\[[0-9;]*m/g, "").split("\n")
          expect(lines.length).toBeGreaterThan(10)
          const widest = Math.max(...lines.map((line) => line.length))
          expect(widest, `effect-auth ${args.join(" ")}`).toBeLessThanOrEqual(80)
        }
      }
      const login = (yield* runCli(["login", "--help"])).stdout
      expect(login).toMatch(/^\$ effect-auth login \[--device\]/m)
      expect(login).not.toMatch(/^\$ login/m)
      // A wrapped usage keeps each [--option value] whole.
      expect(login).toContain("\n    [--client-auth none | client_secret_post | client_secret_basic]\n")
      expect(login).toContain("in a browser on this computer (the default)")
      expect((yield* runCli(["status", "--help"])).stdout).toMatch(
        /^\$ effect-auth status \[--json\] \[--include-token\] \[--refresh\]$/m
      )
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
      yield* fs.writeFileString(
        file,
        JSON.stringify({ id_token: idToken, access_token: secrets.access, refresh_token: secrets.refresh })
      )
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
      expect(JSON.parse(json.stdout)).toMatchObject({
        authMethod: "chatgpt",
        email: "ada@example.com",
        planType: "plus",
        status: "healthy"
      })
    }))

  it.effect("the key or token is printed only with --include-token", () =>
    Effect.gen(function*() {
      const quiet = yield* runCli(["status", "--json"], { json: apiKeyJson() })
      expect(quiet.code).toBe(0)
      expect(quiet.stdout).not.toContain(secrets.apiKey)
      expect(
        JSON.parse((yield* runCli(["status", "--json", "--include-token"], { json: apiKeyJson() })).stdout).authToken
      ).toBe(secrets.apiKey)
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

  it.effect("logout removes the credentials; with none, it says there was nothing to sign out (still exit 0)", () =>
    Effect.gen(function*() {
      const logout = yield* runCli(["logout"], { json: chatgptJson() })
      expect(logout).toMatchObject({ code: 0, stdout: "Signed out." })
      expect(logout.stored.hash).toBe("absent")
      const again = yield* runCli(["logout"])
      expect(again).toMatchObject({ code: 0, stdout: "Not signed in; nothing to sign out." })
      expect(again.stored.hash).toBe("absent")
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

describe("Cli, in process: what a person reads while signing in", () => {
  it.live("login --device warns to enter the code only oneself and never a code someone else gave; then signs in", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make({ deviceInterval: 1 })
      const shown = yield* Deferred.make<string>()
      const fiber = yield* Effect.fork(runCli(["login", "--device"], {
        configuration: { signIn: { codexIssuer: issuer.issuer } },
        onStderr: (text) => text.includes("enter this code") ? Deferred.succeed(shown, text) : Effect.void
      }))
      const instructions = yield* Deferred.await(shown)
      expect(instructions).toContain(`${issuer.issuer}/codex/device`)
      expect(instructions).toContain("Enter this code only yourself, and share it with no one")
      expect(instructions).toContain("whoever enters it\nsigns this computer in with their account")
      expect(instructions).toContain("Never enter a code that someone\nelse gave you")
      expect(instructions).not.toContain("signs in as you")
      for (const line of instructions.split("\n")) expect(line.length).toBeLessThanOrEqual(80)
      const code = /enter this code:\s+(\S+)/.exec(instructions)![1]!
      expect(yield* issuer.approveDevice(code)).toBe(true)
      const result = yield* Fiber.join(fiber)
      expect(result.code).toBe(0)
      expect(result.stdout).toContain("Signed in with ChatGPT as ada@example.com")
    }).pipe(Effect.scoped))

  it.live("a client secret the provider refuses: what is wrong and what to do, not \"start it again\"; nothing saved", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const secretFile = `${yield* fs.makeTempDirectoryScoped()}/secret`
      yield* fs.writeFileString(secretFile, "not-the-secret\n")
      const provider = yield* TokenEndpoint.make(TokenEndpoint.oauthError(401, "invalid_client"))
      // One address for all: discovery (a GET) describes the provider, every POST is refused as a wrong client.
      const discovery = {
        issuer: provider.url,
        authorization_endpoint: provider.url,
        token_endpoint: provider.url,
        device_authorization_endpoint: provider.url
      }
      yield* provider.setBehaviour((request) =>
        request.contentType === ""
          ? Effect.succeed(HttpServerResponse.unsafeJson(discovery))
          : TokenEndpoint.oauthError(401, "invalid_client")(request)
      )
      const result = yield* runCli([
        "login",
        "--device",
        "--issuer",
        provider.url,
        "--client-id",
        "my-client",
        "--client-secret-file",
        secretFile
      ])
      expect(result.code).toBe(1)
      expect(result.stderr).toContain("the client id or client secret is wrong")
      expect(result.stderr).toContain("--client-secret-file")
      expect(result.stderr).toContain("HTTP 401 (invalid_client)")
      expect(result.stderr).not.toMatch(/start it again/i)
      expect(result.stderr).not.toContain("not-the-secret")
      expect(result.stored.hash).toBe("absent")
      // The secret was sent (HTTP basic), and refused.
      expect((yield* provider.requests).filter((request) => request.contentType !== "").length).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))
})

describe("effect-auth's logger", () => {
  /** What the logger of effect-auth writes to stderr for an Info and a Warning line, under `configuration`. */
  const logged = (configuration: ConfigurationInput) =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const base = yield* Effect.console
      const stderr: Console.Console = {
        ...base,
        unsafe: { ...base.unsafe, error: (...parts) => void lines.push(parts.join(" ")) }
      }
      yield* Effect.all([Effect.logInfo("an info line"), Effect.logWarning("a warning line")]).pipe(
        Effect.provide(Layer.provide(layerCliLogger, Configuration.layer(configuration))),
        Effect.withConsole(stderr)
      )
      return lines
    })

  // One run per test: run twice in one test, the second run also saw the logger of the first.
  it.effect("warnings and errors only by default: a person reads stderr between the instructions", () =>
    Effect.gen(function*() {
      const lines = yield* logged({})
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/level=WARN .*message="a warning line"/)
    }))

  it.effect("the configured level wins: Info", () =>
    Effect.gen(function*() {
      expect((yield* logged({ logLevel: LogLevel.Info })).map((line) => /level=(\w+)/.exec(line)![1])).toEqual([
        "INFO",
        "WARN"
      ])
    }))

  it.effect("the configured level wins: Error", () =>
    Effect.gen(function*() {
      expect(yield* logged({ logLevel: LogLevel.Error })).toEqual([])
    }))
})
