// The secrets audit over the whole run (unit and e2e): start from an empty
// record, and after the last test search everything that was written.
import { existsSync, readFileSync, rmSync } from "node:fs"
import { auditFile, secretPatterns, secretsFile } from "./audit.js"

export default function setup() {
  rmSync(auditFile, { force: true })
  rmSync(secretsFile, { force: true })
  return teardown
}

/** After the whole run: no secret in anything the library or the examples wrote. */
const teardown = () => {
  if (!existsSync(auditFile)) return
  const text = readFileSync(auditFile, "utf8")
  const leaks = secretPatterns.flatMap((pattern) => {
    const match = pattern.exec(text)
    return match === null ? [] : [`${pattern} at: ${text.slice(Math.max(0, match.index - 300), match.index + 80)}`]
  })
  const known = existsSync(secretsFile) ? readFileSync(secretsFile, "utf8").split("\n").filter((v) => v.length > 0) : []
  for (const value of new Set(known)) {
    const at = text.indexOf(value)
    if (at >= 0) leaks.push(`a recorded secret at: ${text.slice(Math.max(0, at - 300), at)}<secret>`)
  }
  if (leaks.length > 0) throw new Error(`Secrets audit: a secret reached the output\n${leaks.join("\n")}`)
  console.log(
    `Secrets audit: ${
      text.split("\n").length
    } lines of output searched for the patterns and ${known.length} recorded secrets, none found`
  )
}
