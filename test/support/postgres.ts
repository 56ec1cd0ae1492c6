/**
 * A throwaway PostgreSQL cluster for the tests: `initdb` and `pg_ctl` from
 * Debian's postgresql package, in a temporary folder, on 127.0.0.1 and a free
 * port, its unix socket in that folder. Durability is off (fsync, full page
 * writes): the cluster lives for one run of the suite.
 */
import { execFile } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

// Debian installs each major version under its own folder: take the newest one there is.
const newestDebianBin = (): string => {
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root)
    ? readdirSync(root).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))
    : []
  return join(root, versions[0] ?? "15", "bin")
}

export const postgresBin = process.env.EFFECT_AUTH_PG_BIN ?? newestDebianBin()

export interface Cluster {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` */
  readonly url: string
  readonly port: number
  readonly stop: () => Promise<void>
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))
      )
    })
  })

// PostgreSQL refuses to run as root: the cluster belongs to `postgres` then.
const asOwner = (command: string, args: ReadonlyArray<string>) => {
  const quoted = [command, ...args].map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ")
  return userInfo().uid === 0
    ? run("su", ["postgres", "-s", "/bin/sh", "-c", quoted])
    : run(command, [...args])
}

export const isAvailable = (): boolean => existsSync(join(postgresBin, "initdb"))

/** `settings`: more `-c name=value` server settings (the bench loads pg_stat_statements so). */
export const startCluster = async (settings: ReadonlyArray<string> = []): Promise<Cluster> => {
  if (!isAvailable()) {
    throw new Error(
      `PostgreSQL's initdb was not found in ${postgresBin}. The e2e tests start a throwaway cluster: ` +
        "install Debian's postgresql package (.ci/run does), or point EFFECT_AUTH_PG_BIN at a folder holding initdb and pg_ctl."
    )
  }
  const dir = mkdtempSync(join(tmpdir(), "effect-auth-pg-"))
  if (userInfo().uid === 0) {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
      run("id", ["-u", "postgres"]),
      run("id", ["-g", "postgres"])
    ])
    chownSync(dir, Number(uid.trim()), Number(gid.trim()))
  }
  const data = join(dir, "data")
  const log = join(dir, "postgres.log")
  await asOwner(join(postgresBin, "initdb"), [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "--no-sync",
    "--encoding=UTF8",
    "--locale=C.UTF-8",
    "--no-instructions"
  ])
  const port = await freePort()
  const options = [
    "-h 127.0.0.1",
    `-p ${port}`,
    `-k ${dir}`,
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c max_connections=300",
    "-c shared_buffers=32MB",
    ...settings.map((setting) => `-c ${setting}`)
  ].join(" ")
  try {
    await asOwner(join(postgresBin, "pg_ctl"), ["-D", data, "-l", log, "-w", "-t", "30", "-o", options, "start"])
  } catch (error) {
    const text = existsSync(log) ? readFileSync(log, "utf8").slice(-2000) : ""
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`PostgreSQL did not start: ${String(error)}\n${text}`)
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: async () => {
      await asOwner(join(postgresBin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => undefined)
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
