// What the install setup and the fresh apps share: the repository's root, running a command, and the
// versions this repository tests with.
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"

export const root = join(import.meta.dirname, "..", "..")

/** Runs a command to its end: its stdout and stderr; fails with both unless it exits 0. */
export const execOutput = (
  command: string,
  args: ReadonlyArray<string>,
  options: { cwd: string; env?: NodeJS.ProcessEnv }
) =>
  new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("error", reject)
    child.once(
      "exit",
      (code) =>
        code === 0
          ? resolve({ stdout, stderr })
          : reject(new Error(`${command} ${args.join(" ")} failed (${code}):\n${stdout}\n${stderr}`))
    )
  })

/** Runs a command to its end: its stdout; fails with its output unless it exits 0. */
export const exec = (command: string, args: ReadonlyArray<string>, options: { cwd: string; env?: NodeJS.ProcessEnv }) =>
  execOutput(command, args, options).then((output) => output.stdout)

/** The version of `name` installed in `folder`'s node_modules (the root's by default). */
export const version = (name: string, folder = root) =>
  JSON.parse(readFileSync(join(folder, "node_modules", name, "package.json"), "utf8")).version as string

/** Packs the workspace `workspace` (or the root package) into `work`: the tarball's path. */
export const pack = async (work: string, workspace?: string) => {
  const args = ["pack", "--ignore-scripts", "--pack-destination", work, "--json"]
  const packed = await exec("npm", workspace === undefined ? args : [...args, "-w", workspace], { cwd: root })
  return join(work, (JSON.parse(packed) as Array<{ filename: string }>)[0]!.filename)
}
