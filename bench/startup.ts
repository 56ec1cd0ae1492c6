/**
 * Start-up, measured as a shell or an editor sees it: process spawn to exit
 * (`effect-auth status`, `codex login status`) and process spawn to the
 * `initialize` answer (the app servers), against `node -e 0` always and the
 * native Codex binary when `CODEX_BIN` points to one, and Codex's npm launcher
 * (`node_modules/@openai/codex/bin/codex.js`, what `npm i -g @openai/codex` runs) when
 * `CODEX_LAUNCHER` points to it.
 *
 * The machine is shared: every round runs every program once, in a shuffled
 * order, so that load hits all of them alike; figures are medians over the
 * rounds, and each ratio is the median of the ratios within a round.
 * `npm run build && npm run bench:startup` (BENCH_STARTUP_ROUNDS, default 30).
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus, homedir, loadavg } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export interface Program {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  /** `exit`: spawn to exit (code 0 expected); `initialize`: spawn to the answer to `initialize`. */
  readonly until: "exit" | "initialize"
}

const initialize = `${
  JSON.stringify({ id: 0, method: "initialize", params: { clientInfo: { name: "bench", version: "1" } } })
}\n`

/** Runs `program` once; the milliseconds from spawn to its exit or its first answer. */
const runOnce = (program: Program, env: NodeJS.ProcessEnv) =>
  new Promise<number>((resolve, reject) => {
    const began = performance.now()
    const child = spawn(program.command, program.args, {
      cwd: root,
      env,
      stdio: [program.until === "initialize" ? "pipe" : "ignore", "pipe", "pipe"]
    })
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${program.name}: no answer in 20 s\n${stderr}`))
    }, 20_000)
    if (program.until === "exit") {
      child.stdout!.resume()
      child.on("exit", (code) => {
        const elapsed = performance.now() - began
        clearTimeout(timer)
        if (code === 0) resolve(elapsed)
        else reject(new Error(`${program.name} exited with ${code}\n${stderr}`))
      })
      return
    }
    let buffer = ""
    let answered = false
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buffer += chunk
      if (answered || !buffer.includes("\n")) return
      const elapsed = performance.now() - began
      answered = true
      const line = buffer.slice(0, buffer.indexOf("\n"))
      if (!line.includes(`"id":0`) || !line.includes(`"result"`)) {
        child.kill("SIGKILL")
        clearTimeout(timer)
        return reject(new Error(`${program.name}: unexpected answer ${line}\n${stderr}`))
      }
      // Stop it outside the measured time: end of input, and a kill if it lingers.
      const linger = setTimeout(() => child.kill("SIGKILL"), 5_000)
      child.on("exit", () => {
        clearTimeout(linger)
        clearTimeout(timer)
        resolve(elapsed)
      })
      child.stdin!.end()
    })
    child.stdin!.write(initialize)
  })

const shuffle = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  // A small LCG: the order differs per round and is the same for a given round number.
  let state = seed * 2654435761 % 4294967296
  const next = () => (state = (state * 1664525 + 1013904223) % 4294967296) / 4294967296
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

export interface Measured {
  readonly name: string
  readonly until: Program["until"]
  readonly medianMs: number
  readonly p90Ms: number
  /** Median of the within-round ratios to each reference program, by reference name. */
  readonly ratios: Readonly<Record<string, number>>
}

export interface StartupResult {
  readonly rounds: number
  readonly cores: number
  readonly loadBefore: ReadonlyArray<number>
  readonly loadAfter: ReadonlyArray<number>
  readonly programs: ReadonlyArray<Measured>
  /** In process: milliseconds to import the package entry, then to build `layerNode` (medians). */
  readonly library: { readonly importMs: number; readonly layerMs: number }
}

/** The programs of this package, as users reach them, and the references. */
export const programs = (codexBin: string | undefined, codexLauncher?: string | undefined): ReadonlyArray<Program> => {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> }
  const bin = (name: string) => join(root, pkg.bin[name]!)
  const node = process.execPath
  const list: Array<Program> = [
    { name: "node -e 0", command: node, args: ["-e", "0"], until: "exit" },
    { name: "effect-auth status (bin)", command: node, args: [bin("effect-auth"), "status"], until: "exit" },
    ...Object.keys(pkg.bin).filter((name) => name !== "effect-auth").map((name): Program => ({
      name: `${name} (bin)`,
      command: node,
      args: [bin(name)],
      until: "initialize"
    })),
    {
      name: "node -e 'import(\"effect-auth-manager/app-server/main\")'",
      command: node,
      args: ["--input-type=module", "-e", `import "effect-auth-manager/app-server/main"`],
      until: "initialize"
    },
    {
      name: "a user's own app server (imports effect-auth-manager)",
      command: node,
      args: [join(root, "bench", "user-app-server.mjs")],
      until: "initialize"
    }
  ]
  if (codexBin !== undefined) {
    list.push(
      { name: "codex login status (native)", command: codexBin, args: ["login", "status"], until: "exit" },
      { name: "codex app-server (native)", command: codexBin, args: ["app-server"], until: "initialize" }
    )
  }
  // What `npm install -g @openai/codex` puts on the PATH: a Node script that starts the binary.
  if (codexLauncher !== undefined) {
    list.push(
      {
        name: "codex login status (npm launcher)",
        command: node,
        args: [codexLauncher, "login", "status"],
        until: "exit"
      },
      {
        name: "codex app-server (npm launcher)",
        command: node,
        args: [codexLauncher, "app-server"],
        until: "initialize"
      }
    )
  }
  return list
}

/** The package entry imported and `layerNode` built, timed inside a fresh process. */
const libraryOnce = (env: NodeJS.ProcessEnv) =>
  new Promise<{ importMs: number; layerMs: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, "bench", "library-import.mjs")], {
      env,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
    child.on(
      "exit",
      (code) =>
        code === 0
          ? resolve(JSON.parse(out.trim().split("\n").at(-1)!))
          : reject(new Error(`library-import exited with ${code}`))
    )
  })

export const startup = async (
  options: { rounds?: number; codexBin?: string | undefined; codexLauncher?: string | undefined } = {}
): Promise<StartupResult> => {
  const rounds = options.rounds ?? 30
  const list = programs(options.codexBin, options.codexLauncher)
  // Not under /tmp: Codex declines some of its set-up in a temporary folder, and warns.
  const home = mkdtempSync(join(homedir(), ".effect-auth-bench-"))
  writeFileSync(join(home, "auth.json"), JSON.stringify({ OPENAI_API_KEY: "sk-bench" }), { mode: 0o600 })
  const env = { PATH: process.env.PATH ?? "", HOME: home, CODEX_HOME: home }
  try {
    const loadBefore = loadavg()
    // Warm-up: caches, and Codex's first-run set-up of its home.
    for (const program of list) await runOnce(program, env)
    const times = new Map(list.map((program) => [program.name, [] as Array<number>]))
    const ratios = new Map(list.map((program) => [program.name, new Map<string, Array<number>>()]))
    const references = list.filter((p) => p.name === "node -e 0" || p.name.startsWith("codex "))
    const library = { importMs: [] as Array<number>, layerMs: [] as Array<number> }
    for (let round = 0; round < rounds; round++) {
      const thisRound = new Map<string, number>()
      for (const program of shuffle(list, round + 1)) thisRound.set(program.name, await runOnce(program, env))
      const lib = await libraryOnce(env)
      library.importMs.push(lib.importMs)
      library.layerMs.push(lib.layerMs)
      for (const program of list) {
        const ms = thisRound.get(program.name)!
        times.get(program.name)!.push(ms)
        for (const reference of references) {
          // Compare like with like: exits with exits, answers with answers (node -e 0 with both).
          if (reference.name !== "node -e 0" && reference.until !== program.until) continue
          const byReference = ratios.get(program.name)!
          byReference.set(reference.name, [
            ...(byReference.get(reference.name) ?? []),
            ms / thisRound.get(reference.name)!
          ])
        }
      }
    }
    return {
      rounds,
      cores: cpus().length,
      loadBefore,
      loadAfter: loadavg(),
      programs: list.map((program) => {
        const sorted = [...times.get(program.name)!].sort((a, b) => a - b)
        return {
          name: program.name,
          until: program.until,
          medianMs: median(sorted),
          p90Ms: sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))]!,
          ratios: Object.fromEntries(
            [...ratios.get(program.name)!].map(([reference, values]) => [reference, median(values)])
          )
        }
      }),
      library: { importMs: median(library.importMs), layerMs: median(library.layerMs) }
    }
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
}

/** The result as Markdown. */
export const table = (result: StartupResult): string => {
  const hasCodex = result.programs.some((p) => p.name.endsWith("(native)"))
  const hasLauncher = result.programs.some((p) => p.name.endsWith("(npm launcher)"))
  const codexFor = (p: Measured, how: string) =>
    p.until === "exit" ? `codex login status (${how})` : `codex app-server (${how})`
  const columns = ["program", "until", "median", "p90", "vs `node -e 0`"]
  if (hasCodex) columns.push("vs native Codex (same task)")
  if (hasLauncher) columns.push("vs Codex's npm launcher (same task)")
  const header = `| ${columns.join(" | ")} |\n|${columns.map(() => "---|").join("")}`
  const rows = result.programs.map((p) => {
    const cells = [
      p.name,
      p.until === "exit" ? "exit" : "`initialize` answer",
      `${p.medianMs.toFixed(0)} ms`,
      `${p.p90Ms.toFixed(0)} ms`,
      `${p.ratios["node -e 0"]!.toFixed(2)}×`
    ]
    for (const [present, how] of [[hasCodex, "native"], [hasLauncher, "npm launcher"]] as const) {
      const ratio = p.ratios[codexFor(p, how)]
      if (present) cells.push(ratio === undefined ? "" : `${ratio.toFixed(2)}×`)
    }
    return `| ${cells.join(" | ")} |`
  })
  const load = (values: ReadonlyArray<number>) => values.map((v) => v.toFixed(2)).join(", ")
  return [
    `node ${process.version}, ${result.cores} cores, ${result.rounds} rounds (every program once per round, shuffled order),`,
    `medians; ratios are medians of within-round ratios. Load average before: ${load(result.loadBefore)}; after: ${
      load(result.loadAfter)
    }.`,
    "",
    header,
    ...rows,
    "",
    `The library in process (bench/library-import.mjs): \`import("effect-auth-manager")\` ${
      result.library.importMs.toFixed(0)
    } ms, then building \`layerNode\` ${result.library.layerMs.toFixed(0)} ms (medians).`
  ].join("\n")
}

if (process.argv[1] === import.meta.filename) {
  const result = await startup({
    rounds: Number(process.env.BENCH_STARTUP_ROUNDS ?? 30),
    codexBin: process.env.CODEX_BIN || undefined,
    codexLauncher: process.env.CODEX_LAUNCHER || undefined
  })
  console.log(table(result))
}
