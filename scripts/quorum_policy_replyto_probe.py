#!/usr/bin/env python3
"""Oracle probes for binding durability, direct reply-to, quorum queues, policies and long
error texts: ask a real RabbitMQ, print what it answers (recorded by hand in
docs/rabbitmq-observations.md, sections 17-21).

Usage: python3 scripts/quorum_policy_replyto_probe.py [probe-name-substring ...]
Env:
  AMQP_PORT   (default 5672)          the broker's AMQP port on 127.0.0.1 (guest/guest)
  RMQ_NODE    (default: rabbitmqctl's) the node name for rabbitmqctl -n
  RESTART_OK  (unset)                 set to 1 to let the durability probe restart the node
                                      (only ever on a private node: others use the shared one)
Everything happens in a vhost of its own (`warren-probe-<random>`), created with rabbitmqctl
and deleted at the end, policies included. Needs pika (pip install pika).
"""
import os
import subprocess
import sys
import time
import uuid

import pika

PORT = int(os.environ.get('AMQP_PORT', '5672'))
NODE = os.environ.get('RMQ_NODE')
VHOST = 'warren-probe-' + uuid.uuid4().hex[:6]
RUN = 'p'


def ctl(*args, check=True):
    cmd = ['rabbitmqctl'] + (['-n', NODE] if NODE else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError('%s: %s %s' % (' '.join(cmd), r.stdout, r.stderr))
    return r


def connect():
    params = pika.ConnectionParameters('127.0.0.1', PORT, VHOST,
                                       pika.PlainCredentials('guest', 'guest'))
    return pika.BlockingConnection(params)


def outcome(fn):
    """Runs fn(); returns 'OK', 'ch <code> <text>' or 'CONN <code> <text>'."""
    try:
        r = fn()
        return 'OK' if r is None else 'OK ' + str(r)
    except pika.exceptions.ChannelClosedByBroker as e:
        return 'ch %d %s' % (e.reply_code, e.reply_text)
    except pika.exceptions.ConnectionClosedByBroker as e:
        return 'CONN %d %s' % (e.reply_code, e.reply_text)
    except pika.exceptions.UnroutableError as e:
        return 'returned (basic.return %s)' % ', '.join(
            '%d %s' % (m.method.reply_code, m.method.reply_text) for m in e.messages)
    except pika.exceptions.NackError:
        return 'nacked'


def settle(conn, seconds=0.3):
    deadline = time.time() + seconds
    while time.time() < deadline:
        conn.process_data_events(time_limit=0.05)


def drain(ch, name, show_count=False):
    out = []
    while True:
        m, p, b = ch.basic_get(name, auto_ack=True)
        if m is None:
            return out
        s = b.decode() + ('(R)' if m.redelivered else '')
        if show_count and p.headers and 'x-delivery-count' in p.headers:
            s += '#%s' % p.headers['x-delivery-count']
        out.append(s)


def count(ch, name):
    return ch.queue_declare(name, passive=True).method.message_count


# --- 17. binding durability ---------------------------------------------------------------
def probe_durability():
    conn = connect()
    ch = conn.channel()
    names = []
    for xd in (True, False):
        for qd in (True, False):
            tag = ('D' if xd else 'T') + ('D' if qd else 'T')
            x, q = 'dur.x' + tag, 'dur.q' + tag
            ch.exchange_declare(x, 'direct', durable=xd)
            ch.queue_declare(q, durable=qd)
            r = outcome(lambda: ch.queue_bind(q, x, 'k'))
            ch.basic_publish(x, 'k', b'm', pika.BasicProperties(delivery_mode=2))
            time.sleep(0.1)
            print('queue bind exchange %s -> queue %s: %s, routed %s' % (
                'durable' if xd else 'transient', 'durable' if qd else 'transient', r,
                drain(ch, q)))
            names.append((x, q))
    for sd in (True, False):
        for dd in (True, False):
            tag = ('D' if sd else 'T') + ('D' if dd else 'T')
            s, d, q = 'dur.s' + tag, 'dur.d' + tag, 'dur.eq' + tag
            ch.exchange_declare(s, 'fanout', durable=sd)
            ch.exchange_declare(d, 'fanout', durable=dd)
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, d)
            r = outcome(lambda: ch.exchange_bind(d, s))
            ch.basic_publish(s, '', b'm')
            time.sleep(0.1)
            print('exchange bind source %s -> destination %s: %s, routed %s' % (
                'durable' if sd else 'transient', 'durable' if dd else 'transient', r,
                drain(ch, q)))
    # The common pub/sub shape: exclusive server-named queue on a durable exchange.
    q = ch.queue_declare('', exclusive=True).method.queue
    print('exclusive server-named queue bound to amq.topic:',
          outcome(lambda: ch.queue_bind(q, 'amq.topic', 'a.#')))
    ch.exchange_declare('dur.celeryev', 'topic', durable=True)
    q2 = 'celeryev.' + str(uuid.uuid4())
    ch.queue_declare(q2, durable=False, auto_delete=True,
                     arguments={'x-message-ttl': 5000, 'x-expires': 60000})
    print('celery shape (durable topic exchange, auto-delete transient queue):',
          outcome(lambda: ch.queue_bind(q2, 'dur.celeryev', 'worker.#')))
    before = ctl('list_bindings', '-p', VHOST, 'source_name', 'destination_name').stdout
    print('bindings before restart:\n' + before)
    conn.close()
    if os.environ.get('RESTART_OK') != '1':
        print('(restart not run: set RESTART_OK=1 on a private node)')
        return
    ctl('stop_app')
    ctl('start_app')
    time.sleep(2)
    after = ctl('list_bindings', '-p', VHOST, 'source_name', 'destination_name').stdout
    print('bindings after restart:\n' + after)
    print('queues after restart:',
          ctl('list_queues', '-p', VHOST, 'name', 'durable').stdout)
    print('exchanges after restart:',
          ctl('list_exchanges', '-p', VHOST, 'name', 'durable').stdout)


