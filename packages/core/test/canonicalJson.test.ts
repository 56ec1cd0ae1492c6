import { canonicalJson, sha256Hex } from "@effect-auth-manager/core/canonicalJson"
import { describe, expect, it } from "vitest"

describe("canonicalJson", () => {
  it("orders keys at every depth, so equal values hash equally", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } })).toBe(
      "{\"a\":{\"c\":null,\"d\":[2,{\"e\":0,\"f\":1}]},\"b\":1}"
    )
    expect(sha256Hex(canonicalJson({ x: 1, y: 2 }))).toBe(sha256Hex(canonicalJson({ y: 2, x: 1 })))
  })
})
