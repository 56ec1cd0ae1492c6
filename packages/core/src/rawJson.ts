/**
 * JSON text handled as text: the entries of an object with each value's
 * exact text, and a canonical form (keys sorted, no whitespace) for hashing.
 * Iterative, so any depth of nesting is fine, and numbers keep every digit
 * they were written with. Every function expects text that `JSON.parse`
 * accepts (V8's parser is iterative too): check it first.
 */

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

const skipSpace = (text: string, i: number): number => {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++
  return i
}

/** The index just after the string that opens at `i`. */
const endOfString = (text: string, i: number): number => {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j)
    if (c === 0x5c) j++
    else if (c === 0x22) return j + 1
  }
  return text.length
}

/** The index just after a number, `true`, `false` or `null` starting at `i`. */
const endOfScalar = (text: string, i: number): number => {
  let j = i
  while (j < text.length) {
    const c = text.charCodeAt(j)
    if (isSpace(c) || c === 0x2c || c === 0x5d || c === 0x7d) break
    j++
  }
  return j
}

/** The index just after the value that starts at `i`. */
const endOfValue = (text: string, i: number): number => {
  let depth = 0
  let j = i
  do {
    const c = text.charCodeAt(j)
    if (c === 0x22) j = endOfString(text, j)
    else if (c === 0x7b || c === 0x5b) {
      depth++
      j++
    } else if (c === 0x7d || c === 0x5d) {
      depth--
      j++
    } else if (depth === 0) j = endOfScalar(text, j)
    else j++
  } while (depth > 0 && j < text.length)
  return j
}

/** The entries of the JSON object `text`, in order, each value as its exact text. */
export const objectEntries = (text: string): Array<readonly [key: string, value: string]> => {
  const entries: Array<readonly [string, string]> = []
  let i = skipSpace(text, 0) + 1 // past "{"
  for (;;) {
    i = skipSpace(text, i)
    if (text.charCodeAt(i) !== 0x22) break // "}"
    const keyEnd = endOfString(text, i)
    const key = JSON.parse(text.slice(i, keyEnd)) as string
    i = skipSpace(text, skipSpace(text, keyEnd) + 1) // past ":"
    const valueEnd = endOfValue(text, i)
    entries.push([key, text.slice(i, valueEnd)])
    i = skipSpace(text, valueEnd)
    if (text.charCodeAt(i) === 0x2c) i++
  }
  return entries
}

type Node = string | Array<Node> | Map<string, Node>

/**
 * The canonical form of the JSON value `text`: object keys sorted (the last
 * of a repeated key wins, as with `JSON.parse`), no whitespace, strings
 * re-encoded as `JSON.stringify` writes them, numbers exactly as written.
 */
export const canonical = (text: string): string => {
  // Read into a tree with an explicit stack...
  const stack: Array<{ readonly node: Array<Node> | Map<string, Node>; key: string | null }> = []
  let root: Node | undefined
  const add = (value: Node) => {
    const top = stack[stack.length - 1]
    if (top === undefined) root = value
    else if (Array.isArray(top.node)) top.node.push(value)
    else {
      top.node.delete(top.key!)
      top.node.set(top.key!, value)
      top.key = null
    }
  }
  let i = 0
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (isSpace(c) || c === 0x2c || c === 0x3a) {
      i++
    } else if (c === 0x22) {
      const end = endOfString(text, i)
      const value = JSON.parse(text.slice(i, end)) as string
      const top = stack[stack.length - 1]
      if (top !== undefined && !Array.isArray(top.node) && top.key === null) top.key = value
      else add(JSON.stringify(value))
      i = end
    } else if (c === 0x7b || c === 0x5b) {
      const node: Array<Node> | Map<string, Node> = c === 0x7b ? new Map() : []
      add(node)
      stack.push({ node, key: null })
      i++
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop()
      i++
    } else {
      const end = endOfScalar(text, i)
      add(text.slice(i, end))
      i = end
    }
  }
  // ...and write it out with another.
  const out: Array<string> = []
  const pending: Array<Node | { readonly raw: string }> = [root ?? "null"]
  while (pending.length > 0) {
    const next = pending.pop()!
    if (typeof next === "string") out.push(next)
    else if ("raw" in next) out.push(next.raw)
    else if (Array.isArray(next)) {
      const parts: Array<Node | { readonly raw: string }> = [{ raw: "[" }]
      next.forEach((item, index) => parts.push(...(index === 0 ? [item] : [{ raw: "," }, item])))
      parts.push({ raw: "]" })
      for (let k = parts.length - 1; k >= 0; k--) pending.push(parts[k]!)
    } else {
      const keys = [...next.keys()].sort()
      const parts: Array<Node | { readonly raw: string }> = [{ raw: "{" }]
      keys.forEach((key, index) =>
        parts.push({ raw: `${index === 0 ? "" : ","}${JSON.stringify(key)}:` }, next.get(key)!)
      )
      parts.push({ raw: "}" })
      for (let k = parts.length - 1; k >= 0; k--) pending.push(parts[k]!)
    }
  }
  return out.join("")
}

