import { defineConfig } from "vitest/config"

// `npm run soak`: long stress runs (hundreds of kills, long rotation races), kept out of `npm test`.
export default defineConfig({
  test: {
    name: "soak",
    include: ["test/soak/**/*.soak.ts"],
    globalSetup: ["test/support/auditSetup.ts", "test/support/bundles.ts"],
    setupFiles: ["test/support/setup.ts"],
    testTimeout: 600_000,
    hookTimeout: 60_000
  }
})
