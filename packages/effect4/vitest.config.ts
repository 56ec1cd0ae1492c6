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
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: "effect4",
          include: ["test/**/*.test.ts"],
          exclude: ["test/Keyring*.test.ts"],
          // Workers keep their loaded modules from one file to the next: loading Effect and the edition
          // afresh for each file was half the run. So a file must not rely on module-level state another
          // file left (compare a metric before and after, not with zero).
          isolate: false
        }
      },
      {
        extends: true,
        test: {
          name: "effect4-keyring",
          include: ["test/Keyring*.test.ts"],
          // The keyring binding keeps its D-Bus connection for the life of the process: each file, with
          // a Secret Service of its own, runs in a fresh one.
          isolate: true
        }
      }
    ]
  }
})
