"""An agent whose tool call hangs: the zombie run agentwatch is built to catch.

    python examples/zombie_agent.py                 # OTLP/gRPC to 127.0.0.1:4317

It runs a few healthy steps (an LLM call and a tool call each, a heartbeat per step),
then calls `crm.lookup`, which never returns — the process stays alive, the loop is
stuck, and no span ends. agentwatch_sdk's pending marker names the stuck call, and
after the agent's idle threshold (2 minutes by default) a `zombie_run` finding opens:

    agentwatch findings --open

Ctrl-C ends the hang (the tool call then ends with an error and the finding resolves).
"""

from __future__ import annotations

import argparse
import threading

from agentwatch_sdk import PendingSpanProcessor, configure, heartbeat, tool_call
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

HANG = threading.Event()  # never set: the upstream call that never answers


@tool_call("crm.lookup")
def lookup(customer_id: str, hang: bool = False) -> dict[str, str]:
    if hang:
        # Waits in short steps: Python runs a signal handler (Ctrl-C) in the main
        # thread, when that thread next runs; if another thread took the signal, a
        # plain wait() would never return to run it.
        while not HANG.wait(0.5):
            pass
    return {"customer_id": customer_id, "plan": "pro"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:4317", help="OTLP/gRPC address")
    parser.add_argument("--token", help="bearer token, when ingest tokens are configured")
    parser.add_argument("--agent", default="support-agent")
    args = parser.parse_args()
    headers = (("authorization", f"Bearer {args.token}"),) if args.token else None
    provider = TracerProvider(resource=Resource.create({"service.name": "support-api"}))
    exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=True, headers=headers)
    provider.add_span_processor(
        PendingSpanProcessor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    )
    configure(tracer_provider=provider, heartbeat_interval_s=1.0)
    tracer = provider.get_tracer("examples.zombie_agent")
    with tracer.start_as_current_span(
        f"invoke_agent {args.agent}",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": args.agent,
            "gen_ai.conversation.id": "conv-zombie",
        },
    ) as run:
        print(f"trace {format(run.get_span_context().trace_id, '032x')}", flush=True)
        try:
            for step in range(6):
                heartbeat(step=step)
                with tracer.start_as_current_span(
                    "chat gpt-4o",
                    attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
                ):
                    HANG.wait(0.5)  # the model "thinking"
                lookup(f"c-{step}", hang=step == 5)  # the sixth call never returns
                print(f"step {step} done", flush=True)
        except KeyboardInterrupt:
            print("interrupted: the hung call ends now", flush=True)
    provider.shutdown()


if __name__ == "__main__":
    main()
