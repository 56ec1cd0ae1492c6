/**
 * A private Secret Service for the keyring tests: a D-Bus session bus of its
 * own (`dbus-daemon`, from Debian's `dbus-daemon`) and `gnome-keyring-daemon`
 * unlocked on it (its password on stdin), with a private HOME and
 * XDG_RUNTIME_DIR in a temporary folder. The bus has no service activation,
 * so nothing else can answer for the Secret Service. Readiness is awaited:
 * the bus's address is the line `dbus-daemon` prints, and `gdbus wait`
 * returns once gnome-keyring owns `org.freedesktop.secrets`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

export interface Session {
  /** The environment a process needs to reach this Secret Service. */
  readonly env: NodeJS.ProcessEnv
  readonly address: string
  /** `secret-tool ARGS…` against this session: its stdout. */
  readonly secretTool: (args: ReadonlyArray<string>, input?: string) => Promise<string>
  readonly stop: () => Promise<void>
}

const busConfig = (socket: string) =>
  `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

const firstLine = (child: ChildProcess, what: string, timeoutMs: number) =>
  new Promise<string>((resolve, reject) => {
    let buffered = ""
    const timer = setTimeout(() => reject(new Error(`${what} printed no line within ${timeoutMs} ms`)), timeoutMs)
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8")
      const end = buffered.indexOf("\n")
      if (end >= 0) {
        clearTimeout(timer)
        resolve(buffered.slice(0, end).trim())
      }
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited (${code}) before it was ready`))
    })
    child.once("error", (error) => {
      clearTimeout(timer)
      reject(missing(what, error))
    })
  })

const packages: Record<string, string> = {
  "dbus-daemon": "dbus-daemon",
  "gnome-keyring-daemon": "gnome-keyring",
  gdbus: "libglib2.0-bin",
  "secret-tool": "libsecret-tools"
}
const missing = (program: string, error: Error) =>
  (error as NodeJS.ErrnoException).code === "ENOENT"
    ? new Error(`${program} is not installed: install Debian's ${packages[program]} package (.ci/run does)`)
    : error

const stopChild = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })

/** Starts a bus; with `keyring` (the default), an unlocked gnome-keyring on it. */
export const start = async (options: { readonly keyring?: boolean } = {}): Promise<Session> => {
  const dir = mkdtempSync(join(tmpdir(), "effect-auth-keyring-"))
  const home = join(dir, "home")
  const runtime = join(dir, "run")
  mkdirSync(home, { mode: 0o700 })
  mkdirSync(runtime, { mode: 0o700 })
  writeFileSync(join(dir, "bus.conf"), busConfig(join(dir, "bus")))
  const children: Array<ChildProcess> = []
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const bus = spawn("dbus-daemon", [
      `--config-file=${join(dir, "bus.conf")}`,
      "--nofork",
      "--nopidfile",
      "--print-address=1"
    ], {
      stdio: ["ignore", "pipe", "ignore"]
    })
    children.push(bus)
    const address = await firstLine(bus, "dbus-daemon", 15_000)
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_RUNTIME_DIR: runtime,
      DBUS_SESSION_BUS_ADDRESS: address
    }
    if (options.keyring !== false) {
      const keyring = spawn("gnome-keyring-daemon", ["--foreground", "--unlock", "--components=secrets"], {
        env,
        stdio: ["pipe", "ignore", "ignore"]
      })
      children.push(keyring)
      const failed = new Promise<never>((_, reject) =>
        keyring.once("error", (error) => reject(missing("gnome-keyring-daemon", error)))
      )
      failed.catch(() => undefined) // observed by the race below; later, the stop says nothing either
      keyring.stdin.end("test-keyring-password")
      await Promise.race([
        failed,
        run("gdbus", ["wait", "--session", "--timeout", "20", "org.freedesktop.secrets"], { env }).catch(
          (error: Error) => {
            throw missing("gdbus", error)
          }
        )
      ])
    }
    const secretTool = async (args: ReadonlyArray<string>, input?: string) => {
      // One pipe for both streams: secret-tool prints an item's attributes on stderr, the rest on stdout.
      const child = execFile("sh", ["-c", "exec secret-tool \"$@\" 2>&1", "secret-tool", ...args], { env }, () => {})
      const output = new Promise<string>((resolve, reject) => {
        let out = ""
        child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")))
        child.once(
          "exit",
          (code) => (code === 0 ? resolve(out) : reject(new Error(`secret-tool ${args[0]} failed (${code}): ${out}`)))
        )
      })
      child.stdin!.end(input ?? "")
      return output
    }
    return { env, address, secretTool, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** One item of `secret-tool search --all` output. */
export interface Item {
  readonly label: string
  readonly secret: string
  readonly attributes: Readonly<Record<string, string>>
}

/** Parses `secret-tool search --all` output. */
export const parseItems = (output: string): ReadonlyArray<Item> =>
  output.split(/^\[[^\]]*\]\n/m).filter((block) => block.trim() !== "").map((block) => {
    const attributes: Record<string, string> = {}
    let label = ""
    let secret = ""
    for (const line of block.split("\n")) {
      const match = /^(\S+) = (.*)$/.exec(line)
      if (match === null) continue
      const [, name, value] = match as unknown as [string, string, string]
      if (name === "label") label = value
      else if (name === "secret") secret = value
      else if (name.startsWith("attribute.")) attributes[name.slice("attribute.".length)] = value
    }
    return { label, secret, attributes }
  })
