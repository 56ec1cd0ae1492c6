import { defineConfig } from "vitest/config"

// `npm run test:install`: the packed tarballs installed into fresh apps the ways users install them
// (no compiler, scripts skipped, npm's strict script policy, pnpm 10; a fresh Effect 3.22 app and a
// fresh Effect 4.1 app on Node 22), then used. Slow (it packs and installs several times), so it is not
// part of `npm test`; .ci/run runs it after the suite.
export default defineConfig({
  test: {
    include: ["test/install/**/*.test.ts"],
    // The Effect 4 forms the fresh Effect 4 app runs under its own vitest, not this one.
    exclude: ["test/install/effect4/**"],
    // Builds, packs and installs in the main process (an install outlasts a worker's silence limit).
    globalSetup: ["test/install/setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One app at a time: installs are heavy, and their times are reported.
    fileParallelism: false,
    sequence: { concurrent: false }
  }
})