# --- 18. long reply texts -----------------------------------------------------------------
def probe_long_texts():
    conn = connect()
    ch = conn.channel()
    long_q = 'q' * 255
    r = outcome(lambda: ch.queue_declare(long_q, passive=True))
    print('passive declare of a missing 255-byte queue name: len(text)=%d tail=%r' % (
        len(r), r[-40:]))
    ch = conn.channel()
    ch.queue_declare(long_q, arguments={'x-max-length': 1})
    r = outcome(lambda: ch.queue_declare(long_q, arguments={'x-max-length': 2}))
    print('inequivalent redeclare of a 255-byte queue: len=%d text=%r' % (len(r), r))
    ch = conn.channel()
    ch.queue_delete(long_q)
    conn.close()


# --- 19. direct reply-to ------------------------------------------------------------------
REPLY = 'amq.rabbitmq.reply-to'


def probe_reply_to():
    server = connect()
    sch = server.channel()
    sch.queue_declare('rpc')
    conn = connect()
    ch = conn.channel()
    got = []
    tag = ch.basic_consume(REPLY, lambda c, m, p, b: got.append((m, p, b)), auto_ack=True)
    print('consume %s no_ack: OK tag %s' % (REPLY, tag))
    ch.basic_publish('', 'rpc', b'request',
                     pika.BasicProperties(reply_to=REPLY, correlation_id='c1'))
    time.sleep(0.1)
    m, p, b = sch.basic_get('rpc', auto_ack=True)
    print('request as the server sees it: reply_to=%r correlation_id=%r' % (
        p.reply_to, p.correlation_id))
    address = p.reply_to
    sch.basic_publish('', address, b'reply',
                      pika.BasicProperties(correlation_id=p.correlation_id, headers={'h': 1}))
    settle(conn)
    for m, p, b in got:
        print('reply delivered: exchange=%r routing_key=%r redelivered=%s tag=%s '
              'consumer_tag=%r body=%r props=%r' % (
                  m.exchange, m.routing_key, m.redelivered, m.delivery_tag, m.consumer_tag,
                  b, p))
    print('passive declare %s:' % REPLY,
          outcome(lambda: ch.queue_declare(REPLY, passive=True).method))
    c2 = conn.channel()
    print('passive declare of the address:',
          outcome(lambda: c2.queue_declare(address, passive=True).method))
    c2 = conn.channel()
    print('reply published twice more (2nd via mandatory):',
          outcome(lambda: sch.basic_publish('', address, b'r2')),
          outcome(lambda: sch.basic_publish('', address, b'r3', mandatory=True)))
    settle(conn)
    print('requester got', [b for _, _, b in got])
    # a second reply consumer on the same channel
    print('second consume on the same channel:',
          outcome(lambda: ch.basic_consume(REPLY, lambda *a: None, auto_ack=True)))
    conn.close()
    # errors
    conn = connect()
    ch = conn.channel()
    print('consume with ack:',
          outcome(lambda: ch.basic_consume(REPLY, lambda *a: None, auto_ack=False)))
    ch = conn.channel()
    print('consume exclusive no_ack:',
          outcome(lambda: ch.basic_consume(REPLY, lambda *a: None, auto_ack=True,
                                           exclusive=True)))
    ch = conn.channel()
    r = outcome(lambda: (ch.basic_publish('', 'rpc', b'x',
                                          pika.BasicProperties(reply_to=REPLY)),
                         ch.queue_declare('rpc', passive=True)))
    print('publish with reply_to=%s without a reply consumer: %s' % (REPLY, r))
    ch = conn.channel()
    t = ch.basic_consume(REPLY, lambda *a: None, auto_ack=True)
    ch.basic_cancel(t)
    r = outcome(lambda: (ch.basic_publish('', 'rpc', b'x',
                                          pika.BasicProperties(reply_to=REPLY)),
                         ch.queue_declare('rpc', passive=True)))
    print('publish with reply_to after the reply consumer was cancelled: %s' % r)
    ch = conn.channel()
    print('basic.get from %s:' % REPLY, outcome(lambda: ch.basic_get(REPLY)))
    ch = conn.channel()
    print('queue.declare (not passive) %s:' % REPLY,
          outcome(lambda: ch.queue_declare(REPLY).method))
    ch = conn.channel()
    print('queue.bind %s to amq.direct:' % REPLY,
          outcome(lambda: ch.queue_bind(REPLY, 'amq.direct', 'k')))
    ch = conn.channel()
    print('publish reply_to=%s.something:' % REPLY,
          outcome(lambda: (ch.basic_publish('', 'rpc', b'x', pika.BasicProperties(
              reply_to=REPLY + '.x')), ch.queue_declare('rpc', passive=True))))
    print('  rpc now holds', drain(sch, 'rpc'))
    # the requester's channel goes away
    c1 = conn.channel()
    c1.basic_consume(REPLY, lambda *a: None, auto_ack=True)
    c1.basic_publish('', 'rpc', b'req', pika.BasicProperties(reply_to=REPLY))
    time.sleep(0.1)
    _, p, _ = sch.basic_get('rpc', auto_ack=True)
    c1.close()
    sch.confirm_delivery()
    print('reply to a closed channel, not mandatory:',
          outcome(lambda: sch.basic_publish('', p.reply_to, b'late')))
    r = outcome(lambda: sch.basic_publish('', p.reply_to, b'late', mandatory=True))
    print('reply to a closed channel, mandatory (confirms on):', r)
    c3 = conn.channel()
    print('passive declare of the address after its channel closed:',
          outcome(lambda: c3.queue_declare(p.reply_to, passive=True).method))
    c3 = conn.channel()
    print('passive declare of %s on a channel without a reply consumer:' % REPLY,
          outcome(lambda: c3.queue_declare(REPLY, passive=True).method))
    c3 = conn.channel()
    print('passive declare of a malformed address:',
          outcome(lambda: c3.queue_declare(REPLY + '.bogus', passive=True).method))
    c3 = conn.channel()
    print('basic.consume from an address:',
          outcome(lambda: c3.basic_consume(p.reply_to, lambda *a: None, auto_ack=True)))
    bogus = REPLY + '.bogus-token'
    print('reply to a malformed address, mandatory:',
          outcome(lambda: sch.basic_publish('', bogus, b'x', mandatory=True)))
    print('reply to %s itself, mandatory:' % REPLY,
          outcome(lambda: sch.basic_publish('', REPLY, b'x', mandatory=True)))
    print('reply via amq.direct to the address, mandatory:',
          outcome(lambda: sch.basic_publish('amq.direct', p.reply_to, b'x', mandatory=True)))
    sch = server.channel()
    sch.queue_delete('rpc')
    conn.close()
    server.close()


