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
    hookTimeout: 120_000
  }
})
