// The end-to-end suites spawn the example programs as single-file bundles
// of the current source: they start in a fraction of the time tsx needs.
import { existsSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { auditFile, secretPatterns } from "./audit.js"
// @ts-expect-error: a plain ES module without types
import { bundle } from "../../scripts/bundle.mjs"

export default async function setup() {
  rmSync(auditFile, { force: true })
  await bundle()
  // Helper programs of the tests only, never shipped.
  await bundle(join(import.meta.dirname, "..", "..", "node_modules", ".cache", "effect-auth-test"), {
    writer: "test/support/writer.ts",
    "api-caller": "test/support/apiCaller.ts"
  })
  return teardown
}

/** After the whole suite: no secret in anything the library or the examples wrote. */
async function teardown() {
  if (!existsSync(auditFile)) return
  const text = readFileSync(auditFile, "utf8")
  const leaks = secretPatterns.flatMap((pattern) => {
    const match = pattern.exec(text)
    return match === null ? [] : [`${pattern} at: ${text.slice(Math.max(0, match.index - 300), match.index + 80)}`]
  })
  if (leaks.length > 0) throw new Error(`Secrets audit: a secret reached the output\n${leaks.join("\n")}`)
  console.log(`Secrets audit: ${text.split("\n").length} lines of output searched, no secret found`)
}
