/**
 * End-to-end helpers: the real example processes, spoken to over stdio,
 * and a token endpoint on 127.0.0.1, all cleaned up by `cleanup()`.
 */
import { Effect, Exit, Scope } from "effect"
import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { record } from "./audit.js"
import { codeCacheHome, examplesDir, helpers, helpersDir, root } from "./programs.js"

const cleanups: Array<() => Promise<void> | void> = []

/** Runs every registered cleanup, newest first. Call it in `afterEach`. */
export const cleanup = async () => {
  while (cleanups.length > 0) await cleanups.pop()?.()
}

export const tempHome = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "effect-auth-e2e-"))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface Endpoint {
  readonly url: string
  readonly count: () => Promise<number>
  readonly requests: () => Promise<ReadonlyArray<TokenEndpoint.ReceivedRequest>>
  readonly setBehaviour: (behaviour: TokenEndpoint.Behaviour) => Promise<void>
  /** Resolves once the endpoint has received `count` requests (each counted as it arrives, before it is answered). */
  readonly received: (count: number, timeoutMs?: number) => Promise<void>
}

export const endpoint = async (
  behaviour: TokenEndpoint.Behaviour | Effect.Effect<TokenEndpoint.Behaviour>
): Promise<Endpoint> => {
  const scope = Effect.runSync(Scope.make())
  cleanups.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  let arrived = 0
  const listeners = new Set<() => void>()
  const counted = (answer: TokenEndpoint.Behaviour): TokenEndpoint.Behaviour => (request) =>
    Effect.suspend(() => {
      arrived++
      for (const listener of listeners) listener()
      return answer(request)
    })
  const server = await Effect.runPromise(
    Effect.flatMap(
      Effect.isEffect(behaviour) ? behaviour : Effect.succeed(behaviour),
      (answer) => TokenEndpoint.make(counted(answer))
    ).pipe(
      Scope.extend(scope)
    )
  )
  return {
    url: server.url,
    count: () => Effect.runPromise(server.count),
    requests: () => Effect.runPromise(server.requests),
    setBehaviour: (next) => Effect.runPromise(server.setBehaviour(counted(next))),
    received: (count, timeoutMs = 15_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (arrived < count) return
          clearTimeout(timer)
          listeners.delete(check)
          resolve()
        }
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(new Error(`the endpoint received ${arrived} requests, not ${count}, within ${timeoutMs} ms`))
        }, timeoutMs)
        listeners.add(check)
        check()
      })
  }
}

export interface Message {
  readonly id?: string | number | null
  readonly method?: string
  readonly params?: any
  readonly result?: any
  readonly error?: { readonly code: number; readonly message: string }
}

export interface RunningProcess {
  readonly child: ChildProcessWithoutNullStreams
  readonly messages: Array<Message>
  readonly stdout: () => string
  readonly stderr: () => string
  /** Writes raw text (a newline is not added). */
  readonly write: (text: string) => void
  readonly send: (message: object) => void
  /** Sends a request and waits for the response with its id. */
  readonly request: (method: string, params?: unknown, id?: string | number) => Promise<Message>
  readonly waitFor: (predicate: (message: Message) => boolean, timeoutMs?: number) => Promise<Message>
  /** Closes stdin and waits for the exit code. */
  readonly close: () => Promise<number | null>
  readonly exited: Promise<number | null>
}

let nextId = 1000

/**
 * Spawns a bundled example (`dist/bin/NAME.mjs`) or test helper program, built by the e2e global
 * setup (test/support/bundles.ts), with exactly the given environment (a variable given as undefined
 * is not set; EFFECT_AUTH_LOG_LEVEL is Debug unless given).
 */
