// Optional peers per entry point: package.json says which are optional, and an entry point whose
// peer is missing says which package to install (the installed case: test/install/Install.test.ts).
import { loadWithPeers, MissingPeerError } from "@effect-auth-manager/core/peers"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { peers as postgresPeers } from "../src/postgres/entry.js"

const manifest = JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8"))

describe("peer dependencies", () => {
  it("the library's are required; the CLI's and PostgreSQL's optional", () => {
    const optional = Object.keys(manifest.peerDependenciesMeta).filter((name) =>
      manifest.peerDependenciesMeta[name].optional
    )
    const required = Object.keys(manifest.peerDependencies).filter((name) => !optional.includes(name))
    expect(required.sort()).toEqual(["@effect/platform", "@effect/platform-node", "effect"])
    expect(optional.sort()).toEqual(["@effect/cli", "@effect/experimental", "@effect/sql", "@effect/sql-pg", "pg"])
    // Two dependencies: the Effect-free core shared with the Effect 4 edition, and the OS keyring binding
    // (prebuilt per platform, no install script), loaded only by the keyring store.
    expect(Object.keys(manifest.dependencies ?? {})).toEqual(["@effect-auth-manager/core", "@napi-rs/keyring"])
    expect(manifest.allowScripts["fs-ext"]).toBeUndefined()
  })

  it("the postgres entry point names package.json's ranges, and is what the package exports", () => {
    for (const peer of postgresPeers) expect(manifest.peerDependencies[peer.name], peer.name).toBe(peer.range)
    expect(manifest.exports["./postgres"].import).toBe("./dist/src/postgres/entry.js")
  })

  it("a missing peer is named with the line that installs them", async () => {
    const notFound = Object.assign(
      new Error(
        "Cannot find package '@effect/sql-pg' imported from /app/node_modules/effect-auth-manager/dist/src/postgres/PgStore.js"
      ),
      { code: "ERR_MODULE_NOT_FOUND" }
    )
    const error = await loadWithPeers("effect-auth-manager/postgres", postgresPeers, () => Promise.reject(notFound))
      .catch((e) => e)
    expect(error).toBeInstanceOf(MissingPeerError)
    expect(error.message).toBe(
      "effect-auth-manager/postgres needs the package @effect/sql-pg, which is not installed. Install its peers: npm install " +
        "\"@effect/sql@^0.52.1\" \"@effect/sql-pg@^0.53.0\" \"@effect/experimental@^0.61.1\" \"pg@^8.16.3\""
    )
    // Anything else (a bug in the module, a package that is not a peer) goes through as it was.
    const other = Object.assign(new Error("Cannot find package 'left-pad' imported from x"), {
      code: "ERR_MODULE_NOT_FOUND"
    })
    expect(await loadWithPeers("x", postgresPeers, () => Promise.reject(other)).catch((e) => e)).toBe(other)
  })
})
