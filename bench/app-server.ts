/**
 * The example app server, measured as a client sees it:
 * - cold start: process spawn to the `initialize` answer;
 * - round trip: one `getAuthStatus` at a time over stdio, 10,000 times.
 * For the single-file bundle (dist/bin).
 * Run `npm run build` first; `npm run bench:app-server`.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const programs = {
  "bin (dist/bin/app-server.cjs)": join(root, "dist", "bin", "app-server.cjs")
}
const coldRuns = 15
const roundTrips = 10_000

const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const start = (program: string, home: string) => {
  const child = spawn(process.execPath, [program], {
    env: { PATH: process.env.PATH ?? "", HOME: home, CODEX_HOME: home },
    stdio: ["pipe", "pipe", "ignore"]
  })
  let buffer = ""
  let waiting: ((line: string) => void) | undefined
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk
    let newline: number
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + 1)
      waiting?.(line)
    }
  })
  const call = (message: object) =>
    new Promise<string>((resolve) => {
      waiting = resolve
      child.stdin.write(`${JSON.stringify(message)}\n`)
    })
  const stop = () =>
    new Promise<void>((resolve) => {
      child.on("exit", () => resolve())
      child.stdin.end()
    })
  return { call, stop }
}

const home = mkdtempSync(join(tmpdir(), "effect-auth-bench-"))
writeFileSync(join(home, "auth.json"), JSON.stringify({ OPENAI_API_KEY: "sk-bench" }))

const lines: Array<string> = []
for (const [name, program] of Object.entries(programs)) {
  const cold: Array<number> = []
  for (let i = 0; i < coldRuns; i++) {
    const began = performance.now()
    const server = start(program, home)
    await server.call({ id: 0, method: "initialize", params: { clientInfo: { name: "bench", version: "1" } } })
    cold.push(performance.now() - began)
    await server.stop()
  }
  cold.sort((a, b) => a - b)

  const server = start(program, home)
  await server.call({ id: 0, method: "initialize", params: {} })
  for (let i = 0; i < 1000; i++) await server.call({ id: i, method: "getAuthStatus", params: { includeToken: true } })
  const times: Array<number> = []
  for (let i = 0; i < roundTrips; i++) {
    const began = performance.now()
    await server.call({ id: i, method: "getAuthStatus", params: { includeToken: true, refreshToken: true } })
    times.push(performance.now() - began)
  }
  await server.stop()
  times.sort((a, b) => a - b)
  lines.push(
    `| ${name} | ${quantile(cold, 0.5).toFixed(0)} ms | ${quantile(times, 0.5).toFixed(3)} ms | ${
      quantile(times, 0.99).toFixed(3)
    } ms |`
  )
}
rmSync(home, { recursive: true, force: true })

console.log(
  `node ${process.version}, ${coldRuns} cold starts, ${roundTrips} sequential round trips (after 1,000 warm-up)\n`
)
console.log("| program | cold start to initialize (median) | getAuthStatus round trip (median) | p99 |")
console.log("|---|---|---|---|")
for (const line of lines) console.log(line)
