// The behavioural contract (test/scenarios), written once for both editions, run against the Effect 3
// edition. The Effect 4 edition runs the same scenarios in packages/effect4/test/Scenarios.test.ts.
import { afterAll, describe, expect, it } from "vitest"
import { effect3 } from "./scenarios/effect3.js"
import { scenarios } from "./scenarios/scenarios.js"

scenarios(effect3, { afterAll, describe, expect, it })
