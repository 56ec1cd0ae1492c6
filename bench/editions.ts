/**
 * The Effect 3 and Effect 4 editions side by side, in one run, on one Node (22: the Effect 4 edition
 * needs it, and the Effect 3 edition runs there too):
 *
 * - the hot path: `getAuthStatus({ includeToken: true })` on a fresh credential, answered from memory,
 *   N calls in one effect, in this process; the two editions alternate within each round and the figures
 *   are medians over the rounds;
 * - a user's own server starting: a fresh process imports the edition, builds `layerNode` over a
 *   CODEX_HOME of its own and prints its first answer (spawn to that line), the editions alternating.
 *
 * Both editions are driven by the same code: their public names are the same. This file's own `effect`
 * is Effect 3, so each edition (and its `effect`) is loaded by path. The start-up rows need both
 * editions built (`npm run build`, `npm run build -w @effect-auth-manager/effect4`).
 * `npm run bench:editions` (BENCH_EDITIONS_ROUNDS, default 15).
 */
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { unsignedJwt } from "../test/scenarios/fixtures.js"

const root = join(import.meta.dirname, "..")
const rounds = Number(process.env.BENCH_EDITIONS_ROUNDS ?? 15)
const calls = 200_000

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const p90 = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.ceil(values.length * 0.9) - 1]!

// Each edition's modules, loaded by path and used through the names both editions share.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Module = Record<string, any>

interface Edition {
  readonly name: string
  /** The edition's `effect` and the modules that declare AuthManager, AuthStore, TokenRefresher, Configuration. */
  readonly load: () => Promise<{ effect: Module; lib: Module }>
  /** What a user's program imports the edition as, and where that name and `effect` resolve from. */
  readonly packageName: string
  readonly packageDir: string
  readonly effectDir: string
  /** The built entry point a user's program loads. */
  readonly built: string
}

const importPath = (path: string): Promise<Module> => import(pathToFileURL(path).href)

const editions: ReadonlyArray<Edition> = [
  {
    name: "Effect 3 edition (effect 3.22)",
    load: async () => ({
      effect: await importPath(join(root, "node_modules", "effect", "dist", "esm", "index.js")),
      lib: await importPath(join(root, "src", "index.ts"))
    }),
    packageName: "effect-auth-manager",
    packageDir: root,
    effectDir: join(root, "node_modules", "effect"),
    built: join(root, "dist", "src", "index.js")
  },
  {
    name: "Effect 4 edition (effect 4.1)",
    load: async () => ({
      effect: await importPath(join(root, "packages", "effect4", "node_modules", "effect", "dist", "index.js")),
      lib: await importPath(join(root, "packages", "effect4", "src", "index.ts"))
    }),
    packageName: "@effect-auth-manager/effect4",
    packageDir: join(root, "packages", "effect4"),
    effectDir: join(root, "packages", "effect4", "node_modules", "effect"),
    built: join(root, "packages", "effect4", "dist", "index.js")
  }
]

/** A ChatGPT credential refreshed just now, its access token valid for an hour: fresh, so no refresh. */
const freshCredential = () => {
  const now = Date.now()
  return {
    auth_mode: "chatgpt",
    tokens: {
      id_token: unsignedJwt({ email: "bench@example.com" }),
      access_token: unsignedJwt({ exp: Math.floor(now / 1000) + 3600 }),
      refresh_token: "bench-refresh",
      account_id: "acct_bench"
    },
    last_refresh: new Date(now).toISOString()
  }
}

/** The hot loop of one edition: a runtime holding a manager over a memory store, and a timed run. */
const hotPathOf = async (edition: Edition) => {
  const { effect, lib } = await edition.load()
  const { Effect, Layer, ManagedRuntime } = effect
  const { AuthManager, AuthStore, Configuration, PermanentRefreshError, TokenRefresher } = lib
  const runtime = ManagedRuntime.make(
    AuthManager.layer.pipe(
      Layer.provideMerge(Layer.merge(
        AuthStore.layerMemory(freshCredential()),
        TokenRefresher.layerTest([Effect.fail(new PermanentRefreshError({ reason: "reused" }))])
      )),
      Layer.provide(Configuration.layer())
    )
  )
  const loop = Effect.flatMap(AuthManager, (auth: Module) =>
    Effect.gen(function*() {
      for (let i = 0; i < calls; i++) yield* auth.getAuthStatus({ includeToken: true })
    }))
  const check = await runtime.runPromise(Effect.flatMap(AuthManager, (auth: Module) => auth.state))
  if (check.status !== "healthy" || check.method !== "chatgpt") throw new Error(`${edition.name}: ${check.status}`)
  return {
    perSecond: async () => {
      const began = performance.now()
      await runtime.runPromise(loop)
      return calls / ((performance.now() - began) / 1000)
    },
    dispose: () => runtime.dispose() as Promise<void>
  }
}

/** A user's own program: import the edition, build `layerNode`, print the first answer. */
const userProgram = (packageName: string) =>
  [
    `import { Effect } from "effect"`,
    `import { AuthManager, layerNode } from "${packageName}"`,
    `const status = await Effect.runPromise(`,
    `  Effect.provide(Effect.flatMap(AuthManager, (auth) => auth.getAuthStatus({ includeToken: true })), layerNode)`,
    `)`,
    `process.stdout.write(status.authMethod + "\\n")`
  ].join("\n")

