/**
 * Soak runs (`npm run soak`): the long versions of the multi-process samples in
 * test/e2e/MultiProcess.test.ts, with the same assertions. Not part of `npm test`.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { cleanup, tempHome } from "../support/processes.js"
import { expectRotationRace, killWhileWriting } from "../support/stress.js"

afterEach(cleanup)

const seed = Number(process.env.SOAK_SEED ?? 15)

describe("soak: several processes on one CODEX_HOME", () => {
  it(`200 kills at seeded random moments (seed ${seed}): the file is always a whole document`, async () => {
    const result = await killWhileWriting({ home: tempHome(), rounds: 200, parallel: 4, seed, maxDelayMs: 15 })
    expect(result).toEqual({ checked: 200, broken: [] })
  }, 600_000)

  it(
    "rotating refresh tokens: 4 stale processes polling at once for 200 rounds cause no refresh_token_reused",
    () => expectRotationRace({ processes: 4, rounds: 200 }),
    600_000
  )
})
