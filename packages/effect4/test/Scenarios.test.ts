// The behavioural contract (test/scenarios at the repository's root), written once for both editions,
// run against the Effect 4 edition. The Effect 3 edition runs the same scenarios in test/Scenarios.test.ts.
import { afterAll, describe, expect, it } from "vitest"
import type { Scenarios } from "../../../test/scenarios/edition.js"
import { effect4 } from "./edition.js"

// The scenarios are a source of the repository's root project, outside this package's compiler's
// rootDir (packages/): they are loaded by a path held in a variable, which that compiler does not
// follow, and typed by the declaration it reads.
const contract = new URL("../../../test/scenarios/scenarios.ts", import.meta.url).href
const { scenarios }: { readonly scenarios: Scenarios } = await import(contract)

scenarios(effect4, { afterAll, describe, expect, it })
