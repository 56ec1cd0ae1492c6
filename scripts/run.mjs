// `node scripts/run.mjs <package bin> [args]`: runs a tool of node_modules (vitest, tsx, …) on the Node
// that runs npm, with a PATH on which `node` is that Node too (see nodeEnv.mjs).
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { env, node } from "./nodeEnv.mjs"

const [name, ...args] = process.argv.slice(2)
const require = createRequire(join(process.cwd(), "package.json"))
const manifestPath = require.resolve(`${name}/package.json`)
const { bin } = JSON.parse(readFileSync(manifestPath, "utf8"))
const entry = join(dirname(manifestPath), typeof bin === "string" ? bin : bin[name])
// tsx is a loader: `run.mjs tsx file.ts` runs the file with it, flags before the file kept for Node.
const commandArgs = name === "tsx" ? ["--import", "tsx", ...args] : [entry, ...args]
const child = spawn(node, commandArgs, { stdio: "inherit", env })
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal))
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
