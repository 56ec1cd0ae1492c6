import { type Schema, SchemaIssue } from "effect"

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * Names each wrong field and what was expected, but never the value found:
 * the input may hold a token or an API key.
 */
export const describeIssues = (error: Schema.SchemaError): string => {
  // A union reports one issue per member: gather them per field.
  const byField = new Map<string, Array<string>>()
  for (const issue of formatter(error.issue).issues) {
    const path = issue.path ?? []
    const field = path.length === 0 ? "the value" : `"${path.map(String).join(".")}"`
    const expected = byField.get(field) ?? []
    expected.push(issue.message === "Missing key" ? "missing" : expectedOf(issue.message))
    byField.set(field, expected)
  }
  return [...byField].map(([field, expected]) =>
    expected.includes("missing")
      ? `${field} is missing`
      : `${field} is not of the expected type (${[...new Set(expected)].join(" or ")})`
  ).join("; ")
}

// Schema reports the input only when asked to (`reportInput`); cut it off anyway, should it be there.
const expectedOf = (message: string): string => message.replace(/^Expected /, "").replace(/, got [\s\S]*$/, "")
