// `npm test`: both editions' suites at once — the Effect 3 edition's on the Node that runs npm, the Effect 4
// edition's under Node 22 (scripts/node22.mjs) — then one closing line for both. The Effect 3 suite's
// end-to-end tests mostly wait on the processes they start, so the two runs share the machine well; the
// Effect 4 run's output is held and printed after the Effect 3 run's, so each reads as one block.
// Arguments (a file filter, say) go to both runs.
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { env, node } from "./nodeEnv.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const results = mkdtempSync(join(tmpdir(), "effect-auth-tests-"))
const reporters = (name) => ["--reporter=default", "--reporter=json", `--outputFile=${join(results, name)}`]
const vitest = (folder) => join(root, folder, "node_modules", "vitest", "vitest.mjs")

const run = (commandArgs, { held }) =>
  new Promise((resolve) => {
    const child = spawn(node, commandArgs, { cwd: root, env, stdio: held ? "pipe" : "inherit" })
    const output = []
    if (held) {
      child.stdout.on("data", (chunk) => output.push(chunk))
      child.stderr.on("data", (chunk) => output.push(chunk))
    }
    for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => child.kill(signal))
    child.on("close", (code) => resolve({ code: code ?? 1, output: Buffer.concat(output) }))
  })

const [effect3, effect4] = await Promise.all([
  run([vitest("."), "run", ...reporters("effect3.json"), ...args], { held: false }),
  run([
    join(root, "scripts", "node22.mjs"),
    vitest("packages/effect4"),
    "run",
    "--root",
    join(root, "packages", "effect4"),
    ...reporters("effect4.json"),
    ...args
  ], { held: true })
])
process.stdout.write("\n── The Effect 4 edition (Node 22) ──\n")
process.stdout.write(effect4.output)

const totals = ["effect3.json", "effect4.json"].map((name) => {
  try {
    return JSON.parse(readFileSync(join(results, name), "utf8"))
  } catch {
    return { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTotalTests: 0 }
  }
})
const sum = (key) => totals.reduce((n, r) => n + r[key], 0)
console.log(
  `Tests: ${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed, ${sum("numPendingTests")} skipped ` +
    `(Effect 3 edition ${totals[0].numTotalTests}, Effect 4 edition ${totals[1].numTotalTests})`
)
process.exit(effect3.code || effect4.code || (totals.some((r) => r.numTotalTests === 0) ? 1 : 0))
