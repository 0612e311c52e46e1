"""Differential scenarios of policies (issue 11 part 4), run unchanged against RabbitMQ and
against Warren: precedence, a policy changed under a live queue, message-ttl, max-length and
dead-lettering through a policy, policy and argument together, alternate-exchange and the
quorum delivery limit. Prints one JSON document of observations as its last line.

usage: policy_scenarios.py HOST PORT VHOST

Policies are set by the caller: the script writes a request line to stdout
(`{"op": "set_policy", "name": ..., "pattern": ..., "definition": {...}, "priority": P,
"apply_to": A}` or `{"op": "clear_policy", "name": ...}`) and waits for a line on stdin
before it goes on (RabbitMQ: rabbitmqctl; Warren: Broker::set_policy).
"""
import json
import sys
import time

import pika

HOST, PORT, VHOST = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def connect():
    return pika.BlockingConnection(pika.ConnectionParameters(
        HOST, PORT, VHOST, pika.PlainCredentials('guest', 'guest'), heartbeat=0))


def request(op):
    print(json.dumps(op), flush=True)
    answer = sys.stdin.readline()
    if answer.strip() != 'ok':
        raise RuntimeError('policy request failed: %s' % answer.strip())
    # RabbitMQ applies a policy to its queues asynchronously after rabbitmqctl returns.
    time.sleep(0.5)


def set_policy(name, pattern, definition, priority=0, apply_to='all'):
    request({'op': 'set_policy', 'name': name, 'pattern': pattern, 'definition': definition,
             'priority': priority, 'apply_to': apply_to})


def clear_policy(name):
    request({'op': 'clear_policy', 'name': name})


def drain(ch, queue):
    out = []
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        out.append(b.decode())


def drain_deaths(ch, queue):
    out = []
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        death = p.headers['x-death'][0]
        out.append([b.decode(), death['reason'], death['queue']])


def publish(ch, queue, bodies, exchange=''):
    for b in bodies:
        ch.basic_publish(exchange, queue, b.encode())


