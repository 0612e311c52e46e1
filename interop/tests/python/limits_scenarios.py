"""Differential scenarios of issue 10 (the wire's limits, protocol completeness and the
close handshake): one suite, run unchanged against RabbitMQ and against Warren, printing
one JSON document of observations that must be identical.

usage: limits_scenarios.py HOST PORT

Some cases drive the protocol by hand (pika's frame codec on a plain socket), because pika
itself refuses to break the rules they test: opening more channels than negotiated, writing
on after the server closed the connection.
"""
import json
import socket
import sys
import threading
import time
import uuid

import pika
from pika import frame, spec
from pika.exceptions import ConnectionClosedByBroker

HOST, PORT = sys.argv[1], int(sys.argv[2])
PREFIX = "wlimits-" + uuid.uuid4().hex[:10]


def connect(**kw):
    params = pika.ConnectionParameters(HOST, PORT, heartbeat=0, **kw)
    return pika.BlockingConnection(params)


class Raw:
    """A hand-driven client: handshake with a given channel_max, then frames."""

    def __init__(self, channel_max=0):
        self.sock = socket.create_connection((HOST, PORT))
        self.buf = b""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.start = self.method()
        response = b"\0guest\0guest"
        self.send(0, spec.Connection.StartOk({"capabilities": {}}, "PLAIN", response))
        tune = self.method()
        channel_max = channel_max or tune.channel_max
        self.send(0, spec.Connection.TuneOk(channel_max, tune.frame_max, 0))
        self.send(0, spec.Connection.Open(virtual_host="/"))
        assert isinstance(self.method(), spec.Connection.OpenOk)

    def send(self, channel, method):
        self.sock.sendall(frame.Method(channel, method).marshal())

    def frame(self, timeout=10):
        self.sock.settimeout(timeout)
        while True:
            used, f = frame.decode_frame(self.buf)
            if f is not None:
                self.buf = self.buf[used:]
                return f
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                # RabbitMQ resets the socket after close-ok: the end, as much as EOF.
                data = b""
            if not data:
                return None
            self.buf += data

    def method(self):
        while True:
            f = self.frame()
            if f is None:
                return None
            if isinstance(f, frame.Method):
                return f.method

    def close(self):
        self.sock.close()


def describe(method):
    """A method as an observation: its name and, for closes, code, text and method ids."""
    if method is None:
        return "EOF"
    if isinstance(method, (spec.Connection.Close, spec.Channel.Close)):
        return [method.NAME, method.reply_code, method.reply_text, method.class_id, method.method_id]
    return method.NAME


def update_secret():
    """pika's TestUpdateSecret: the connection and its channel stay open."""
    conn = connect()
    ch = conn.channel()
    conn.update_secret("new_secret", "reason")
    obs = {"after": [conn.is_open, ch.is_open]}
    conn.close()
    raw = Raw()
    raw.send(0, spec.Connection.UpdateSecret(b"anything", "rotation"))
    obs["raw"] = describe(raw.method())
    raw.send(1, spec.Channel.Open())
    raw.method()
    raw.send(1, spec.Connection.UpdateSecret(b"guest", "on a channel"))
    obs["on_channel"] = describe(raw.method())
    raw.close()
    return obs


def properties():
    """pika's TestConnectionProperties, and the keys of the server properties (their values
    name the product, so only the keys and the capabilities are compared)."""
    conn = connect()
    obs = {
        "supported": [
            conn.basic_nack_supported,
            conn.consumer_cancel_notify_supported,
            conn.exchange_exchange_bindings_supported,
            conn.publisher_confirms_supported,
        ],
        "keys": sorted(conn._impl.server_properties.keys()),
        "capabilities": conn._impl.server_properties["capabilities"],
    }
    conn.close()
    return obs


def channel_count():
    """channel_max counts open channels, whatever their numbers (530 at one more)."""
    obs = {}
    raw = Raw(channel_max=3)
    seen = []
    for number in (7, 1):
        raw.send(number, spec.Channel.Open())
        seen.append(describe(raw.method()))
    raw.send(1, spec.Channel.Close(200, "", 0, 0))
    seen.append(describe(raw.method()))
    for number in (2, 3):
        raw.send(number, spec.Channel.Open())
        seen.append(describe(raw.method()))
    raw.send(4, spec.Channel.Open())
    seen.append(describe(raw.method()))
    raw.send(0, spec.Connection.CloseOk())
    seen.append(describe(raw.method()))
    obs["sequence"] = seen
    raw.close()
    return obs


def consumers():
    """No consumer limit by default (RabbitMQ 3.10 has none): 300 consumers on a channel."""
    conn = connect()
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    for _ in range(300):
        ch.basic_consume(queue, lambda *a: None)
    obs = {"consumers": ch.queue_declare(queue, passive=True).method.consumer_count}
    conn.close()
    return obs


def max_message_size():
    """A body of max_message_size + 1 bytes closes its channel with 406; the connection
    goes on."""
    raw = Raw()
    raw.send(1, spec.Channel.Open())
    raw.method()
    size = 128 * 1024 * 1024 + 1
    raw.send(1, spec.Basic.Publish(exchange="", routing_key=PREFIX))
    chunk = b"x" * 131064
    raw.sock.sendall(frame.Header(1, size, spec.BasicProperties()).marshal())
    # The body is written from another thread: a server may answer before it has all.
    def write():
        sent = 0
        try:
            while sent < size:
                part = chunk[: min(len(chunk), size - sent)]
                raw.sock.sendall(frame.Body(1, part).marshal())
                sent += len(part)
        except OSError:
            pass

    writer = threading.Thread(target=write)
    writer.start()
    obs = {"close": describe(raw.method())}
    writer.join()
    raw.send(1, spec.Channel.CloseOk())
    raw.send(2, spec.Channel.Open())
    obs["next_channel"] = describe(raw.method())
    raw.close()
    return obs


def close_while_writing():
    """A hard error while the client keeps writing for a second: the client writes on
    without a broken pipe or a reset, then reads the connection.close, answers close-ok
    and sees the socket closed."""
    raw = Raw()
    raw.send(1, spec.Channel.Open())
    raw.method()
    publish = (
        frame.Method(1, spec.Basic.Publish(exchange="", routing_key=PREFIX)).marshal()
        + frame.Header(1, 1000, spec.BasicProperties()).marshal()
        + frame.Body(1, b"y" * 1000).marshal()
    )
    # A method on channel 5, which is not open: 504, a hard error.
    raw.sock.sendall(publish * 10 + frame.Method(5, spec.Basic.Qos(prefetch_count=1)).marshal())
    failures = []

    def write():
        began = time.monotonic()
        try:
            while time.monotonic() - began < 1.0:
                raw.sock.sendall(publish * 50)
        except OSError as e:
            failures.append(type(e).__name__)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join()
    obs = {"write_failures": failures, "close": describe(raw.method())}
    raw.send(0, spec.Connection.CloseOk())
    obs["then"] = describe(raw.method())
    raw.close()
    return obs


def main():
    observations = {
        "update_secret": update_secret(),
        "properties": properties(),
        "channel_count": channel_count(),
        "consumers": consumers(),
        "max_message_size": max_message_size(),
        "close_while_writing": close_while_writing(),
    }
    print(json.dumps(observations, sort_keys=True, indent=1))


if __name__ == "__main__":
    main()
