import { defineConfig } from "vitest/config"
export default defineConfig({
  test: { include: ["test/e2e/Stores.keyring.test.ts"], setupFiles: ["test/support/setup.ts"], testTimeout: 30000, hookTimeout: 30000 }
})
