import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// The Effect 4 edition's tests, run under Node 22 by `npm test` (scripts/node22.mjs). The core is
// read from its sources, as in the Effect 3 edition's suite.
export default defineConfig({
  resolve: {
    alias: [{
      find: /^@effect-auth-manager\/core\/(.*)$/,
      replacement: fileURLToPath(new URL("../core/src/$1.ts", import.meta.url))
    }]
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two workers that keep their loaded modules from one file to the next: loading Effect and the
    // edition afresh for each file was half the run. So a file must not rely on module-level state
    // another file left (compare a metric before and after, not with zero).
    pool: "forks",
    isolate: false,
    maxWorkers: 2
  }
})
