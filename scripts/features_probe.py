#!/usr/bin/env python3
"""Probes of queue-feature corner cases on a real RabbitMQ (pika), for tests/ of Warren.

Usage: python3 scripts/features_probe.py   (RabbitMQ at 127.0.0.1:5672, guest/guest)
Every name gets a random prefix; everything declared is deleted at the end.
"""
import time
import uuid

import pika

RUN = 'fp' + uuid.uuid4().hex[:6]
conn = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1'))
ch = conn.channel()
QS, XS = [], []


def q(name, args=None):
    n = RUN + '.' + name
    ch.queue_declare(n, arguments=args or {})
    QS.append(n)
    return n


def x(name, kind, args=None, auto_delete=False):
    n = RUN + '.' + name
    ch.exchange_declare(n, kind, arguments=args or {}, auto_delete=auto_delete)
    XS.append(n)
    return n


def drain(name):
    out = []
    while True:
        m, p, b = ch.basic_get(name, auto_ack=True)
        if m is None:
            return out
        out.append(b.decode() + ('(R)' if m.redelivered else ''))


def probe_ae_dead_end():
    main = x('main', 'topic', {'alternate-exchange': RUN + '.ae'})
    ae = x('ae', 'fanout')
    dead = x('deadend', 'fanout')
    aeq = q('aeq')
    ch.queue_bind(aeq, ae)
    ch.exchange_bind(dead, main, 'x')
    ch.basic_publish(main, 'x', b'swallowed')
    ch.basic_publish(main, 'y', b'alternate')
    time.sleep(0.2)
    print('AE when main routes only to a dead-end exchange: aeq =', drain(aeq))


def probe_reject_publish_requeue():
    n = q('rp', {'x-max-length': 1, 'x-overflow': 'reject-publish'})
    ch.basic_publish('', n, b'p1')
    time.sleep(0.1)
    m, _, _ = ch.basic_get(n)
    ch.basic_publish('', n, b'p2')
    time.sleep(0.1)
    ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.2)
    print('reject-publish, requeue into full queue:', drain(n))


def probe_xdeath_order():
    dlx = x('dlx', 'fanout')
    dlq = q('dlq')
    ch.queue_bind(dlq, dlx)
    w1 = q('w1', {'x-dead-letter-exchange': dlx})
    w2 = q('w2', {'x-dead-letter-exchange': dlx})
    props = pika.BasicProperties()
    for target in [w1, w2, w1]:
        ch.basic_publish('', target, b'm', properties=props)
        time.sleep(0.1)
        m, _, _ = ch.basic_get(target)
        ch.basic_reject(m.delivery_tag, requeue=False)
        time.sleep(0.2)
        m, props, _ = ch.basic_get(dlq, auto_ack=True)
    print('x-death after w1, w2, w1 rejections:')
    for d in props.headers['x-death']:
        print('   ', d['queue'].replace(RUN, 'RUN'), d['reason'], d['count'])


def probe_consumer_priority():
    n = q('cp')
    c2 = conn.channel()
    c2.basic_qos(prefetch_count=2)
    got = {'low': [], 'high': []}
    ch.basic_consume(n, lambda c, m, p, b: got['low'].append(b.decode()),
                     arguments={'x-priority': 1})
    c2.basic_consume(n, lambda c, m, p, b: got['high'].append(b.decode()),
                     arguments={'x-priority': 10})
    for i in range(1, 6):
        ch.basic_publish('', n, ('m%d' % i).encode())
    for _ in range(10):
        conn.process_data_events(time_limit=0.2)
    print('consumer priorities (high prefetch 2, low unlimited):', got)
    c2.close()


def probe_expires_passive():
    n = q('exp', {'x-expires': 400})
    for _ in range(4):
        time.sleep(0.2)
        ch.queue_declare(n, passive=True)
    print('x-expires=400 with passive declares every 200 ms for 800 ms: exists')


def probe_e2e_durability():
    d = RUN + '.durx'
    ch.exchange_declare(d, 'fanout', durable=True)
    XS.append(d)
    t = x('transx', 'fanout')
    ch.exchange_bind(t, d)
    print('e2e durable -> transient: allowed')