def probe_reply_to_channel_close_connection():
    # the requester's whole connection closes
    server = connect()
    sch = server.channel()
    sch.queue_declare('rpc2')
    conn = connect()
    ch = conn.channel()
    ch.basic_consume(REPLY, lambda *a: None, auto_ack=True)
    ch.basic_publish('', 'rpc2', b'req', pika.BasicProperties(reply_to=REPLY))
    time.sleep(0.1)
    _, p, _ = sch.basic_get('rpc2', auto_ack=True)
    conn.close()
    print('reply after the requester connection closed:',
          outcome(lambda: sch.basic_publish('', p.reply_to, b'late')))
    sch.queue_delete('rpc2')
    # reply and request on one channel, confirms on, to itself
    conn = connect()
    ch = conn.channel()
    got = []
    ch.basic_consume(REPLY, lambda c, m, pr, b: got.append(b), auto_ack=True)
    ch.queue_declare('rpc3')
    ch.confirm_delivery()
    ch.basic_publish('', 'rpc3', b'req', pika.BasicProperties(reply_to=REPLY))
    _, p, _ = ch.basic_get('rpc3', auto_ack=True)
    ch.basic_publish('', p.reply_to, b'self-reply')
    settle(conn)
    print('request and reply on one channel (confirms on):', got,
          'address shape:', p.reply_to[:len(REPLY) + 1] + '<%d chars>' % (
              len(p.reply_to) - len(REPLY) - 1))
    ch.queue_delete('rpc3')
    conn.close()
    server.close()


# --- 20. quorum queues ----------------------------------------------------------------------
def probe_quorum_declare():
    conn = connect()
    qq = {'x-queue-type': 'quorum'}

    def declare(name, durable=True, exclusive=False, auto_delete=False, args=None):
        ch = conn.channel()
        a = dict(qq)
        a.update(args or {})
        r = outcome(lambda: ch.queue_declare(name, durable=durable, exclusive=exclusive,
                                             auto_delete=auto_delete, arguments=a))
        if r.startswith('OK'):
            conn.channel().queue_delete(name if name else r.split('queue=')[1].split("'")[0])
            return 'OK'
        return r

    print('durable=false:', declare('qq.nd', durable=False))
    print('exclusive:', declare('qq.ex', exclusive=True))
    print('auto_delete:', declare('qq.ad', auto_delete=True))
    print('server-named (empty name):', declare(''))
    print('durable, no args:', declare('qq.ok'))
    print('durable=false + exclusive:', declare('qq.ne', durable=False, exclusive=True))
    print('exclusive + auto_delete:', declare('qq.ea', exclusive=True, auto_delete=True))
    print('durable=false + x-max-priority:', declare('qq.np', durable=False,
                                                     args={'x-max-priority': 5}))
    print('x-max-priority + x-message-ttl=-1:', declare('qq.pt', args={
        'x-max-priority': 5, 'x-message-ttl': -1}))
    print('x-overflow=bogus:', declare('qq.ob', args={'x-overflow': 'bogus'}))
    print('x-dead-letter-routing-key without DLX:',
          declare('qq.rk', args={'x-dead-letter-routing-key': 'k'}))
    print('x-queue-type=QUORUM:', declare('qq.uc', args={'x-queue-type': 'QUORUM'}))
    cases = [
        ('x-max-priority', 5), ('x-queue-mode', 'lazy'), ('x-message-ttl', 1000),
        ('x-expires', 100000), ('x-max-length', 10), ('x-max-length-bytes', 1000),
        ('x-overflow', 'drop-head'), ('x-overflow', 'reject-publish'),
        ('x-overflow', 'reject-publish-dlx'), ('x-dead-letter-exchange', 'dlx'),
        ('x-dead-letter-routing-key', 'k'), ('x-delivery-limit', 3),
        ('x-delivery-limit', -1), ('x-delivery-limit', 0), ('x-delivery-limit', 'x'),
        ('x-single-active-consumer', True), ('x-max-in-memory-length', 10),
        ('x-max-in-memory-bytes', 100), ('x-quorum-initial-group-size', 3),
        ('x-dead-letter-strategy', 'at-least-once'), ('x-dead-letter-strategy', 'bogus'),
        ('x-queue-master-locator', 'min-masters'), ('x-ha-policy', 'all'),
        ('x-foo', 'bar'), ('x-message-ttl', -1), ('x-max-length', -1),
        ('x-queue-version', 2), ('x-stream-max-segment-size-bytes', 100),
        ('x-max-age', '1D'),
    ]
    for arg, value in cases:
        args = {arg: value}
        if arg == 'x-dead-letter-routing-key':
            args['x-dead-letter-exchange'] = 'dlx'
        print('quorum with %s=%r: %s' % (arg, value, declare('qq.arg', args=args)))
    for arg, value in [('x-delivery-limit', 3), ('x-dead-letter-strategy', 'at-least-once'),
                       ('x-max-in-memory-length', 10), ('x-max-in-memory-bytes', 10),
                       ('x-quorum-initial-group-size', 3), ('x-max-age', '1D'),
                       ('x-stream-max-segment-size-bytes', 100), ('x-queue-leader-locator',
                                                                  'balanced'),
                       ('x-queue-master-locator', 'min-masters'), ('x-queue-version', 2),
                       ('x-initial-cluster-size', 1), ('x-ha-policy', 'all')]:
        c = conn.channel()
        r = outcome(lambda: c.queue_declare('cq.arg', arguments={arg: value}))
        print('classic with %s=%r: %s' % (arg, value, r if not r.startswith('OK') else 'OK'))
        if r.startswith('OK'):
            conn.channel().queue_delete('cq.arg')
    ch = conn.channel()
    ch.queue_declare('cq.t2', arguments={'x-queue-type': 'classic'})
    print('classic declared with x-queue-type=classic, redeclared without:',
          outcome(lambda: conn.channel().queue_declare('cq.t2')))
    conn.channel().queue_delete('cq.t2')
    ch = conn.channel()
    ch.queue_declare('qq.eq', durable=True, arguments=dict(qq))
    for args in ({}, {'x-queue-type': 'classic'}, {'x-queue-type': 'quorum'},
                 {'x-queue-type': 'quorum', 'x-delivery-limit': 2}):
        c = conn.channel()
        print('redeclare quorum queue with %r: %s' % (
            args, outcome(lambda: c.queue_declare('qq.eq', durable=True, arguments=args))))
    c = conn.channel()
    print('passive declare of a quorum queue:',
          outcome(lambda: c.queue_declare('qq.eq', passive=True).method))
    c = conn.channel()
    c.queue_delete('qq.eq')
    ch = conn.channel()
    ch.queue_declare('cq.eq', durable=True)
    c = conn.channel()
    print('redeclare classic queue with x-queue-type=quorum:',
          outcome(lambda: c.queue_declare('cq.eq', durable=True, arguments=dict(qq))))
    c = conn.channel()
    print('redeclare classic queue with x-queue-type=classic:',
          outcome(lambda: c.queue_declare('cq.eq', durable=True,
                                          arguments={'x-queue-type': 'classic'})))
    c = conn.channel()
    c.queue_delete('cq.eq')
    for durable, exclusive in ((False, False), (True, False), (True, True)):
        c = conn.channel()
        r = outcome(lambda: c.queue_declare('sq.t', durable=durable, exclusive=exclusive,
                                            arguments={'x-queue-type': 'stream'}))
        print('stream durable=%s exclusive=%s: %s' % (durable, exclusive, r))
        if r.startswith('OK'):
            conn.channel().queue_delete('sq.t')
    c = conn.channel()
    print('x-queue-type=classic non-durable:',
          outcome(lambda: c.queue_declare('cq.t', arguments={'x-queue-type': 'classic'})))
    conn.channel().queue_delete('cq.t')
    conn.close()


