// The source tree's dependency rules (.dependency-cruiser.cjs): no circles, type imports included;
// each folder's internal/ its own; the layers in one direction, in both editions; the core free of Effect
// and of either edition; the editions apart; examples on the public entry points.
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"

const root = join(import.meta.dirname, "..")

describe("architecture", () => {
  it("the dependency rules hold", async () => {
    const run = await promisify(execFile)(
      process.execPath,
      [
        join(root, "node_modules", "dependency-cruiser", "bin", "dependency-cruise.mjs"),
        "src",
        "bin",
        "examples",
        "packages/core/src",
        "packages/effect4/src",
        "--output-type",
        "json"
      ],
      { cwd: root, maxBuffer: 64 * 1024 * 1024 }
    ).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? "" }))
    const result = JSON.parse(run.stdout) as {
      summary: { violations: Array<{ rule: { name: string }; from: string; to: string }>; totalCruised: number }
    }
    expect(result.summary.totalCruised).toBeGreaterThan(150)
    expect(result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([])
  })
})
