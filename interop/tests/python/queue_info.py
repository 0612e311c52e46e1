# queue_info.py HOST QUEUE: prints "<messages> <consumers>" of a queue (passive declare), or
# "missing" when it does not exist. Used by the Rust tests to wait for a consumer.
import sys

import amqp

conn = amqp.Connection(host=sys.argv[1], userid="guest", password="guest")
conn.connect()
try:
    _, messages, consumers = conn.channel().queue_declare(queue=sys.argv[2], passive=True)
    print(messages, consumers)
except amqp.exceptions.NotFound:
    print("missing")
conn.close()
