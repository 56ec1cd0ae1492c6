import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// Two projects, both run by `npm test`:
// - unit: test/*.test.ts and packages/core/test, in process (memory stores, TestClock, servers on 127.0.0.1 inside the
//   test's own process). `npm run test:unit` runs only these, in seconds.
// - e2e: test/e2e/**, real processes (the bundled example programs, built once by the e2e global
//   setup), real OAuth servers, real databases and browsers.
// Soak runs (hundreds of kills) are not tests: `npm run soak`.
// The shared core is read from its sources (packages/core/src), as TypeScript sees it, in every
// project (a project does not inherit the root's resolve).
const resolve = {
  alias: [{
    find: /^@effect-auth-manager\/core\/(.*)$/,
    replacement: fileURLToPath(new URL("./packages/core/src/$1.ts", import.meta.url))
  }]
}

const shared = {
  setupFiles: ["test/support/setup.ts"],
  // A test should take well under 15 s on a quiet 2-core machine. The limit only catches a hang: no
  // test measures speed (bench/ does), so it leaves room for a machine several times busier (the
  // property tests and the process tests took 20–55 s with two cores shared by a dozen processes).
  testTimeout: 120_000,
  hookTimeout: 120_000
}

export default defineConfig({
  test: {
    // The secrets audit spans both projects: it runs once, around the whole run.
    globalSetup: ["test/support/auditSetup.ts"],
    // The e2e files run in two reused worker processes (they mostly wait on the programs they
    // spawn); see the e2e project.
    poolOptions: { forks: { isolate: false, maxForks: 2, minForks: 1 } },
    projects: [
      {
        resolve,
        test: {
          ...shared,
          name: "unit",
          // The Effect-free core shared by both editions (packages/core) is tested once, here.
          include: ["packages/core/test/**/*.test.ts", "test/*.test.ts"],
          // All unit files run in one worker thread and share its loaded modules (Effect, the
          // library): loading them afresh for each file cost 2–3 s a file, most of the unit run.
          // So a unit test must not rely on module-level state left by another file (Effect's
          // metric registry is global: compare a metric before and after, not with zero). Being
          // in the threads pool, the unit files run alongside the e2e files (forks pool), which
          // mostly wait on their processes: the two cores are used.
          pool: "threads",
          isolate: false,
          poolOptions: { threads: { singleThread: true } }
        }
      },
      {
        resolve,
        test: {
          ...shared,
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // As for the unit files, a worker keeps its loaded modules from one file to the next:
          // a file must not rely on module-level state another file left.
          isolate: false,
          globalSetup: ["test/support/bundles.ts", "test/support/pgSetup.ts"]
        }
      }
    ]
  }
})
