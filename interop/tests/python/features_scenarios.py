"""Differential scenarios of issue 11, run unchanged against RabbitMQ and against Warren:
binding durability combinations, direct reply-to (happy path and errors), quorum declare
errors, the delivery limit and x-delivery-count. Prints one JSON document of observations.

usage: features_scenarios.py HOST PORT VHOST

The vhost is created (and deleted) by the caller on both brokers, with the same name, so
that error texts that name it compare equal.
"""
import json
import sys
import time

import pika
from pika.exceptions import ChannelClosedByBroker, UnroutableError

HOST, PORT, VHOST = sys.argv[1], int(sys.argv[2]), sys.argv[3]
REPLY = 'amq.rabbitmq.reply-to'


def connect():
    return pika.BlockingConnection(pika.ConnectionParameters(
        HOST, PORT, VHOST, pika.PlainCredentials('guest', 'guest'), heartbeat=0))


def outcome(fn):
    try:
        fn()
        return 'ok'
    except ChannelClosedByBroker as e:
        return [e.reply_code, e.reply_text]
    except UnroutableError as e:
        return ['returned'] + [m.method.reply_text for m in e.messages]


def settle(conn, seconds=0.4):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)


def drain(ch, queue, headers=False):
    out = []
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        item = [b.decode(), m.redelivered]
        if headers:
            item.append((p.headers or {}).get('x-delivery-count'))
        out.append(item)


def durability(conn):
    ch = conn.channel()
    obs = {}
    for xd in (True, False):
        for qd in (True, False):
            t = ('D' if xd else 'T') + ('D' if qd else 'T')
            ch.exchange_declare('d.x' + t, 'direct', durable=xd)
            ch.queue_declare('d.q' + t, durable=qd)
            r = outcome(lambda: ch.queue_bind('d.q' + t, 'd.x' + t, 'k'))
            ch.basic_publish('d.x' + t, 'k', b'm')
            ch.exchange_declare('d.s' + t, 'fanout', durable=xd)
            ch.exchange_declare('d.d' + t, 'fanout', durable=qd)
            ch.queue_declare('d.e' + t, durable=True)
            ch.queue_bind('d.e' + t, 'd.d' + t)
            r2 = outcome(lambda: ch.exchange_bind('d.d' + t, 'd.s' + t))
            ch.basic_publish('d.s' + t, '', b'e')
            time.sleep(0.1)
            obs[t] = [r, drain(ch, 'd.q' + t), r2, drain(ch, 'd.e' + t)]
    q = ch.queue_declare('', exclusive=True).method.queue
    obs['exclusive_on_amq_topic'] = outcome(lambda: ch.queue_bind(q, 'amq.topic', 'a.#'))
    return obs


def reply_to(conn):
    obs = {}
    server = conn.channel()
    server.queue_declare('rpc')
    client = conn.channel()
    got = []
    client.basic_consume(REPLY, lambda c, m, p, b: got.append(
        [b.decode(), m.exchange, m.routing_key.startswith(REPLY + '.'), m.redelivered,
         p.correlation_id]), auto_ack=True)
    client.basic_publish('', 'rpc', b'req', pika.BasicProperties(reply_to=REPLY,
                                                                  correlation_id='c1'))
    time.sleep(0.1)
    _, p, _ = server.basic_get('rpc', auto_ack=True)
    address = p.reply_to
    obs['address_prefix'] = address.startswith(REPLY + '.') and len(address) > len(REPLY) + 1
    server.basic_publish('', address, b'rep', pika.BasicProperties(correlation_id='c1'))
    settle(conn)
    obs['replies'] = got
    d = server.queue_declare(REPLY, passive=True).method
    obs['declare_pseudo'] = [d.message_count, d.consumer_count]
    d = server.queue_declare(address, passive=True).method
    obs['declare_address'] = [d.message_count, d.consumer_count]
    obs['second_consumer'] = outcome(
        lambda: client.basic_consume(REPLY, lambda *a: None, auto_ack=True))
    c = conn.channel()
    obs['consume_with_ack'] = outcome(
        lambda: c.basic_consume(REPLY, lambda *a: None, auto_ack=False))
    c = conn.channel()
    obs['publish_without_consumer'] = outcome(lambda: (
        c.basic_publish('', 'rpc', b'x', pika.BasicProperties(reply_to=REPLY)),
        c.queue_declare('rpc', passive=True)))
    c = conn.channel()
    obs['basic_get_pseudo'] = outcome(lambda: c.basic_get(REPLY))
    # the requester's channel goes away
    c = conn.channel()
    c.basic_consume(REPLY, lambda *a: None, auto_ack=True)
    c.basic_publish('', 'rpc', b'req2', pika.BasicProperties(reply_to=REPLY))
    time.sleep(0.1)
    _, p, _ = server.basic_get('rpc', auto_ack=True)
    c.close()
    server.confirm_delivery()
    obs['reply_to_gone'] = outcome(lambda: server.basic_publish('', p.reply_to, b'late'))
    obs['reply_to_gone_mandatory'] = outcome(
        lambda: server.basic_publish('', p.reply_to, b'late', mandatory=True))
    s2 = conn.channel()
    obs['declare_gone_address'] = outcome(
        lambda: s2.queue_declare(p.reply_to, passive=True)) != 'ok'
    obs['rpc_left'] = drain(conn.channel(), 'rpc')
    return obs


