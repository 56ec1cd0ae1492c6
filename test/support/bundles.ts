// Global setup of the e2e project: the example programs and the tests' helper programs
// as single-file bundles of the current source, built once per run. A bundle starts in
// a fraction of the time tsx needs.
// @ts-expect-error: a plain ES module without types
import { bundle } from "../../scripts/bundle.mjs"
import { examplesDir, helpers, helpersDir } from "./programs.js"

export default async function setup() {
  await Promise.all([bundle(examplesDir), bundle(helpersDir, helpers)])
}