def probe_mandatory_reject_publish():
    n = q('mrp', {'x-max-length': 0, 'x-overflow': 'reject-publish'})
    c = conn.channel()
    c.confirm_delivery()
    returned = []
    c.add_on_return_callback(lambda *a: returned.append(a))
    try:
        c.basic_publish('', n, b'x', mandatory=True)
        result = 'acked'
    except pika.exceptions.NackError:
        result = 'nacked'
    except pika.exceptions.UnroutableError:
        result = 'returned'
    conn.process_data_events(time_limit=0.3)
    print('mandatory publish refused by reject-publish:', result, 'returns:', len(returned))
    c.close()


def probe_sac_handover():
    n = q('sac', {'x-single-active-consumer': True})
    c1 = conn.channel()
    c1.basic_qos(prefetch_count=1)
    got = {'s1': [], 's2': []}
    t1 = c1.basic_consume(n, lambda c, m, p, b: got['s1'].append(b.decode()))
    ch.basic_consume(n, lambda c, m, p, b: got['s2'].append(b.decode()), auto_ack=True)
    ch.basic_publish('', n, b'a')
    ch.basic_publish('', n, b'b')
    for _ in range(3):
        conn.process_data_events(time_limit=0.1)
    c1.basic_cancel(t1)
    for _ in range(3):
        conn.process_data_events(time_limit=0.1)
    before_close = {k: list(v) for k, v in got.items()}
    ch.basic_publish('', n, b'c')
    for _ in range(3):
        conn.process_data_events(time_limit=0.1)
    after_publish = {k: list(v) for k, v in got.items()}
    c1.close()
    for _ in range(3):
        conn.process_data_events(time_limit=0.1)
    print('SAC handover (s1 prefetch 1 holds a; b ready; s1 cancels):', before_close,
          '; publish c:', after_publish, '; s1 channel closes:', got)


def probe_priority_drop_head():
    n = q('pdh', {'x-max-priority': 5, 'x-max-length': 2})
    for body, prio in [('p1', 1), ('p5', 5), ('p3', 3)]:
        ch.basic_publish('', n, body.encode(), pika.BasicProperties(priority=prio))
    time.sleep(0.2)
    print('x-max-priority=5, x-max-length=2, publish p1(1) p5(5) p3(3):', drain(n))


def probe_priority_ttl_heads():
    n = q('pttl', {'x-max-priority': 5})
    ch.basic_publish('', n, b'long-hi', pika.BasicProperties(priority=5, expiration='10000'))
    ch.basic_publish('', n, b'short-lo', pika.BasicProperties(priority=1, expiration='50'))
    time.sleep(0.4)
    cnt = ch.queue_declare(n, passive=True).method.message_count
    print('priority queue, expired low-priority head behind a live high one: count', cnt,
          'then', drain(n))


def probe_requeue_expired():
    n = q('rqx', {'x-message-ttl': 200})
    ch.basic_publish('', n, b'm1')
    ch.basic_publish('', n, b'm2')
    time.sleep(0.05)
    m, _, _ = ch.basic_get(n)
    time.sleep(0.4)
    ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.1)
    cnt = ch.queue_declare(n, passive=True).method.message_count
    print('x-message-ttl=200: m1 held 400 ms then requeued: count', cnt, drain(n))


for p in [probe_requeue_expired, probe_priority_drop_head, probe_priority_ttl_heads, probe_mandatory_reject_publish, probe_sac_handover,
          probe_ae_dead_end, probe_reject_publish_requeue, probe_xdeath_order,
          probe_consumer_priority, probe_e2e_durability, probe_expires_passive]:
    try:
        p()
    except Exception as e:  # noqa
        print(p.__name__, 'ERROR', repr(e))
        if ch.is_closed:
            ch = conn.channel()
for n in QS:
    try:
        ch.queue_delete(n)
    except Exception:
        ch = conn.channel()
for n in XS:
    try:
        ch.exchange_delete(n)
    except Exception:
        ch = conn.channel()
conn.close()
