/**
 * The table of environment variables in docs/configuration.md, generated from the descriptions the
 * configuration attaches to each variable (`Config.withDescription(variables[name])`).
 * `npm run docs:config` rewrites it; test/Configuration.test.ts fails when it is stale.
 */
import { variables } from "@effect-auth-manager/core/variables"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

export const docPath = join(import.meta.dirname, "..", "docs", "configuration.md")
export const begin = "<!-- generated from Configuration.variables by npm run docs:config: do not edit -->"
export const end = "<!-- end of the generated table -->"

/** The table, one row per variable, in the order the code lists them. */
export const table = (): string =>
  [
    "| variable | what it sets |",
    "|---|---|",
    ...Object.entries(variables).map(([name, description]) => `| \`${name}\` | ${description.replaceAll("|", "\\|")} |`)
  ].join("\n")

/** `text` with its generated block replaced by the current table. */
export const regenerate = (text: string): string => {
  const from = text.indexOf(begin)
  const to = text.indexOf(end)
  if (from < 0 || to < from) {
    throw new Error(`${docPath} lost its markers: put "${begin}" and "${end}" back around the table`)
  }
  return `${text.slice(0, from + begin.length)}\n${table()}\n${text.slice(to)}`
}

if (process.argv[1] === import.meta.filename) {
  writeFileSync(docPath, regenerate(readFileSync(docPath, "utf8")))
}