def basic_nack(ch, tag, requeue=True):
    ch.basic_nack(tag, requeue=requeue)


def probe_quorum_delivery():
    conn = connect()
    ch = conn.channel()
    ch.exchange_declare('qq.dlx', 'fanout')
    ch.queue_declare('qq.dlq')
    ch.queue_bind('qq.dlq', 'qq.dlx')
    ch.queue_declare('qq.lim', durable=True, arguments={
        'x-queue-type': 'quorum', 'x-delivery-limit': 2, 'x-dead-letter-exchange': 'qq.dlx'})
    ch.basic_publish('', 'qq.lim', b'm1', pika.BasicProperties(headers={'h': 1}))
    ch.basic_publish('', 'qq.lim', b'm2')
    time.sleep(0.2)
    for round_ in range(4):
        m, p, b = ch.basic_get('qq.lim')
        if m is None:
            print('  round %d: queue empty' % round_)
            break
        print('  round %d: got %s redelivered=%s headers=%r; nack requeue' % (
            round_, b, m.redelivered, p.headers))
        ch.basic_nack(m.delivery_tag, requeue=True)
        time.sleep(0.1)
    print('queue now', drain(ch, 'qq.lim', show_count=True) if False else count(ch, 'qq.lim'))
    m, p, b = ch.basic_get('qq.dlq', auto_ack=True)
    if m:
        print('dead-lettered: body=%s redelivered=%s headers=%r' % (b, m.redelivered,
                                                                   p.headers))
    print('rest of qq.lim:', [(x) for x in drain(ch, 'qq.lim', show_count=True)])
    print('rest of dlq:', drain(ch, 'qq.dlq'))
    # the limit through different returns: reject, channel close, basic.recover
    ch.queue_purge('qq.lim')
    ch.basic_publish('', 'qq.lim', b'r1')
    time.sleep(0.1)
    for how in ('reject', 'close', 'recover', 'nack'):
        c = conn.channel()
        m, p, b = c.basic_get('qq.lim')
        if m is None:
            print('  via %s: queue empty' % how)
            break
        print('  via %s: got %s redelivered=%s x-delivery-count=%r' % (
            how, b, m.redelivered, (p.headers or {}).get('x-delivery-count')))
        if how == 'reject':
            c.basic_reject(m.delivery_tag, requeue=True)
        elif how == 'close':
            c.close()
        elif how == 'recover':
            c.basic_recover(requeue=True)
        else:
            c.basic_nack(m.delivery_tag, requeue=True)
        time.sleep(0.2)
    m, p, b = ch.basic_get('qq.dlq', auto_ack=True)
    print('dlq after reject/close/recover/nack:', b, p.headers if m else None)
    ch.queue_delete('qq.lim')
    # without a dead-letter exchange; without a limit
    ch.queue_declare('qq.nodlx', durable=True, arguments={
        'x-queue-type': 'quorum', 'x-delivery-limit': 0})
    ch.basic_publish('', 'qq.nodlx', b'z')
    time.sleep(0.1)
    m, p, b = ch.basic_get('qq.nodlx')
    ch.basic_nack(m.delivery_tag, requeue=True)
    time.sleep(0.2)
    print('limit 0, one nack: queue', count(ch, 'qq.nodlx'))
    ch.queue_delete('qq.nodlx')
    for limit in (-1, 'x'):
        ch.queue_declare('qq.odd', durable=True, arguments={
            'x-queue-type': 'quorum', 'x-delivery-limit': limit})
        ch.basic_publish('', 'qq.odd', b'z')
        time.sleep(0.1)
        n = 0
        for _ in range(4):
            m, p, b = ch.basic_get('qq.odd')
            if m is None:
                break
            n += 1
            ch.basic_nack(m.delivery_tag, requeue=True)
            time.sleep(0.1)
        print('x-delivery-limit=%r: delivered %d times in 4 tries' % (limit, n))
        ch.queue_delete('qq.odd')
    ch.queue_declare('qq.rpd', durable=True, arguments={
        'x-queue-type': 'quorum', 'x-max-length': 1, 'x-overflow': 'reject-publish-dlx',
        'x-dead-letter-exchange': 'qq.dlx'})
    c = conn.channel()
    c.confirm_delivery()
    res = [outcome(lambda: c.basic_publish('', 'qq.rpd', b)) for b in (b'k1', b'k2')]
    time.sleep(0.2)
    print('quorum reject-publish-dlx max-length 1, 2 confirmed publishes:', res,
          'queue', drain(ch, 'qq.rpd'), 'dlq', drain(ch, 'qq.dlq'))
    ch.queue_delete('qq.rpd')
    ch.queue_declare('qq.dh', durable=True, arguments={
        'x-queue-type': 'quorum', 'x-max-length': 1, 'x-dead-letter-exchange': 'qq.dlx'})
    for b in (b'h1', b'h2'):
        ch.basic_publish('', 'qq.dh', b)
    time.sleep(0.2)
    print('quorum drop-head max-length 1 with DLX:', drain(ch, 'qq.dh'), 'dlq',
          drain(ch, 'qq.dlq'))
    ch.queue_delete('qq.dh')
    ch.queue_declare('qq.free', durable=True, arguments={'x-queue-type': 'quorum'})
    for b in (b'a', b'b', b'c'):
        ch.basic_publish('', 'qq.free', b)
    time.sleep(0.1)
    m, p, b = ch.basic_get('qq.free')
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, b = ch.basic_get('qq.free')
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.1)
    print('no limit: nack a, reject b (no requeue):', drain(ch, 'qq.free', show_count=True))
    # consumer view of a requeue
    for b in (b'c1', b'c2', b'c3'):
        ch.basic_publish('', 'qq.free', b)
    got = []
    c = conn.channel()
    c.basic_qos(prefetch_count=1)
    state = {'rejected': False}

    def on(ch_, m, p, b):
        got.append('%s%s#%s' % (b.decode(), '(R)' if m.redelivered else '',
                                (p.headers or {}).get('x-delivery-count')))
        if b == b'c1' and not state['rejected']:
            state['rejected'] = True
            ch_.basic_reject(m.delivery_tag, requeue=True)
        else:
            ch_.basic_ack(m.delivery_tag)
    c.basic_consume('qq.free', on)
    settle(conn, 0.8)
    print('consumer (prefetch 1) rejects c1 once:', got)
    c.close()
    # message TTL on quorum queues
    ch.queue_declare('qq.ttl', durable=True, arguments={'x-queue-type': 'quorum',
                                                        'x-message-ttl': 100})
    ch.basic_publish('', 'qq.ttl', b't')
    time.sleep(0.4)
    print('quorum x-message-ttl=100 after 400 ms: count', count(ch, 'qq.ttl'))
    ch.queue_delete('qq.ttl')
    ch.queue_declare('qq.pri', durable=True, arguments={'x-queue-type': 'quorum'})
    for body, prio in [('p1', 1), ('p9', 9)]:
        ch.basic_publish('', 'qq.pri', body.encode(), pika.BasicProperties(priority=prio))
    time.sleep(0.1)
    print('quorum, priorities 1 then 9:', drain(ch, 'qq.pri'))
    ch.basic_publish('', 'qq.pri', b'e', pika.BasicProperties(expiration='50'))
    time.sleep(0.3)
    print('quorum, per-message expiration 50 after 300 ms: count', count(ch, 'qq.pri'))
    ch.queue_delete('qq.pri')
    ch.queue_delete('qq.free')
    ch.queue_delete('qq.dlq')
    ch.exchange_delete('qq.dlx')
    conn.close()