def ready(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def dead_letter_pair(ch, prefix):
    ch.exchange_declare(prefix + '.dlx', 'fanout')
    ch.queue_declare(prefix + '.dlq')
    ch.queue_bind(prefix + '.dlq', prefix + '.dlx')


def precedence(conn):
    ch = conn.channel()
    obs = {}
    ch.queue_declare('prec.q')
    set_policy('prec-low', '^prec\\.', {'max-length': 1}, priority=1)
    set_policy('prec-high', '^prec\\.', {'message-ttl': 60000}, priority=5)
    publish(ch, 'prec.q', ['a', 'b', 'c'])
    time.sleep(0.2)
    obs['high_alone'] = ready(ch, 'prec.q')
    set_policy('prec-low', '^prec\\.', {'max-length': 1}, priority=9)
    obs['low_raised'] = drain(ch, 'prec.q')
    # apply-to: a queue policy and an exchange policy on the same names.
    ch.queue_declare('prec.both')
    set_policy('prec-ex', '^prec\\.both$', {'max-length': 2}, priority=20, apply_to='exchanges')
    publish(ch, 'prec.both', ['x', 'y', 'z'])
    time.sleep(0.2)
    obs['exchange_policy_on_queue'] = drain(ch, 'prec.both')
    for name in ('prec-low', 'prec-high', 'prec-ex'):
        clear_policy(name)
    return obs


def live_change(conn):
    ch = conn.channel()
    obs = {}
    ch.queue_declare('live.q')
    publish(ch, 'live.q', ['m1', 'm2', 'm3', 'm4', 'm5'])
    set_policy('live', '^live\\.q$', {'max-length': 2})
    obs['lowered'] = ready(ch, 'live.q')
    set_policy('live', '^live\\.q$', {'max-length': 4})
    publish(ch, 'live.q', ['m6', 'm7', 'm8', 'm9'])
    time.sleep(0.2)
    obs['raised'] = ready(ch, 'live.q')
    clear_policy('live')
    publish(ch, 'live.q', ['m10', 'm11', 'm12'])
    time.sleep(0.2)
    obs['cleared'] = drain(ch, 'live.q')
    return obs


def ttl_and_dead_letters(conn):
    ch = conn.channel()
    obs = {}
    dead_letter_pair(ch, 'dl')
    ch.queue_declare('dl.ttl')
    ch.queue_declare('dl.len')
    set_policy('dl-ttl', '^dl\\.ttl$', {'message-ttl': 200, 'dead-letter-exchange': 'dl.dlx'})
    set_policy('dl-len', '^dl\\.len$', {'max-length': 1, 'dead-letter-exchange': 'dl.dlx',
                                         'dead-letter-routing-key': 'ignored'})
    publish(ch, 'dl.ttl', ['t1'])
    publish(ch, 'dl.len', ['l1', 'l2', 'l3'])
    time.sleep(1.0)
    obs['ttl_left'] = drain(ch, 'dl.ttl')
    obs['len_left'] = drain(ch, 'dl.len')
    obs['dead'] = sorted(drain_deaths(ch, 'dl.dlq'))
    for name in ('dl-ttl', 'dl-len'):
        clear_policy(name)
    return obs


def with_arguments(conn):
    ch = conn.channel()
    obs = {}
    dead_letter_pair(ch, 'arg')
    dead_letter_pair(ch, 'pol')
    ch.queue_declare('arg.len3', arguments={'x-max-length': 3})
    ch.queue_declare('arg.len1', arguments={'x-max-length': 1})
    ch.queue_declare('arg.mixed', arguments={'x-max-length': 1, 'x-dead-letter-exchange': 'arg.dlx',
                                          'x-overflow': 'drop-head'})
    set_policy('arg-len3', '^arg\\.len3$', {'max-length': 1})
    set_policy('arg-len1', '^arg\\.len1$', {'max-length': 3})
    set_policy('arg-mixed', '^arg\\.mixed$', {'dead-letter-exchange': 'pol.dlx',
                                          'overflow': 'reject-publish'})
    for q in ('arg.len3', 'arg.len1', 'arg.mixed'):
        publish(ch, q, ['a', 'b', 'c', 'd'])
    time.sleep(0.3)
    for q in ('arg.len3', 'arg.len1', 'arg.mixed'):
        obs[q] = drain(ch, q)
    obs['arg_dlq'] = drain(ch, 'arg.dlq')
    obs['pol_dlq'] = drain(ch, 'pol.dlq')
    for name in ('arg-len3', 'arg-len1', 'arg-mixed'):
        clear_policy(name)
    return obs


def alternate_exchange(conn):
    ch = conn.channel()
    obs = {}
    ch.exchange_declare('ae.alt', 'fanout')
    ch.queue_declare('ae.caught')
    ch.queue_bind('ae.caught', 'ae.alt')
    ch.exchange_declare('ae.main', 'direct')
    set_policy('ae-queues', '^ae\\.main$', {'alternate-exchange': 'ae.alt'}, apply_to='queues')
    ch.basic_publish('ae.main', 'nowhere', b'q-policy')
    set_policy('ae-exchanges', '^ae\\.main$', {'alternate-exchange': 'ae.alt'},
               apply_to='exchanges')
    ch.basic_publish('ae.main', 'nowhere', b'x-policy')
    time.sleep(0.2)
    obs['caught'] = drain(ch, 'ae.caught')
    for name in ('ae-queues', 'ae-exchanges'):
        clear_policy(name)
    return obs


def quorum_delivery_limit(conn):
    ch = conn.channel()
    obs = {}
    dead_letter_pair(ch, 'qq')
    ch.queue_declare('qq.work', durable=True, arguments={'x-queue-type': 'quorum'})
    ch.queue_declare('qq.classic')
    set_policy('qq', '^qq\\.(work|classic)$', {'delivery-limit': 1,
                                              'dead-letter-exchange': 'qq.dlx'})
    publish(ch, 'qq.work', ['poison'])
    publish(ch, 'qq.classic', ['plain'])
    time.sleep(0.2)
    for q in ('qq.work', 'qq.classic'):
        seen = []
        for _ in range(3):
            m, p, b = ch.basic_get(q)
            if m is None:
                seen.append(None)
                continue
            seen.append([b.decode(), (p.headers or {}).get('x-delivery-count')])
            ch.basic_nack(m.delivery_tag, requeue=True)
            time.sleep(0.1)
        obs[q] = seen
    time.sleep(0.2)
    obs['dead'] = drain_deaths(ch, 'qq.dlq')
    ch.queue_delete('qq.work')
    clear_policy('qq')
    return obs


def main():
    conn = connect()
    out = {}
    for name, fn in (('precedence', precedence), ('live_change', live_change),
                     ('ttl_and_dead_letters', ttl_and_dead_letters),
                     ('with_arguments', with_arguments),
                     ('alternate_exchange', alternate_exchange),
                     ('quorum_delivery_limit', quorum_delivery_limit)):
        try:
            out[name] = fn(conn)
        except Exception as e:  # noqa: BLE001 - reported as an observation
            out[name] = 'failed: %r' % (e,)
            conn = connect()
    conn.close()
    print(json.dumps({'result': out}, sort_keys=True), flush=True)


if __name__ == '__main__':
    main()
