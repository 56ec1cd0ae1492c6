import { Cause, Effect, Exit, Layer, Logger, LogLevel, Metric, Tracer } from "effect"

/**
 * Records every log line, every span (name, attributes, events, how it
 * ended) and every metric, as text, so a test can search them for secrets.
 */
export const makeCapture = () => {
  const lines: Array<string> = []
  const logger = Logger.make((options) => {
    lines.push(Logger.logfmtLogger.log(options))
  })
  let ids = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind, options) {
      const attributes = new Map<string, unknown>(Object.entries(options?.attributes ?? {}))
      const spanId = `span-${ids++}`
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end(_endTime, exit) {
          const outcome = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "ok"
          lines.push(`span ${name} ${JSON.stringify([...attributes])} ${outcome}`)
        },
        attribute(key, value) {
          attributes.set(key, value)
        },
        event(eventName, _time, eventAttributes) {
          lines.push(`span-event ${name} ${eventName} ${JSON.stringify(eventAttributes ?? {})}`)
        },
        addLinks() {}
      }
      return span
    },
    context: (f) => f()
  })
  const layer = Layer.mergeAll(
    Logger.replace(Logger.defaultLogger, logger),
    Logger.minimumLogLevel(LogLevel.All),
    Layer.setTracer(tracer)
  )
  const metrics = Effect.map(
    Metric.snapshot,
    (pairs) =>
      pairs.map((pair) =>
        `metric ${pair.metricKey.name} ${JSON.stringify(pair.metricKey.tags)} ${JSON.stringify(pair.metricState)}`
      )
  )
  const text = Effect.map(metrics, (metricLines) => [...lines, ...metricLines].join("\n"))
  return { lines, layer, text }
}