# --- 21. policies ---------------------------------------------------------------------------
def set_policy(name, pattern, definition, apply_to='queues', priority=0):
    import json
    return ctl('set_policy', '-p', VHOST, '--priority', str(priority), '--apply-to', apply_to,
               name, pattern, json.dumps(definition), check=False)


def clear_policy(name):
    ctl('clear_policy', '-p', VHOST, name, check=False)


def effective(queue):
    out = ctl('list_queues', '-p', VHOST, 'name', 'policy',
              '--no-table-headers', '--quiet').stdout
    for line in out.splitlines():
        if line.split('\t')[0] == queue:
            return line.split('\t')[1:]
    return None


def probe_policy_validation():
    for definition in ({'message-ttl': -1}, {'message-ttl': 'x'}, {'max-length': -1},
                       {'expires': 0}, {'overflow': 'bogus'}, {'foo': 1},
                       {'dead-letter-routing-key': 'k'}, {'delivery-limit': 'x'},
                       {'alternate-exchange': 1}, {'queue-mode': 'bogus'},
                       {'max-priority': 5}, {'single-active-consumer': True},
                       {'dead-letter-exchange': 'd', 'message-ttl': 10}, {}):
        r = set_policy('val', '.*', definition)
        print('set_policy %r: rc=%d %s' % (definition, r.returncode,
                                          (r.stdout + r.stderr).strip().replace('\n', ' | ')))
        clear_policy('val')
    r = ctl('set_policy', '-p', VHOST, '--apply-to', 'bogus', 'val', '.*',
            '{"message-ttl":1}', check=False)
    print('apply-to bogus: rc=%d %s' % (r.returncode, (r.stdout + r.stderr).strip()))
    r = ctl('set_policy', '-p', VHOST, 'val', '(', '{"message-ttl":1}', check=False)
    print('bad pattern "(": rc=%d %s' % (r.returncode, (r.stdout + r.stderr).strip()))
    clear_policy('val')
    r = ctl('clear_policy', '-p', VHOST, 'never-set', check=False)
    print('clear_policy of a missing policy: rc=%d %s' % (r.returncode,
                                                          (r.stdout + r.stderr).strip()))
    print(ctl('list_policies', '-p', VHOST).stdout)


