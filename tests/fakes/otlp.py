"""An OTLP/HTTP trace receiver: decodes `POST /v1/traces` protobuf bodies (ExportTraceServiceRequest) into spans.

It speaks the collector's wire protocol (protobuf, optional gzip) with OpenTelemetry's own generated
messages, so the processes under test export with their production exporter and nothing in them is faked.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.fakes.base import FakeResponse, FakeServer, RecordedRequest

#: OTLP's status codes (opentelemetry.proto.trace.v1.Status.StatusCode).
STATUS_ERROR = 2


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a collector would store it: hex ids, attributes as Python values."""

    service: str
    trace_id: str
    span_id: str
    parent_span_id: str  #: "" for a root span
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    links: tuple[tuple[str, str], ...]  #: linked (trace id, span id), hex


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


class OtlpReceiver(FakeServer):
    """Accepts OTLP/HTTP protobuf trace exports and keeps every span it decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[ReceivedSpan] = []

    def respond(self, request: RecordedRequest) -> FakeResponse:
        if request.method != "POST" or request.path != "/v1/traces":
            return FakeResponse(404)
        if request.headers.get("content-type") != "application/x-protobuf":
            return FakeResponse.of_text("OTLP/HTTP protobuf only", 415)
        body = gzip.decompress(request.body) if request.headers.get("content-encoding") == "gzip" else request.body
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        received = []
        for resource_spans in export.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={kv.key: _value(kv.value) for kv in span.attributes},
                            status_code=span.status.code,
                            links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        )
                    )
        with self.lock:
            self.spans.extend(received)
        answer = ExportTraceServiceResponse().SerializeToString()
        return FakeResponse(200, answer, {"Content-Type": "application/x-protobuf"})

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], trace_id: str, *, timeout_s: float = 30
    ) -> list[ReceivedSpan]:
        """The trace's spans once `predicate` holds for them (exporters batch: spans arrive a moment later)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.trace(trace_id)
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted(s.name for s in spans)
                raise AssertionError(f"trace {trace_id} incomplete after {timeout_s}s: {names}")
            time.sleep(0.1)
