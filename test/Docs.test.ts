import { describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
// @ts-expect-error: a plain ES module without types
import { extractSnippets, markdownFiles } from "../scripts/check-snippets.mjs"

interface Snippet {
  readonly line: number
  readonly code: string
}
const extract: (markdown: string) => ReadonlyArray<Snippet> = extractSnippets
const root = join(import.meta.dirname, "..")
const files: ReadonlyArray<string> = markdownFiles(root)

describe("the documentation's snippets, as scripts/check-snippets.mjs reads them", () => {
  it("are the ts and typescript blocks, each with the line its code starts on", () => {
    const markdown = [
      "# Title", //                          1
      "```ts", //                            2
      "const a = 1", //                      3
      "```", //                              4
      "```sh", //                            5
      "npm test", //                         6
      "```", //                              7
      "~~~typescript", //                    8
      "const b = 2", //                      9
      "~~~", //                             10
      "````ts", //                          11
      "const c = \"```\"", //               12
      "```", //                             13: inside the four-backtick block
      "````" //                             14
    ].join("\n")
    expect(extract(markdown)).toEqual([
      { line: 3, code: "const a = 1\n" },
      { line: 9, code: "const b = 2\n" },
      { line: 12, code: "const c = \"```\"\n```\n" }
    ])
  })

  it("keep the code of an indented block (in a list) as it would be pasted", () => {
    expect(extract("- item\n\n  ```ts\n  const a = 1\n    nested()\n  ```\n")).toEqual([
      { line: 4, code: "const a = 1\n  nested()\n" }
    ])
  })

  it("refuse a block that is never closed, rather than skip it", () => {
    expect(() => extract("text\n```ts\nconst a = 1\n")).toThrow(/line 2 is never closed/)
  })

  it("are found in the README, CONTRIBUTING.md and every page of docs/", () => {
    expect(files).toContain("README.md")
    expect(files).toContain("CONTRIBUTING.md")
    expect(files).toContain(join("docs", "testing.md"))
    const count = files.reduce((sum, file) => sum + extract(readFileSync(join(root, file), "utf8")).length, 0)
    expect(count).toBeGreaterThanOrEqual(5)
  })
})

// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
const anchorOf = (heading: string) =>
  heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-")

const anchorsOf = (markdown: string) =>
  new Set(
    markdown.replace(/^(```|~~~)[\s\S]*?^\1/gm, "").split("\n").flatMap((line) => {
      const heading = /^#{1,6}\s+(.*)$/.exec(line)
      return heading === null ? [] : [anchorOf(heading[1]!)]
    })
  )

describe("the documentation's links", () => {
  it("point at files and headings that exist", () => {
    const broken: Array<string> = []
    for (const file of files) {
      const markdown = readFileSync(join(root, file), "utf8")
      const prose = markdown.replace(/^(```|~~~)[\s\S]*?^\1/gm, "")
      for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue
        const [path, anchor] = target!.split("#") as [string, string | undefined]
        const resolved = path === "" ? join(root, file) : join(root, dirname(file), path)
        if (!existsSync(resolved)) {
          broken.push(`${file}: ${target} (no such file)`)
        } else if (anchor !== undefined && statSync(resolved).isFile()) {
          if (!anchorsOf(readFileSync(resolved, "utf8")).has(anchor)) {
            broken.push(`${file}: ${target} (no such heading)`)
          }
        }
      }
    }
    expect(broken).toEqual([])
  })

  it("the README stays short: what it is, install, quick start, the three services, links", () => {
    const lines = readFileSync(join(root, "README.md"), "utf8").split("\n").length
    expect(lines).toBeLessThanOrEqual(300)
  })
})
