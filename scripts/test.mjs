// `npm test`: the Effect 3 edition's suite under this Node, then the Effect 4 edition's under Node 22
// (scripts/node22.mjs), then one closing line for both. Arguments (a file filter, say) go to both runs.
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const results = mkdtempSync(join(tmpdir(), "effect-auth-tests-"))
const reporters = (name) => ["--reporter=default", "--reporter=json", `--outputFile=${join(results, name)}`]
const run = (commandArgs) => spawnSync(process.execPath, commandArgs, { stdio: "inherit", cwd: root }).status ?? 1
const vitest = (folder) => join(root, folder, "node_modules", "vitest", "vitest.mjs")

const effect3 = run([vitest("."), "run", ...reporters("effect3.json"), ...args])
const effect4 = run([
  join(root, "scripts", "node22.mjs"),
  vitest("packages/effect4"),
  "run",
  "--root",
  join(root, "packages", "effect4"),
  ...reporters("effect4.json"),
  ...args
])
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
process.exit(effect3 || effect4 || (totals.some((r) => r.numTotalTests === 0) ? 1 : 0))
