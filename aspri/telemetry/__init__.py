"""OpenTelemetry tracing, trace-context propagation and structured logging."""
