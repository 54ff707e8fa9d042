"""Send one agent run (an invoke_agent span, a chat span, two tool calls) to agentwatch.

    python examples/send_agent_trace.py                 # OTLP/gRPC to 127.0.0.1:4317
    python examples/send_agent_trace.py --http          # OTLP/HTTP to 127.0.0.1:4318
    python examples/send_agent_trace.py --endpoint http://127.0.0.1:4318 --http

Prints the trace id; then `curl localhost:8000/api/v1/traces/<trace id>`.
Uses only the OpenTelemetry SDK and its OTLP exporters, as an instrumented agent would.
"""

from __future__ import annotations

import argparse
import json

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


def make_exporter(http: bool, endpoint: str | None, token: str | None) -> SpanExporter:
    headers = {"authorization": f"Bearer {token}"} if token else None
    if http:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = (endpoint or "http://127.0.0.1:4318").rstrip("/")
        return OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(endpoint=endpoint or "127.0.0.1:4317", insecure=True, headers=headers)


def send_agent_run(exporter: SpanExporter, agent: str = "billing-agent") -> str:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "billing-service", "agent.owner": "team-pay"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("agentwatch.example", "0.1.0")
    with tracer.start_as_current_span(
        f"invoke_agent {agent}",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.conversation.id": "conv-42",
            "gen_ai.provider.name": "openai",
        },
    ) as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 812,
                "gen_ai.usage.output_tokens": 64,
            },
        ):
            pass
        for call_id, invoice in (("call_1", "INV-1"), ("call_2", "INV-2")):
            with tracer.start_as_current_span(
                "execute_tool lookup_invoice",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "lookup_invoice",
                    "gen_ai.tool.call.id": call_id,
                    "gen_ai.tool.call.arguments": json.dumps({"invoice": invoice}),
                },
            ) as tool_span:
                if invoice == "INV-2":
                    tool_span.set_attribute("error.type", "TimeoutError")
                    tool_span.set_status(Status(StatusCode.ERROR, "upstream timed out"))
    provider.shutdown()  # flushes: every span is exported before we print
    return trace_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="store_true", help="use OTLP/HTTP instead of gRPC")
    parser.add_argument("--endpoint", help="receiver address")
    parser.add_argument("--token", help="bearer token, when ingest tokens are configured")
    parser.add_argument("--agent", default="billing-agent")
    args = parser.parse_args()
    print(send_agent_run(make_exporter(args.http, args.endpoint, args.token), args.agent))


if __name__ == "__main__":
    main()
