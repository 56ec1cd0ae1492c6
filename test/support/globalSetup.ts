// The end-to-end suites spawn the example programs as single-file bundles
// of the current source: they start in a fraction of the time tsx needs.
// @ts-expect-error: a plain ES module without types
import { bundle } from "../../scripts/bundle.mjs"

export default async function setup() {
  await bundle()
}