def quorum_declare(conn):
    obs = {}
    qq = {'x-queue-type': 'quorum'}
    cases = {
        'non_durable': ('q.nd', False, False, False, qq),
        'exclusive': ('q.ex', True, True, False, qq),
        'auto_delete': ('q.ad', True, False, True, qq),
        'server_named': ('', True, False, False, qq),
        'max_priority': ('q.mp', True, False, False, dict(qq, **{'x-max-priority': 5})),
        'queue_mode': ('q.qm', True, False, False, dict(qq, **{'x-queue-mode': 'lazy'})),
        'bad_ttl': ('q.tt', True, False, False, dict(qq, **{'x-message-ttl': -1})),
        'classic_delivery_limit': ('c.dl', False, False, False, {'x-delivery-limit': 3}),
        'accepted': ('q.ok', True, False, False, dict(qq, **{
            'x-delivery-limit': 3, 'x-max-length': 5, 'x-single-active-consumer': True})),
    }
    for key, (name, durable, exclusive, auto_delete, args) in cases.items():
        ch = conn.channel()
        obs[key] = outcome(lambda: ch.queue_declare(
            name, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
            arguments=args))
    for key, args in (('redeclare_untyped', {}),
                      ('redeclare_classic', {'x-queue-type': 'classic'}),
                      ('redeclare_other_limit', dict(qq, **{'x-delivery-limit': 4})),
                      ('redeclare_same', dict(qq, **{'x-delivery-limit': 3, 'x-max-length': 5,
                                                      'x-single-active-consumer': True}))):
        ch = conn.channel()
        obs[key] = outcome(lambda: ch.queue_declare('q.ok', durable=True, arguments=args))
    ch = conn.channel()
    ch.queue_declare('c.t', arguments={'x-queue-type': 'classic'})
    obs['classic_explicit_then_untyped'] = outcome(lambda: ch.queue_declare('c.t'))
    return obs


def delivery_limit(conn):
    obs = {}
    ch = conn.channel()
    ch.exchange_declare('dl.dlx', 'fanout')
    ch.queue_declare('dl.dlq')
    ch.queue_bind('dl.dlq', 'dl.dlx')
    ch.queue_declare('dl.work', durable=True, arguments={
        'x-queue-type': 'quorum', 'x-delivery-limit': 2, 'x-dead-letter-exchange': 'dl.dlx'})
    ch.basic_publish('', 'dl.work', b'm1')
    ch.basic_publish('', 'dl.work', b'm2')
    time.sleep(0.2)
    seen = []
    for _ in range(4):
        m, p, b = ch.basic_get('dl.work')
        seen.append([b.decode(), m.redelivered, (p.headers or {}).get('x-delivery-count')])
        ch.basic_nack(m.delivery_tag, requeue=True)
        time.sleep(0.1)
    obs['gets'] = seen
    m, p, b = ch.basic_get('dl.dlq', auto_ack=True)
    death = p.headers['x-death'][0]
    obs['dead'] = [b.decode(), m.redelivered, 'x-delivery-count' in p.headers,
                   death['reason'], death['queue'], death['count'],
                   p.headers['x-first-death-reason']]
    obs['rest'] = drain(ch, 'dl.work', headers=True)
    # consumer view, no limit: the header appears only on redelivery; requeue to the tail
    ch.queue_declare('dl.free', durable=True, arguments={'x-queue-type': 'quorum'})
    for b in (b'c1', b'c2', b'c3'):
        ch.basic_publish('', 'dl.free', b)
    got = []
    c = conn.channel()
    c.basic_qos(prefetch_count=1)
    state = {'done': False}

    def on(chx, m, p, b):
        got.append([b.decode(), m.redelivered, (p.headers or {}).get('x-delivery-count')])
        if b == b'c1' and not state['done']:
            state['done'] = True
            chx.basic_reject(m.delivery_tag, requeue=True)
        else:
            chx.basic_ack(m.delivery_tag)
    c.basic_consume('dl.free', on)
    settle(conn, 1.0)
    obs['consumer'] = got
    c.close()
    return obs


def main():
    conn = connect()
    out = {}
    for name, fn in (('durability', durability), ('reply_to', reply_to),
                     ('quorum_declare', quorum_declare), ('delivery_limit', delivery_limit)):
        try:
            out[name] = fn(conn)
        except Exception as e:  # noqa: BLE001 - reported as an observation
            out[name] = 'failed: %r' % (e,)
            conn = connect()
    conn.close()
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == '__main__':
    main()
