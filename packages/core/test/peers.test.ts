import { loadWithPeers, missingPackage, MissingPeerError } from "@effect-auth-manager/core/peers"
import { describe, expect, it } from "vitest"

const notFound = (name: string) =>
  Object.assign(new Error(`Cannot find package '${name}' imported from /app/node_modules/x/dist/a.js`), {
    code: "ERR_MODULE_NOT_FOUND"
  })
const peers = [{ name: "pg", range: "^8.16.3" }, { name: "@effect/sql", range: "^0.52.1" }]

describe("peers", () => {
  it("names the missing package from Node's error, nothing for other errors", () => {
    expect(missingPackage(notFound("@effect/sql"))).toBe("@effect/sql")
    expect(missingPackage(new Error("Cannot find package 'pg'"))).toBeUndefined()
    expect(missingPackage(undefined)).toBeUndefined()
  })

  it("a missing peer is named with the line that installs them all; anything else goes through", async () => {
    const error = await loadWithPeers("x/postgres", peers, () => Promise.reject(notFound("pg"))).catch((e) => e)
    expect(error).toBeInstanceOf(MissingPeerError)
    expect(error.message).toBe(
      "x/postgres needs the package pg, which is not installed. Install its peers: npm install \"pg@^8.16.3\" \"@effect/sql@^0.52.1\""
    )
    const other = notFound("left-pad")
    expect(await loadWithPeers("x", peers, () => Promise.reject(other)).catch((e) => e)).toBe(other)
    expect(await loadWithPeers("x", peers, () => Promise.resolve(42))).toBe(42)
  })
})
