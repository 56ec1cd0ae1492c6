/**
 * The keyring store next to the file store: a read (`get`) and a compare-and-set (lock, re-read,
 * write) each, on a private D-Bus session with gnome-keyring unlocked (as the tests start it), and
 * `effect-auth status` from spawn to exit with the credentials in each (the bundled CLI; with
 * `CODEX_BIN`, `codex login status` too). Medians and 95th percentiles over the rounds; the machine
 * is shared, so the load average is printed with them.
 * `npm run build && npx tsx bench/keyring.ts` (BENCH_KEYRING_ROUNDS, default 200).
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Option } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import * as AuthDocument from "../src/document/AuthDocument.js"
import type { CredentialStoreShape } from "../src/stores/CredentialStore.js"
import * as FileStore from "../src/stores/FileStore.js"
import * as KeyringStore from "../src/stores/KeyringStore.js"
import * as KeyringSession from "../test/support/keyringSession.js"

const rounds = Number(process.env.BENCH_KEYRING_ROUNDS ?? 200)
const root = join(import.meta.dirname, "..")
const quantile = (values: ReadonlyArray<number>, q: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}
const ms = (values: ReadonlyArray<number>) =>
  `median ${quantile(values, 0.5).toFixed(2)} ms, p95 ${quantile(values, 0.95).toFixed(2)} ms`
const apiKeyDoc = (key: string) => Either.getOrThrow(AuthDocument.decode({ auth_mode: "apikey", OPENAI_API_KEY: key }))

const timeStore = (credentials: CredentialStoreShape) =>
  Effect.gen(function*() {
    yield* credentials.set("default", Option.some(apiKeyDoc("sk-bench-0")))
    const reads: Array<number> = []
    const writes: Array<number> = []
    for (let i = 0; i < rounds; i++) {
      let start = performance.now()
      const stored = yield* credentials.get("default")
      reads.push(performance.now() - start)
      start = performance.now()
      const result = yield* credentials.compareAndSet("default", stored, Option.some(apiKeyDoc(`sk-bench-${i + 1}`)))
      writes.push(performance.now() - start)
      if (result._tag !== "Written") throw new Error("unexpected conflict")
    }
    return { reads, writes }
  })

const spawnToExit = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  new Promise<number>((resolve, reject) => {
    const start = performance.now()
    const child = spawn(command, [...args], { env, stdio: "ignore" })
    child.once("error", reject)
    child.once(
      "exit",
      (code) => (code === 0 ? resolve(performance.now() - start) : reject(new Error(`${command} exited ${code}`)))
    )
  })

const main = async () => {
  const session = await KeyringSession.start()
  process.env.DBUS_SESSION_BUS_ADDRESS = session.address
  const homes = [0, 1].map(() => mkdtempSync(join(tmpdir(), "effect-auth-bench-keyring-")))
  try {
    console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(" ")}; ${rounds} rounds`)
    const figures = await Effect.runPromise(
      Effect.gen(function*() {
        const keyring = yield* KeyringStore.make({ codexHome: homes[0]! })
        const file = yield* FileStore.make({ codexHome: homes[1]! })
        return { keyring: yield* timeStore(keyring.credentials), file: yield* timeStore(file.credentials) }
      }).pipe(Effect.provide(NodeContext.layer))
    )
    console.log(`keyring get:              ${ms(figures.keyring.reads)}`)
    console.log(`keyring compare-and-set:  ${ms(figures.keyring.writes)}`)
    console.log(`file get:                 ${ms(figures.file.reads)}`)
    console.log(`file compare-and-set:     ${ms(figures.file.writes)}`)

    // The CLI: a status of each store, spawn to exit, alternating.
    writeFileSync(join(homes[0]!, "config.toml"), "cli_auth_credentials_store = \"keyring\"\n")
    const cli = join(root, "dist", "bin", "effect-auth.cjs")
    const env = (home: string) => ({ ...session.env, CODEX_HOME: home, XDG_CACHE_HOME: join(homes[1]!, "cache") })
    const codex = process.env.CODEX_BIN
    const spawns = { keyring: [] as Array<number>, file: [] as Array<number>, codex: [] as Array<number> }
    const spawnRounds = Math.min(rounds, 30)
    for (let i = 0; i < spawnRounds; i++) {
      spawns.keyring.push(await spawnToExit(process.execPath, [cli, "status"], env(homes[0]!)))
      spawns.file.push(await spawnToExit(process.execPath, [cli, "status"], env(homes[1]!)))
      if (codex !== undefined) spawns.codex.push(await spawnToExit(codex, ["login", "status"], env(homes[0]!)))
    }
    console.log(`effect-auth status, keyring: ${ms(spawns.keyring)} (${spawnRounds} runs)`)
    console.log(`effect-auth status, file:    ${ms(spawns.file)}`)
    if (codex !== undefined) console.log(`codex login status, keyring: ${ms(spawns.codex)}`)
    console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  } finally {
    await session.stop()
    for (const home of homes) rmSync(home, { recursive: true, force: true })
  }
}

void main()
