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