export const spawnScript = (
  name: "app-server" | "effect-auth" | keyof typeof helpers,
  args: ReadonlyArray<string>,
  env: Record<string, string | undefined>
): RunningProcess => {
  const program = name in helpers ? join(helpersDir, `${name}.mjs`) : join(examplesDir, `${name}.mjs`)
  const child = spawn(process.execPath, [program, ...args], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      NODE_NO_WARNINGS: "1",
      EFFECT_AUTH_LOG_LEVEL: "Debug",
      XDG_CACHE_HOME: codeCacheHome,
      ...env
    },
    stdio: ["pipe", "pipe", "pipe"]
  })
  let out = ""
  let err = ""
  let buffered = ""
  const messages: Array<Message> = []
  const waiters: Array<() => void> = []
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk
    buffered += chunk
    let newline: number
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      try {
        messages.push(JSON.parse(line))
      } catch {
        messages.push({ method: "<not json>", params: line })
      }
    }
    for (const wake of waiters.splice(0)) wake()
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk))
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      record(`${name} stderr`, err)
      // stdout is protocol (tokens are answers there) for the app server, and printed on request by the CLI.
      if (name === "effect-auth" && !args.includes("--include-token")) record(`${name} ${args.join(" ")}`, out)
      resolve(code)
    })
  )
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL")
      await exited
    }
  })
  const waitFor = (predicate: (message: Message) => boolean, timeoutMs = 15_000) =>
    new Promise<Message>((resolve, reject) => {
      let seen = 0
      const timer = setTimeout(
        () => reject(new Error(`timed out; stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)}`)),
        timeoutMs
      )
      const check = () => {
        for (; seen < messages.length; seen++) {
          const message = messages[seen]!
          if (predicate(message)) {
            clearTimeout(timer)
            return resolve(message)
          }
        }
        waiters.push(check)
      }
      check()
    })
  const write = (text: string) => child.stdin.write(text)
  const send = (message: object) => write(`${JSON.stringify(message)}\n`)
  return {
    child,
    messages,
    stdout: () => out,
    stderr: () => err,
    write,
    send,
    request: (method, params, id = nextId++) => {
      send(params === undefined ? { id, method } : { id, method, params })
      return waitFor((m) => m.id === id && m.method === undefined)
    },
    waitFor,
    close: () => {
      child.stdin.end()
      return exited
    },
    exited
  }
}

export interface AppServerOptions {
  readonly codexHome: string
  readonly tokenUrl?: string
  readonly env?: Record<string, string>
}

/** Starts the example app server and initializes it. */
export const appServer = async (options: AppServerOptions): Promise<RunningProcess> => {
  const server = spawnScript("app-server", [], {
    HOME: options.codexHome,
    CODEX_HOME: options.codexHome,
    ...(options.tokenUrl === undefined ? {} : { CODEX_REFRESH_TOKEN_URL_OVERRIDE: options.tokenUrl }),
    ...options.env
  })
  const init = await server.request("initialize", { clientInfo: { name: "e2e", version: "1.0.0" } })
  if (init.error !== undefined) throw new Error(`initialize failed: ${init.error.message}`)
  server.send({ method: "initialized" })
  // `initialize` is answered while the server still builds its services (reads auth.json, creates
  // the database schema): a request about the account is answered once they are built.
  const account = await server.request("account/read", { refreshToken: false })
  if (account.error !== undefined) throw new Error(`account/read failed: ${account.error.message}`)
  return server
}

/**
 * A stuck Codex: util-linux `flock` holding `lock` (exclusive) while it runs `sleep 1000`. Resolves
 * once it holds the lock; `release` kills it with what it started (also done by `cleanup()`).
 */
export const holdFlock = (lock: string): Promise<{ readonly release: () => void }> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = spawn("flock", ["-o", lock, "-c", "echo held; sleep 1000"], {
      detached: true,
      stdio: ["ignore", "pipe", "inherit"]
    })
    const release = () => {
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {
        // already gone
      }
    }
    cleanups.push(release)
    child.once("error", reject)
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      if (chunk.includes("held")) resolve({ release })
    })
  })

/** Resolves once `server` wrote `text` on stderr after the first `from` characters (bounded). */
export const saysOnStderr = (server: RunningProcess, text: string, from: number, timeoutMs = 15_000) =>
  new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!server.stderr().slice(from).includes(text)) return
      clearTimeout(timer)
      server.child.stderr.off("data", check)
      resolve()
    }
    const timer = setTimeout(() => {
      server.child.stderr.off("data", check)
      reject(new Error(`the process never said "${text}"; stderr: ${server.stderr().slice(from).slice(-2000)}`))
    }, timeoutMs)
    // Registered after the process's own listener: the text is in stderr() when this one runs.
    server.child.stderr.on("data", check)
    check()
  })
