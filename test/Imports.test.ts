import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

// The `@effect/platform` index loads every module of the package (HttpApi, OpenApi, …):
// importing it cost a program hundreds of milliseconds at start. The library imports the
// modules it uses by their own paths, and so do the programs.
const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sources(join(dir, entry.name))
      : entry.name.endsWith(".ts")
      ? [join(dir, entry.name)]
      : []
  )

describe("start-up cost of imports", () => {
  const root = join(import.meta.dirname, "..")
  const files = [...sources(join(root, "src")), ...sources(join(root, "examples"))]

  it("finds the sources", () => {
    expect(files.length).toBeGreaterThan(10)
  })

  it("no library or program module imports the @effect/platform or @effect/platform-node index", () => {
    const offenders = files.filter((file) => /from "@effect\/platform(-node)?"/.test(readFileSync(file, "utf8")))
    expect(offenders).toEqual([])
  })
})
