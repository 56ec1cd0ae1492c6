// Global setup of the e2e project: the example programs and the tests' helper programs
// as bundles of the current source (scripts/bundle.mjs), built once per run, and V8's code
// cache of each made once (a bundle compiled from cache starts about twice as fast). The
// writer is always killed, so it never leaves a cache by itself: it is run once to the end here.
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
// @ts-expect-error: a plain ES module without types
import { bundle } from "../../scripts/bundle.mjs"
import { codeCacheHome, examplesDir, helpers, helpersDir } from "./programs.js"

/** Runs a program once to its end, so that its loader leaves V8's code cache behind. */
const warm = (program: string, args: ReadonlyArray<string>, home: string) =>
  new Promise<void>((resolve) => {
    const child = execFile(process.execPath, [program, ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: home, CODEX_HOME: home, XDG_CACHE_HOME: codeCacheHome },
      timeout: 60_000
    }, () => resolve()) // `effect-auth status` exits 1 when nobody is signed in: the cache is written all the same.
    // The app server ends when its standard input closes.
    child.stdin?.end()
  })

export default async function setup() {
  await Promise.all([bundle(examplesDir), bundle(helpersDir, helpers)])
  const homes = [0, 1, 2, 3].map(() => mkdtempSync(join(tmpdir(), "effect-auth-warm-")))
  await Promise.all([
    warm(join(examplesDir, "app-server.mjs"), [], homes[0]!),
    warm(join(examplesDir, "effect-auth.mjs"), ["status", "--json"], homes[1]!),
    // Every other command loads the full command line, a bundle of its own.
    warm(join(examplesDir, "effect-auth.mjs"), ["status", "--refresh"], homes[3]!),
    warm(join(helpersDir, "writer.mjs"), ["--once"], homes[2]!)
  ])
  for (const home of homes) rmSync(home, { recursive: true, force: true })
}