def probe_policy_keys():
    """Which keys take effect on classic and quorum queues, observed by behaviour."""
    conn = connect()
    ch = conn.channel()
    ch.exchange_declare('pol.dlx', 'fanout')
    ch.queue_declare('pol.dlq')
    ch.queue_bind('pol.dlq', 'pol.dlx')
    for kind in ('classic', 'quorum'):
        args = {'x-queue-type': kind}
        name = 'pk.%s.ml' % kind
        set_policy('pk', '^pk\\.', {'max-length': 2, 'message-ttl': 60000})
        ch.queue_declare(name, durable=True, arguments=args)
        for i in range(4):
            ch.basic_publish('', name, b'm%d' % i)
        time.sleep(0.2)
        print('%s: policy max-length=2: queue holds %s; effective %s' % (
            kind, drain(ch, name), effective(name)))
        set_policy('pk', '^pk\\.', {'message-ttl': 100, 'dead-letter-exchange': 'pol.dlx'})
        time.sleep(0.3)
        ch.basic_publish('', name, b'ttl')
        time.sleep(0.5)
        print('%s: policy message-ttl=100 + DLX: queue %d, dlq %s' % (
            kind, count(ch, name), drain(ch, 'pol.dlq')))
        set_policy('pk', '^pk\\.', {'max-length-bytes': 4})
        time.sleep(0.3)
        for b in (b'aaa', b'bbb'):
            ch.basic_publish('', name, b)
        time.sleep(0.2)
        print('%s: policy max-length-bytes=4, 2x3 bytes: %s' % (kind, drain(ch, name)))
        set_policy('pk', '^pk\\.', {'max-length': 1, 'overflow': 'reject-publish'})
        time.sleep(0.3)
        c = conn.channel()
        c.confirm_delivery()
        res = []
        for b in (b'o1', b'o2'):
            try:
                c.basic_publish('', name, b)
                res.append('ack')
            except pika.exceptions.NackError:
                res.append('nack')
        print('%s: policy max-length=1 overflow=reject-publish: %s, queue %s' % (
            kind, res, drain(ch, name)))
        c.close()
        set_policy('pk', '^pk\\.', {'delivery-limit': 1, 'dead-letter-exchange': 'pol.dlx'})
        time.sleep(0.3)
        ch.basic_publish('', name, b'dl')
        time.sleep(0.1)
        seen = []
        for _ in range(3):
            m, p, b = ch.basic_get(name)
            if m is None:
                break
            seen.append((p.headers or {}).get('x-delivery-count'))
            ch.basic_nack(m.delivery_tag, requeue=True)
            time.sleep(0.15)
        print('%s: policy delivery-limit=1: deliveries seen (x-delivery-count) %s, dlq %s' % (
            kind, seen, drain(ch, 'pol.dlq')))
        ch.queue_purge(name)
        set_policy('pk', '^pk\\.', {'expires': 300})
        time.sleep(1.0)
        gone = outcome(lambda: conn.channel().queue_declare(name, passive=True))
        print('%s: policy expires=300 after 1 s unused: %s' % (kind, gone))
        clear_policy('pk')
        conn.channel().queue_delete(name)
        ch = conn.channel()
    set_policy('pk', '^pk\\.', {'queue-mode': 'lazy'})
    ch.queue_declare('pk.lazy', durable=True)
    print('classic: queue-mode=lazy policy effective:', effective('pk.lazy'))
    clear_policy('pk')
    ch.queue_delete('pk.lazy')
    # exchange policies
    ch.exchange_declare('pe.main', 'direct')
    ch.exchange_declare('pe.ae', 'fanout')
    ch.queue_declare('pe.aeq')
    ch.queue_bind('pe.aeq', 'pe.ae')
    set_policy('pe', '^pe\\.main$', {'alternate-exchange': 'pe.ae'}, apply_to='exchanges')
    time.sleep(0.2)
    ch.basic_publish('pe.main', 'nowhere', b'to-ae')
    time.sleep(0.1)
    print('exchange policy alternate-exchange: aeq', drain(ch, 'pe.aeq'))
    set_policy('pe', '^pe\\.main$', {'alternate-exchange': 'pe.ae'}, apply_to='queues')
    time.sleep(0.2)
    ch.basic_publish('pe.main', 'nowhere', b'to-ae2')
    time.sleep(0.1)
    print('same policy apply-to queues: aeq', drain(ch, 'pe.aeq'))
    set_policy('pe', '^pe\\.main$', {'alternate-exchange': 'pe.ae'}, apply_to='all')
    time.sleep(0.2)
    ch.basic_publish('pe.main', 'nowhere', b'to-ae3')
    time.sleep(0.1)
    print('same policy apply-to all: aeq', drain(ch, 'pe.aeq'))
    set_policy('pe', '^pe\\.', {'max-length': 1}, apply_to='exchanges')
    ch.queue_declare('pe.q')
    for b in (b'1', b'2'):
        ch.basic_publish('', 'pe.q', b)
    time.sleep(0.1)
    print('queue key in an exchanges-only policy: queue holds', drain(ch, 'pe.q'))
    clear_policy('pe')
    ch.queue_delete('pe.q')
    ch.exchange_declare('pe.argae', 'direct', arguments={'alternate-exchange': 'pe.ae2'})
    ch.exchange_declare('pe.ae2', 'fanout')
    ch.queue_declare('pe.ae2q')
    ch.queue_bind('pe.ae2q', 'pe.ae2')
    set_policy('pe', '^pe\\.argae$', {'alternate-exchange': 'pe.ae'}, apply_to='exchanges')
    time.sleep(0.2)
    ch.basic_publish('pe.argae', 'nowhere', b'which')
    time.sleep(0.1)
    print('alternate-exchange argument vs policy: arg AE got', drain(ch, 'pe.ae2q'),
          'policy AE got', drain(ch, 'pe.aeq'))
    clear_policy('pe')
    for n in ('pe.aeq', 'pe.ae2q', 'pol.dlq'):
        ch.queue_delete(n)
    for n in ('pe.main', 'pe.ae', 'pe.argae', 'pe.ae2', 'pol.dlx'):
        ch.exchange_delete(n)
    conn.close()