/** A folder where `effect` and the edition's name resolve as in a user's app, with the program in it. */
const userApp = (work: string, edition: Edition, index: number) => {
  const app = join(work, `app-${index}`)
  const scope = edition.packageName.startsWith("@") ? edition.packageName.split("/")[0]! : undefined
  mkdirSync(join(app, "node_modules", ...(scope === undefined ? [] : [scope])), { recursive: true })
  symlinkSync(edition.effectDir, join(app, "node_modules", "effect"))
  symlinkSync(edition.packageDir, join(app, "node_modules", edition.packageName))
  writeFileSync(join(app, "package.json"), JSON.stringify({ type: "module" }))
  writeFileSync(join(app, "server.mjs"), userProgram(edition.packageName))
  return app
}

/** Spawn to the line `expected` on stdout (log lines before it are passed over). */
const firstAnswer = (cwd: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, expected: string) =>
  new Promise<number>((resolve, reject) => {
    const began = performance.now()
    const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`no answer in 30 s\n${stderr}`))
    }, 30_000)
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      if (!stdout.split("\n").includes(expected)) return
      clearTimeout(timer)
      resolve(performance.now() - began)
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      if (!stdout.split("\n").includes(expected)) {
        reject(new Error(`exited (${code}) without answering ${expected}\n${stdout}\n${stderr}`))
      }
    })
  })

const formatRate = (value: number) => Math.round(value).toLocaleString("en-US")
const formatMs = (value: number) => `${Math.round(value)} ms`

const main = async () => {
  const before = loadavg().map((n) => n.toFixed(2)).join(", ")
  const notes: Array<string> = []

  // The hot path, in this process.
  const loaded: Array<{ edition: Edition; run: Awaited<ReturnType<typeof hotPathOf>> }> = []
  for (const edition of editions) {
    try {
      loaded.push({ edition, run: await hotPathOf(edition) })
    } catch (error) {
      notes.push(`${edition.name}: no hot path (${String(error).split("\n")[0]})`)
    }
  }
  const rates = new Map<string, Array<number>>(loaded.map(({ edition }) => [edition.name, []]))
  for (let round = -3; round < rounds; round++) {
    // Three rounds of warm-up; then each round runs the editions in turn, the first alternating.
    const order = round % 2 === 0 ? loaded : [...loaded].reverse()
    for (const { edition, run } of order) {
      const rate = await run.perSecond()
      if (round >= 0) rates.get(edition.name)!.push(rate)
    }
  }
  await Promise.all(loaded.map(({ run }) => run.dispose()))

  // A user's own server starting, in fresh processes.
  const work = mkdtempSync(join(tmpdir(), "effect-auth-bench-editions-"))
  const home = join(work, "codex-home")
  mkdirSync(home)
  writeFileSync(join(home, "auth.json"), JSON.stringify({ OPENAI_API_KEY: "sk-bench" }), { mode: 0o600 })
  const env = { ...process.env, CODEX_HOME: home }
  const starting = editions.flatMap((edition, index) => {
    if (existsSync(edition.built)) return [{ edition, app: userApp(work, edition, index) }]
    notes.push(`${edition.name}: no start-up row (${edition.built} is not built)`)
    return []
  })
  const starts = new Map<string, Array<number>>([
    ["node -e 0", []],
    ...starting.map(({ edition }) => [edition.name, []] as [string, Array<number>])
  ])
  try {
    for (let round = -1; round < rounds; round++) {
      const baseline = await firstAnswer(work, ["-e", "console.log('ready')"], env, "ready")
      if (round >= 0) starts.get("node -e 0")!.push(baseline)
      const order = round % 2 === 0 ? starting : [...starting].reverse()
      for (const { app, edition } of order) {
        try {
          const elapsed = await firstAnswer(app, ["server.mjs"], env, "apikey")
          if (round >= 0) starts.get(edition.name)!.push(elapsed)
        } catch (error) {
          notes.push(`${edition.name}: start-up failed (${String(error).split("\n").slice(0, 3).join(" ")})`)
          starting.splice(starting.findIndex((s) => s.edition === edition), 1)
          starts.delete(edition.name)
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  const after = loadavg().map((n) => n.toFixed(2)).join(", ")

  const lines = [
    `node ${process.version}, ${cpus().length} cores, ${rounds} rounds; medians (p90 for start-up). ` +
    `Load average before: ${before}; after: ${after}.`,
    "",
    `| edition | getAuthStatus, fresh credential (calls/s) | a user's server: spawn to first answer | p90 |`,
    `|---|---|---|---|`,
    ...editions.map((edition) => {
      const rate = rates.get(edition.name)
      const start = starts.get(edition.name)
      return `| ${edition.name} | ${rate?.length ? formatRate(median(rate)) : "–"} | ${
        start?.length ? formatMs(median(start)) : "–"
      } | ${start?.length ? formatMs(p90(start)) : "–"} |`
    }),
    `| \`node -e 0\` (the floor) | | ${formatMs(median(starts.get("node -e 0")!))} | ${
      formatMs(p90(starts.get("node -e 0")!))
    } |`,
    ...(notes.length === 0 ? [] : ["", ...[...new Set(notes)].map((note) => `- ${note}`)])
  ]
  console.log(lines.join("\n"))
}

await main()
