// The library's own cost in a fresh process: importing the package entry,
// then building `layerNode` (reads $CODEX_HOME/auth.json). Prints JSON.
const began = performance.now()
const { layerNode } = await import("effect-auth-manager")
const imported = performance.now()
const { Effect, Layer } = await import("effect")
await Effect.runPromise(Effect.scoped(Layer.build(layerNode)))
const built = performance.now()
process.stdout.write(JSON.stringify({ importMs: imported - began, layerMs: built - imported }))