def probe_policy_precedence():
    conn = connect()
    ch = conn.channel()
    set_policy('low', '^pp\\.', {'max-length': 1}, priority=1)
    set_policy('high', '^pp\\.a', {'max-length': 3}, priority=5)
    ch.queue_declare('pp.a')
    ch.queue_declare('pp.b')
    for i in range(5):
        ch.basic_publish('', 'pp.a', b'%d' % i)
        ch.basic_publish('', 'pp.b', b'%d' % i)
    time.sleep(0.2)
    print('priorities 1 (max-length 1, ^pp.) and 5 (max-length 3, ^pp.a): pp.a %s %s, pp.b %s'
          ' %s' % (drain(ch, 'pp.a'), effective('pp.a'), drain(ch, 'pp.b'), effective('pp.b')))
    set_policy('high', '^pp\\.a', {'message-ttl': 60000}, priority=5)
    time.sleep(0.2)
    for i in range(5):
        ch.basic_publish('', 'pp.a', b'%d' % i)
    time.sleep(0.2)
    print('higher policy without max-length (keys do not merge?): pp.a %s %s' % (
        drain(ch, 'pp.a'), effective('pp.a')))
    clear_policy('low')
    clear_policy('high')
    set_policy('b-pol', '^pp\\.', {'max-length': 2}, priority=3)
    set_policy('a-pol', '^pp\\.', {'max-length': 4}, priority=3)
    time.sleep(0.2)
    for i in range(5):
        ch.basic_publish('', 'pp.a', b'%d' % i)
    time.sleep(0.2)
    print('equal priorities a-pol (4) and b-pol (2): pp.a %s %s' % (
        drain(ch, 'pp.a'), effective('pp.a')))
    clear_policy('a-pol')
    clear_policy('b-pol')
    set_policy('sub', 'p\\.a', {'max-length': 1})
    time.sleep(0.2)
    print('pattern "p\\.a" (unanchored) on pp.a:', effective('pp.a'))
    clear_policy('sub')
    set_policy('amq', '.*', {'max-length': 1})
    q = ch.queue_declare('', exclusive=True).method.queue
    print('pattern ".*" on a server-named exclusive queue:', effective(q))
    clear_policy('amq')
    ch.queue_delete('pp.a')
    ch.queue_delete('pp.b')
    conn.close()


def probe_policy_with_arguments():
    """Per key: which wins when a queue has both the argument and a policy."""
    conn = connect()
    ch = conn.channel()
    ch.exchange_declare('pa.dlx.arg', 'fanout')
    ch.exchange_declare('pa.dlx.pol', 'fanout')
    for n in ('arg', 'pol'):
        ch.queue_declare('pa.dlq.' + n)
        ch.queue_bind('pa.dlq.' + n, 'pa.dlx.' + n)
    cases = [
        ('max-length', {'x-max-length': 3}, {'max-length': 1}),
        ('max-length', {'x-max-length': 1}, {'max-length': 3}),
        ('max-length-bytes', {'x-max-length-bytes': 3}, {'max-length-bytes': 1}),
        ('max-length-bytes', {'x-max-length-bytes': 1}, {'max-length-bytes': 3}),
        ('message-ttl', {'x-message-ttl': 60000}, {'message-ttl': 100}),
        ('message-ttl', {'x-message-ttl': 100}, {'message-ttl': 60000}),
        ('overflow', {'x-max-length': 1, 'x-overflow': 'reject-publish'},
         {'overflow': 'drop-head'}),
        ('overflow', {'x-max-length': 1, 'x-overflow': 'drop-head'},
         {'overflow': 'reject-publish'}),
        ('dead-letter-exchange', {'x-dead-letter-exchange': 'pa.dlx.arg'},
         {'dead-letter-exchange': 'pa.dlx.pol'}),
        ('expires', {'x-expires': 300}, {'expires': 60000}),
        ('expires', {'x-expires': 60000}, {'expires': 300}),
    ]
    for i, (key, args, definition) in enumerate(cases):
        name = 'pa.%d' % i
        set_policy('pa', '^pa\\.%d$' % i, definition)
        ch.queue_declare(name, arguments=args)
        c = conn.channel()
        c.confirm_delivery()
        acks = []
        for b in (b'a', b'b', b'c'):
            try:
                c.basic_publish('', name, b)
                acks.append('ack')
            except pika.exceptions.NackError:
                acks.append('nack')
        c.close()
        if key == 'dead-letter-exchange':
            m, _, _ = ch.basic_get(name)
            ch.basic_reject(m.delivery_tag, requeue=False)
        time.sleep(0.5 if key != 'expires' else 1.0)
        gone = outcome(lambda: conn.channel().queue_declare(name, passive=True))
        if gone.startswith('ch'):
            print('%s: arg %r policy %r -> queue deleted' % (key, args, definition))
            ch = conn.channel()
        else:
            print('%s: arg %r policy %r -> queue %s publishes %s dlq arg %s pol %s; eff %s' % (
                key, args, definition, drain(ch, name), acks, drain(ch, 'pa.dlq.arg'),
                drain(ch, 'pa.dlq.pol'), effective(name)))
            ch.queue_delete(name)
        clear_policy('pa')
    set_policy('pa', '^pa\\.rk$', {'dead-letter-exchange': 'pa.dlx.pol',
                                  'dead-letter-routing-key': 'polkey'})
    ch.queue_declare('pa.rk', arguments={'x-dead-letter-routing-key': 'argkey',
                                         'x-dead-letter-exchange': 'pa.dlx.arg'})
    ch.basic_publish('', 'pa.rk', b'x')
    time.sleep(0.1)
    m, _, _ = ch.basic_get('pa.rk')
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.2)
    m, _, _ = ch.basic_get('pa.dlq.arg', auto_ack=True)
    m2, _, _ = ch.basic_get('pa.dlq.pol', auto_ack=True)
    print('DLX and DLRK both as arg and policy: arg dlq key %r, pol dlq key %r' % (
        m and m.routing_key, m2 and m2.routing_key))
    ch.queue_delete('pa.rk')
    clear_policy('pa')
    # delivery-limit on quorum: arg vs policy
    for args, definition in (({'x-delivery-limit': 5}, {'delivery-limit': 1}),
                             ({'x-delivery-limit': 1}, {'delivery-limit': 5})):
        set_policy('pa', '^pa\\.dl$', dict(definition, **{'dead-letter-exchange': 'pa.dlx.pol'}))
        a = dict(args, **{'x-queue-type': 'quorum'})
        ch.queue_declare('pa.dl', durable=True, arguments=a)
        ch.basic_publish('', 'pa.dl', b'x')
        time.sleep(0.2)
        n = 0
        for _ in range(8):
            m, p, b = ch.basic_get('pa.dl')
            if m is None:
                break
            n += 1
            ch.basic_nack(m.delivery_tag, requeue=True)
            time.sleep(0.15)
        print('delivery-limit arg %r policy %r: delivered %d times; dlq %s' % (
            args, definition, n, drain(ch, 'pa.dlq.pol')))
        ch.queue_delete('pa.dl')
        clear_policy('pa')
    for n in ('arg', 'pol'):
        ch.queue_delete('pa.dlq.' + n)
        ch.exchange_delete('pa.dlx.' + n)
    conn.close()


