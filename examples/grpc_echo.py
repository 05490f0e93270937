"""A gRPC service under load with GrpcUser: unary and server-streaming calls.

    python examples/grpc_echo.py --port 50051 &     # a small echo service on 127.0.0.1
    mpswarm -f examples/grpc_echo.py -H grpc://127.0.0.1:50051 -u 20 -t 30s --headless

Real services come with a .proto file: generate its stubs with grpcio-tools
(``python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. svc.proto``) and set
``stub_class = svc_pb2_grpc.SvcStub``. To stay one file, this example writes by hand what
the generated stub and servicer would be, over protobuf's own ``StringValue`` message.
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc
from google.protobuf.wrappers_pb2 import StringValue

from mpswarm import GrpcUser, between, task

SERVICE = "demo.Echo"


class EchoStub:
    """What ``protoc`` generates for ``service Echo { rpc Say ...; rpc Repeat ... }``."""

    def __init__(self, channel: grpc.Channel) -> None:
        bytes_in: dict[str, Any] = {
            "request_serializer": StringValue.SerializeToString,
            "response_deserializer": StringValue.FromString,
        }
        self.Say = channel.unary_unary(f"/{SERVICE}/Say", **bytes_in)
        self.Repeat = channel.unary_stream(f"/{SERVICE}/Repeat", **bytes_in)


class EchoUser(GrpcUser):
    stub_class = EchoStub
    wait_time = between(0.1, 0.5)

    @task(3)
    def say(self) -> None:
        reply = self.stub.Say(StringValue(value="hello"))  # recorded as grpc /demo.Echo/Say
        assert reply.value == "hello"

    @task(1)
    def repeat(self) -> None:
        # Recorded once, with the time to the last of the 5 messages.
        assert len(list(self.stub.Repeat(StringValue(value="hi")))) == 5


def serve(port: int) -> None:
    """The echo service on 127.0.0.1:PORT (0: a free port), until Ctrl-C or SIGTERM."""
    from concurrent import futures

    def say(request: StringValue, context: Any) -> StringValue:
        return request

    def repeat(request: StringValue, context: Any) -> Any:
        return (request for _ in range(5))

    kinds = {"request_deserializer": StringValue.FromString,
             "response_serializer": StringValue.SerializeToString}  # fmt: skip
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(say, **kinds),
        "Repeat": grpc.unary_stream_rpc_method_handler(repeat, **kinds),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"grpc://127.0.0.1:{bound}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the example's echo service, on loopback")
    parser.add_argument("--port", type=int, default=50051)
    serve(parser.parse_args().port)
