import {
  canonical,
  defineField,
  nestingDepth,
  objectEntries,
  objectText,
  RawJson,
  splitFields,
  valueText
} from "@effect-auth-manager/core/rawJson"
import { describe, expect, it } from "vitest"

describe("rawJson", () => {
  it("objectEntries gives each value's exact text, in order, whatever the spacing", () => {
    const text =
      " {\n \"big\" : 123456789012345678901234567890 ,\"s\":\"a\\\"}b\", \"o\": { \"x\": [1, {\"y\": 2}] } ,\"n\":null}"
    expect(objectEntries(text)).toEqual([
      ["big", "123456789012345678901234567890"],
      ["s", "\"a\\\"}b\""],
      ["o", "{ \"x\": [1, {\"y\": 2}] }"],
      ["n", "null"]
    ])
    expect(objectEntries("{}")).toEqual([])
  })

  it("canonical sorts keys, drops whitespace, keeps every digit and lets the last repeated key win", () => {
    expect(canonical("{ \"b\": 1.50, \"a\": [ 2, {\"d\": \"\\u0041\", \"c\": 10000000000000000000001} ], \"b\": 3 }"))
      .toBe("{\"a\":[2,{\"c\":10000000000000000000001,\"d\":\"A\"}],\"b\":3}")
    expect(canonical("\"x\"")).toBe("\"x\"")
    expect(canonical("[]")).toBe("[]")
  })

  it("canonical and nestingDepth handle nesting far deeper than a recursive reader could", () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000)
    expect(nestingDepth(deep)).toBe(100_000)
    expect(canonical(deep)).toBe(deep)
    expect(nestingDepth("{\"a\":\"[[[\"}")).toBe(1)
    expect(nestingDepth("42")).toBe(0)
  })

  it("splitFields keeps the fields it does not know as exact text, __proto__ as an ordinary field", () => {
    const { knownFields, unknownFields } = splitFields(
      "{\"a\": 1, \"__proto__\": {\"x\": 1}, \"big\": 9007199254740993, \"a\": 2}",
      new Set(["a"])
    )
    expect(knownFields).toEqual({ a: "2" })
    expect([...unknownFields].map(([key, value]) => [key, value.text])).toEqual([
      ["__proto__", "{\"x\": 1}"],
      ["big", "9007199254740993"]
    ])
    const target = {}
    defineField(target, "__proto__", 1)
    expect(Object.getPrototypeOf(target)).toBe(Object.prototype)
    expect(Object.keys(target)).toEqual(["__proto__"])
  })

  it("objectText and valueText write fields back, indented or compact, raw text untouched", () => {
    const raw = new RawJson("9007199254740993")
    expect(objectText([["a", valueText(raw, 2, 1)], ["b", valueText({ c: [1] }, 2, 1)]], 2, 0)).toBe(
      "{\n  \"a\": 9007199254740993,\n  \"b\": {\n    \"c\": [\n      1\n    ]\n  }\n}"
    )
    expect(objectText([["a", valueText("x", 0, 0)]], 0, 0)).toBe("{\"a\":\"x\"}")
    expect(objectText([], 2, 0)).toBe("{}")
    expect(JSON.stringify({ raw })).toBe("{\"raw\":9007199254740992}")
  })
})