def probe_policy_live_change():
    conn = connect()
    ch = conn.channel()
    ch.queue_declare('pl.q')
    for i in range(5):
        ch.basic_publish('', 'pl.q', b'm%d' % i)
    time.sleep(0.1)
    set_policy('pl', '^pl\\.', {'max-length': 2})
    time.sleep(0.5)
    print('5 ready, then policy max-length=2: count', count(ch, 'pl.q'))
    set_policy('pl', '^pl\\.', {'max-length': 4})
    for i in range(5, 8):
        ch.basic_publish('', 'pl.q', b'm%d' % i)
    time.sleep(0.3)
    print('policy changed to max-length=4, 3 more published:', drain(ch, 'pl.q'))
    for i in range(3):
        ch.basic_publish('', 'pl.q', b'old%d' % i)
    time.sleep(0.1)
    set_policy('pl', '^pl\\.', {'message-ttl': 100})
    time.sleep(0.4)
    ch.basic_publish('', 'pl.q', b'new')
    time.sleep(0.4)
    print('3 published, then policy message-ttl=100, 1 published; after 400 ms:',
          drain(ch, 'pl.q'))
    clear_policy('pl')
    time.sleep(0.3)
    for i in range(5):
        ch.basic_publish('', 'pl.q', b'c%d' % i)
    time.sleep(0.2)
    print('policy cleared, 5 published: count', count(ch, 'pl.q'))
    ch.queue_purge('pl.q')
    ch.exchange_declare('pl.dlx', 'fanout')
    ch.queue_declare('pl.dlq')
    ch.queue_bind('pl.dlq', 'pl.dlx')
    ch.basic_publish('', 'pl.q', b'held')
    time.sleep(0.1)
    m, _, _ = ch.basic_get('pl.q')
    set_policy('pl', '^pl\\.q$', {'dead-letter-exchange': 'pl.dlx'})
    time.sleep(0.3)
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.2)
    print('message held, then policy DLX set, then rejected: dlq', drain(ch, 'pl.dlq'))
    clear_policy('pl')
    # a policy applied to a queue declared afterwards; a policy removed under it
    set_policy('pl', '^pl\\.late$', {'max-length': 1})
    ch.queue_declare('pl.late')
    for i in range(3):
        ch.basic_publish('', 'pl.late', b'%d' % i)
    time.sleep(0.2)
    print('policy set before the declare: count', count(ch, 'pl.late'))
    # priority change flips which policy applies
    set_policy('pl2', '^pl\\.late$', {'max-length': 3}, priority=0)
    set_policy('pl', '^pl\\.late$', {'max-length': 1}, priority=1)
    time.sleep(0.2)
    print('two policies, effective:', effective('pl.late'))
    set_policy('pl2', '^pl\\.late$', {'max-length': 3}, priority=2)
    time.sleep(0.2)
    print('pl2 raised to priority 2, effective:', effective('pl.late'))
    clear_policy('pl')
    clear_policy('pl2')
    for n in ('pl.q', 'pl.dlq', 'pl.late'):
        ch.queue_delete(n)
    ch.exchange_delete('pl.dlx')
    conn.close()


PROBES = [probe_durability, probe_long_texts, probe_reply_to,
          probe_reply_to_channel_close_connection, probe_quorum_declare,
          probe_quorum_delivery, probe_policy_validation, probe_policy_keys,
          probe_policy_precedence, probe_policy_with_arguments, probe_policy_live_change]


def main():
    wanted = sys.argv[1:]
    ctl('add_vhost', VHOST)
    ctl('set_permissions', '-p', VHOST, 'guest', '.*', '.*', '.*')
    try:
        for p in PROBES:
            if wanted and not any(w in p.__name__ for w in wanted):
                continue
            print('=== %s' % p.__name__)
            try:
                p()
            except Exception as e:  # noqa: BLE001 - a probe failing is an observation too
                print('%s FAILED: %r' % (p.__name__, e))
    finally:
        ctl('delete_vhost', VHOST)


if __name__ == '__main__':
    main()