/** How deeply the valid JSON `text` nests arrays and objects (0 for a scalar). */
export const nestingDepth = (text: string): number => {
  let depth = 0
  let deepest = 0
  for (let i = 0; i < text.length;) {
    const c = text.charCodeAt(i)
    if (c === 0x22) i = endOfString(text, i)
    else {
      if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth)
      else if (c === 0x7d || c === 0x5d) depth--
      i++
    }
  }
  return deepest
}

// ---------------------------------------------------------------------------
// Objects whose unknown fields are kept as their exact text
// ---------------------------------------------------------------------------

/**
 * A field this library does not know, as the exact JSON text it was written
 * with: numbers beyond 2^53 keep their digits, and any key (`__proto__`
 * included) stays an ordinary field, on every rewrite.
 */
export class RawJson {
  constructor(readonly text: string) {}
  /** For `JSON.stringify` of a document: the value as JavaScript reads it (digits beyond 2^53 are lost there). */
  toJSON(): unknown {
    return JSON.parse(this.text)
  }
}

// An own data property whatever the key: `object[key] = value` with "__proto__" would set the prototype.
export const defineField = (object: object, key: string, value: unknown) =>
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })

/** The fields of a parsed object the schema names, and the others as raw text. */
export const splitFields = (text: string, known: ReadonlySet<string>) => {
  const knownFields: Record<string, unknown> = {}
  const unknownFields = new Map<string, RawJson>()
  const seen = new Map<string, string>()
  // The last of a repeated key wins, as with JSON.parse.
  for (const [key, value] of objectEntries(text)) {
    seen.delete(key)
    seen.set(key, value)
  }
  for (const [key, value] of seen) {
    if (known.has(key)) defineField(knownFields, key, value)
    else unknownFields.set(key, new RawJson(value))
  }
  return { knownFields, unknownFields }
}

export const fieldsOf = (object: object): ReadonlyArray<readonly [string, unknown]> =>
  Object.keys(object).map((key) => [key, (object as Record<string, unknown>)[key]] as const)

/** The JSON text of an object from the text of its fields, indented for `level` or compact. */
export const objectText = (fields: ReadonlyArray<readonly [string, string]>, indent: number, level: number): string => {
  if (fields.length === 0) return "{}"
  if (indent === 0) return `{${fields.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(",")}}`
  const inner = " ".repeat(indent * (level + 1))
  return `{\n${fields.map(([key, value]) => `${inner}${JSON.stringify(key)}: ${value}`).join(",\n")}\n${
    " ".repeat(indent * level)
  }}`
}

export const valueText = (value: unknown, indent: number, level: number): string =>
  value instanceof RawJson
    ? value.text
    : (JSON.stringify(value, null, indent) ?? "null").replace(/\n/g, `\n${" ".repeat(indent * level)}`)
