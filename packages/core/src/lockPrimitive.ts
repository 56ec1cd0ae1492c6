/**
 * Which lock primitive this machine offers for Codex's `auth.json.lock`,
 * decided once, on first use, with no install-time step:
 *
 * - Linux (x64 glibc or musl, arm64) and Windows x64: the flock addon the
 *   package ships prebuilt (`native/prebuilds/<target>/flock.node`, built by
 *   scripts/build-native.mjs): flock(2) on Linux, LockFileEx on Windows, the
 *   locks the Codex CLI takes there;
 * - macOS: no native code; an open with `O_EXLOCK | O_NONBLOCK` takes the
 *   same lock as flock(2);
 * - anything else, or an addon that does not load: none. The file store then
 *   says so once and coordinates our own processes through an owner file.
 *
 * The addon ships in the edition's package, so the edition says where it is
 * (`nodeHost(from)`, `from` being one of its own folders) and keeps the
 * process's answer.
 */
import { constants, existsSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

export type Primitive =
  /** The prebuilt addon: `lock` is true when the lock is now held, false when someone else holds it. */
  | {
    readonly _tag: "Addon"
    readonly file: string
    readonly lock: (fd: number) => boolean
    readonly unlock: (fd: number) => void
  }
  /** macOS: the lock is taken by the open itself. */
  | { readonly _tag: "OpenExlock"; readonly flags: number }
  /** No way to take Codex's lock here; `reason` says why, for the warning. */
  | { readonly _tag: "None"; readonly reason: string }

/** The prebuilt targets to try for a platform, most likely first (glibc before musl: a glibc build does not load on musl). */
export const targetsFor = (platform: string, arch: string): ReadonlyArray<string> =>
  platform === "linux" && arch === "x64"
    ? ["linux-x64", "linux-x64-musl"]
    : platform === "linux" && arch === "arm64"
    ? ["linux-arm64"]
    : platform === "win32" && arch === "x64"
    ? ["win32-x64"]
    : []

/** What `find` looks at: the machine, the package's files and how to load an addon. */
export interface Host {
  readonly platform: string
  readonly arch: string
  /** Where to look: `native/prebuilds` in this folder or at most 4 levels above it. */
  readonly from: string
  readonly exlock: number | undefined
  readonly nonblock: number | undefined
  readonly exists: (path: string) => boolean
  readonly load: (file: string) => unknown
}

/**
 * The core's own folder: the prebuilt addons ship in this package (`native/prebuilds`), whichever edition
 * loads it and wherever a program's bundle sits (resolved like any dependency, from here).
 */
const corePackage = (): string => {
  try {
    return dirname(createRequire(import.meta.url).resolve("@effect-auth-manager/core/package.json"))
  } catch {
    return dirname(fileURLToPath(import.meta.url))
  }
}

/** This process's host, the addon looked for from `from` (by default the core package's own folder). */
export const nodeHost = (from: string = corePackage()): Host => ({
  platform: process.platform,
  arch: process.arch,
  from,
  exlock: (constants as Record<string, number | undefined>).O_EXLOCK,
  nonblock: constants.O_NONBLOCK,
  exists: existsSync,
  load: (file) => {
    const module = { exports: {} as unknown }
    process.dlopen(module, file)
    return module.exports
  }
})

// The core's folder holds native/prebuilds itself; a folder given by a test may sit a few levels below.
const prebuildsFrom = (host: Host): string | undefined => {
  let dir = host.from
  for (let level = 0; level < 5; level++) {
    const candidate = join(dir, "native", "prebuilds")
    if (host.exists(candidate)) return candidate
    const parent = dirname(dir)
    if (parent === dir) break
    dir = parent
  }
  return undefined
}

const isAddon = (exports: unknown): exports is { lock: (fd: number) => boolean; unlock: (fd: number) => void } =>
  typeof exports === "object" && exports !== null && typeof (exports as { lock?: unknown }).lock === "function" &&
  typeof (exports as { unlock?: unknown }).unlock === "function"

/** Finds the primitive for `host`; never throws. */
export const find = (host: Host): Primitive => {
  if (host.platform === "darwin") {
    return host.exlock !== undefined && host.nonblock !== undefined
      ? { _tag: "OpenExlock", flags: host.exlock | host.nonblock }
      : { _tag: "None", reason: "this Node has no fs.constants.O_EXLOCK" }
  }
  const targets = targetsFor(host.platform, host.arch)
  if (targets.length === 0) return { _tag: "None", reason: `no lock addon is built for ${host.platform}-${host.arch}` }
  const prebuilds = prebuildsFrom(host)
  if (prebuilds === undefined) return { _tag: "None", reason: `the package's native/prebuilds folder is missing` }
  const failures: Array<string> = []
  for (const target of targets) {
    const file = join(prebuilds, target, "flock.node")
    if (!host.exists(file)) {
      failures.push(`${file} is missing`)
      continue
    }
    try {
      const exports = host.load(file)
      if (isAddon(exports)) return { _tag: "Addon", file, lock: exports.lock, unlock: exports.unlock }
      failures.push(`${file} is not the flock addon`)
    } catch (error) {
      failures.push(`${file} did not load: ${String((error as Error)?.message ?? error).split("\n")[0]}`)
    }
  }
  return { _tag: "None", reason: `the lock addon did not load (${failures.join("; ")})` }
}
