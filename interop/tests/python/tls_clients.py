"""pika and py-amqp over TLS (amqps) against a server whose certificates the Rust test made.

Usage: tls_clients.py PORT CA_PEM CLIENT_CERT CLIENT_KEY MODE

MODE `serve`: each client connects with the client certificate (trusting only the test's CA,
with the host name checked), publishes in confirm mode, consumes and acknowledges; prints one
`ok <client>` line per client. MODE `no-cert`: each client connects without a client
certificate; prints `refused <client>` when the connection fails, `connected <client>` when
it does not.
"""

import ssl
import sys

import amqp
import pika

port = int(sys.argv[1])
ca, cert, key, mode = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
with_cert = mode == 'serve'
COUNT = 20


def context():
    ctx = ssl.create_default_context(cafile=ca)
    if with_cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def with_pika():
    params = pika.ConnectionParameters(
        host='127.0.0.1', port=port,
        ssl_options=pika.SSLOptions(context(), server_hostname='localhost'),
        connection_attempts=1, socket_timeout=10, blocked_connection_timeout=10)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    queue = ch.queue_declare('', exclusive=True).method.queue
    for i in range(COUNT):
        # Raises if the message is nacked or unroutable (mandatory).
        ch.basic_publish('', queue, ('pika %d' % i).encode(), mandatory=True)
    got = []
    for method, _props, body in ch.consume(queue, inactivity_timeout=10):
        assert method is not None, 'pika: timed out after %d messages' % len(got)
        got.append(body.decode())
        ch.basic_ack(method.delivery_tag)
        if len(got) == COUNT:
            break
    ch.cancel()
    assert got == ['pika %d' % i for i in range(COUNT)], got
    conn.close()


def with_py_amqp():
    sslopts = {
        'ca_certs': ca,
        'cert_reqs': ssl.CERT_REQUIRED,
        'server_hostname': 'localhost',
    }
    if with_cert:
        sslopts.update(certfile=cert, keyfile=key)
    conn = amqp.Connection(host='127.0.0.1:%d' % port, ssl=sslopts, connect_timeout=10)
    conn.connect()
    ch = conn.channel()
    ch.confirm_select()
    queue, _, _ = ch.queue_declare('', exclusive=True)
    for i in range(COUNT):
        # With confirms on, basic_publish waits for the broker's ack (raises on a nack).
        ch.basic_publish(amqp.Message(('py-amqp %d' % i).encode()), exchange='',
                         routing_key=queue, confirm_timeout=10)
    got = []

    def on_message(message):
        got.append(message.body.decode())
        message.channel.basic_ack(message.delivery_tag)

    ch.basic_consume(queue, callback=on_message)
    while len(got) < COUNT:
        conn.drain_events(timeout=10)
    assert got == ['py-amqp %d' % i for i in range(COUNT)], got
    conn.close()


failed = False
for name, run in (('pika', with_pika), ('py-amqp', with_py_amqp)):
    try:
        run()
    except Exception as e:  # noqa: BLE001 - every failure is reported by name
        if mode == 'serve':
            print('failed %s: %r' % (name, e), flush=True)
            failed = True
        else:
            print('refused %s' % name, flush=True)
        continue
    print(('ok %s' if mode == 'serve' else 'connected %s') % name, flush=True)
sys.exit(1 if failed else 0)
