// The end-to-end suites spawn the example programs as single-file bundles
// of the current source: they start in a fraction of the time tsx needs.
import { join } from "node:path"
// @ts-expect-error: a plain ES module without types
import { bundle } from "../../scripts/bundle.mjs"

export default async function setup() {
  await bundle()
  // Helper programs of the tests only, never shipped.
  await bundle(join(import.meta.dirname, "..", "..", "node_modules", ".cache", "effect-auth-test"), {
    writer: "test/support/writer.ts"
  })
}
