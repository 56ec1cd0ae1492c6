import { defineConfig } from "vitest/config"

// Two projects, both run by `npm test`:
// - unit: test/*.test.ts, in process (memory stores, TestClock, servers on 127.0.0.1 inside the
//   test's own process). `npm run test:unit` runs only these, in seconds.
// - e2e: test/e2e/**, real processes (the bundled example programs, built once by the e2e global
//   setup), real OAuth servers, real databases and browsers.
// Soak runs (hundreds of kills) are not tests: `npm run soak`.
const shared = {
  setupFiles: ["test/support/setup.ts"],
  // A test should take well under 15 s on a quiet 2-core machine; the limit leaves room for a busy one.
  testTimeout: 30_000,
  hookTimeout: 30_000
}

export default defineConfig({
  test: {
    // The secrets audit spans both projects: it runs once, around the whole run.
    globalSetup: ["test/support/auditSetup.ts"],
    projects: [
      { test: { ...shared, name: "unit", include: ["test/*.test.ts"] } },
      {
        test: {
          ...shared,
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/support/bundles.ts", "test/support/pgSetup.ts"]
        }
      }
    ]
  }
})
