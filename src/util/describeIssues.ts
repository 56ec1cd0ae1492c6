import { ParseResult } from "effect"

/**
 * Names each wrong field and what was expected, but never the value found:
 * the input may hold a token or an API key.
 */
export const describeIssues = (error: ParseResult.ParseError): string => {
  // A union reports one issue per member: gather them per field.
  const byField = new Map<string, Array<string>>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const field = issue.path.length === 0 ? "the value" : `"${issue.path.join(".")}"`
    const expected = byField.get(field) ?? []
    expected.push(issue._tag === "Missing" ? "missing" : expectedOf(issue))
    byField.set(field, expected)
  }
  return [...byField].map(([field, expected]) =>
    expected.includes("missing")
      ? `${field} is missing`
      : `${field} is not of the expected type (${[...new Set(expected)].join(" or ")})`
  ).join("; ")
}

const expectedOf = (issue: ParseResult.ArrayFormatterIssue): string =>
  issue.message.replace(/^Expected /, "").replace(/, actual [\s\S]*$/, "")
