import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import * as Library from "../src/index.js"

describe("public modules", () => {
  const src = join(import.meta.dirname, "..", "src")

  it("declare what a user or a backend names: no public module re-exports from internal/", () => {
    const publicModules = readdirSync(src).filter((name) => name.endsWith(".ts"))
    expect(publicModules.length).toBeGreaterThan(10)
    const offenders = publicModules.filter((name) =>
      /^export (type )?(\{[^}]*\}|\*)( as \w+)? from "\.\/internal\//m.test(readFileSync(join(src, name), "utf8"))
    )
    expect(offenders).toEqual([])
  })

  it("the make constructors are reachable from the library root", () => {
    const constructors = [
      Library.AuthManager.make,
      Library.AuthStore.makeFile,
      Library.AuthStore.makeMemory,
      Library.TokenRefresher.makeHttp,
      Library.TokenRefresher.makeTest,
      Library.SignIn.make,
      Library.CredentialStore.make,
      Library.RefreshCoordinator.make,
      Library.FileStore.make,
      Library.KeyringStore.make,
      Library.KeyedAuthManager.make
    ]
    for (const make of constructors) expect(typeof make).toBe("function")
  })
})
