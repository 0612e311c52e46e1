#!/usr/bin/env python3
"""Oracle probes: ask a real RabbitMQ how it behaves, print observations.

Usage: python3 scripts/rabbitmq_probe.py [probe-name-substring ...]
Env: AMQP_HOST (default 127.0.0.1:5672), AMQP_USER/AMQP_PASS (guest/guest).
Needs: pip install amqp  (py-amqp). Every entity name gets a random per-run
prefix; everything declared is deleted at the end.
Results are written to docs/rabbitmq-observations.md by hand from this output.
"""
import os
import struct
import sys
import time
import uuid

import amqp
from amqp import serialization

HOST = os.environ.get('AMQP_HOST', '127.0.0.1:5672')
USER = os.environ.get('AMQP_USER', 'guest')
PASS = os.environ.get('AMQP_PASS', 'guest')
RUN = 'wp' + uuid.uuid4().hex[:6]
CLEAN_Q, CLEAN_X = set(), set()


# --- field-table values with an explicit AMQP type tag -----------------------
class Typed:
    """Header/argument value with explicit wire type: tag in b/B/s/u/I/i/l/L/S/V."""
    FMT = {'b': '>b', 'B': '>B', 's': '>h', 'u': '>H', 'I': '>i', 'i': '>I',
           'l': '>q', 'L': '>q'}

    def __init__(self, tag, value=None):
        self.tag, self.value = tag, value

    def __repr__(self):
        return 'Typed(%r,%r)' % (self.tag, self.value)


_orig_write_item = serialization._write_item


def _write_item(v, write, bits):
    if isinstance(v, Typed):
        write(v.tag.encode())
        if v.tag == 'V':
            return
        if v.tag == 'S':
            b = v.value.encode()
            write(struct.pack('>I', len(b)) + b)
            return
        write(struct.pack(Typed.FMT[v.tag], v.value))
        return
    return _orig_write_item(v, write, bits)


serialization._write_item = _write_item

# py-amqp silently re-opens ("revives") a channel after a server channel.close,
# so record which close method the server actually sent.
SERVER_CLOSES = []
_orig_ch_on_close = amqp.Channel._on_close
_orig_conn_on_close = amqp.Connection._on_close


def _ch_on_close(self, reply_code, reply_text, class_id, method_id):
    SERVER_CLOSES.append(('channel.close', reply_code, reply_text, class_id, method_id))
    return _orig_ch_on_close(self, reply_code, reply_text, class_id, method_id)


def _conn_on_close(self, reply_code, reply_text, class_id, method_id):
    SERVER_CLOSES.append(('connection.close', reply_code, reply_text, class_id, method_id))
    return _orig_conn_on_close(self, reply_code, reply_text, class_id, method_id)


amqp.Channel._on_close = _ch_on_close
amqp.Connection._on_close = _conn_on_close


def basic_nack(ch, tag, multiple=False, requeue=True):
    """py-amqp 5.x has no basic_nack; send Basic.Nack (60,120) by hand."""
    ch.send_method((60, 120), 'Lbb', (tag, multiple, requeue))


amqp.Channel.basic_nack = lambda self, delivery_tag, multiple=False, requeue=True: basic_nack(self, delivery_tag, multiple, requeue)


# --- helpers -----------------------------------------------------------------
def out(*a):
    print(*a, flush=True)


def N(s):
    return '%s.%s' % (RUN, s)


def connect(confirm=True):
    c = amqp.Connection(host=HOST, userid=USER, password=PASS,
                        confirm_publish=confirm)
    c.connect()
    return c


def Q(ch, name, **kw):
    r = ch.queue_declare(name, **kw)
    CLEAN_Q.add(r.queue)
    return r.queue


def X(ch, name, typ='direct', **kw):
    ch.exchange_declare(name, typ, **kw)
    CLEAN_X.add(name)
    return name


def pub(ch, ex, rk, body, **props):
    mandatory = props.pop('mandatory', False)
    ch.basic_publish(amqp.Message(body, **props), exchange=ex, routing_key=rk,
                     mandatory=mandatory)


def drain_get(ch, q, no_ack=True, limit=100):
    """basic_get until empty: list of (body, redelivered)."""
    res = []
    for _ in range(limit):
        m = ch.basic_get(q, no_ack=no_ack)
        if m is None:
            break
        res.append((m.body.decode() if isinstance(m.body, bytes) else m.body,
                    m.delivery_info['redelivered']))
    return res


def fmt_msgs(ms):
    return ' '.join('%s%s' % (b, '(R)' if r else '') for b, r in ms) or '(empty)'


def errinfo(e):
    sig = getattr(e, 'method_sig', None)
    return '%s %s %r [caused by %s %s]' % (
        type(e).__name__, getattr(e, 'reply_code', None),
        getattr(e, 'reply_text', str(e)),
        getattr(e, 'method_name', None), sig)


def exists_q(name):
    c = connect()
    try:
        ch = c.channel()
        r = ch.queue_declare(name, passive=True)
        return 'exists (messages=%d consumers=%d)' % (r.message_count, r.consumer_count)
    except amqp.exceptions.NotFound as e:
        return 'gone: %s' % e.reply_text
    except amqp.exceptions.ResourceLocked as e:
        return 'exists but locked: 405 RESOURCE_LOCKED (passive declare from other connection)'
    finally:
        try:
            c.close()
        except Exception:
            pass


def exists_x(name):
    c = connect()
    try:
        ch = c.channel()
        ch.exchange_declare(name, 'direct', passive=True)
        return 'exists'
    except amqp.exceptions.NotFound as e:
        return 'gone: %s' % e.reply_text
    finally:
        try:
            c.close()
        except Exception:
            pass


def scope_after(c, ch):
    """After an error: which close method did the server send?"""
    if not SERVER_CLOSES:
        return 'no close from server (client-side error)'
    kind, code, text, cid, mid = SERVER_CLOSES[-1]
    return 'server sent %s(%d, class=%d method=%d)' % (kind, code, cid, mid)


def try_err(title, setup, action, sync=True):
    """setup(c, ch) runs first (must succeed), then action(c, ch); report
    the error (or OK) and whether channel/connection survived."""
    c = connect(confirm=False)
    ch = c.channel()
    try:
        ctx = setup(c, ch) if setup else None
    except Exception as e:
        out('  %-58s SETUP FAILED %s' % (title, errinfo(e)))
        return
    del SERVER_CLOSES[:]
    try:
        nreq = action.__code__.co_argcount - len(action.__defaults__ or ())
        r = action(c, ch, ctx) if nreq == 3 else action(c, ch)
        if sync:  # flush async errors (publish/ack have no reply)
            time.sleep(0.05)
            ch.exchange_declare('amq.direct', 'direct', passive=True)
        res = 'OK (no error)' + ('' if r is None else ' -> %r' % (r,))
        scope = ''
    except Exception as e:
        res = errinfo(e)
        scope = ' || ' + scope_after(c, ch)
    out('  %-58s %s%s' % (title, res, scope))
    try:
        c.close()
    except Exception:
        pass


def setup_conn():
    c = connect(confirm=True)
    return c, c.channel()


PROBES = []


def probe(fn):
    PROBES.append(fn)
    return fn


# --- probes --------------------------------------------------------------------
@probe
def p00_version():
    out('== p00 server properties ==')
    c = connect()
    sp = c.server_properties
    for k in ('product', 'version', 'platform', 'cluster_name'):
        out('  %s: %s' % (k, sp.get(k)))
    out('  capabilities: %s' % sorted(k for k, v in sp.get('capabilities', {}).items() if v))
    c.close()


@probe
def p01_errors():
    out('== p01 errors: code, text, scope ==')
    q = N('e.q')
    x = N('e.x')

    def mkq(**kw):
        def s(c, ch):
            Q(ch, q, **kw)
        return s

    def mkx(typ='direct', **kw):
        def s(c, ch):
            ch.exchange_delete(x)
            X(ch, x, typ, **kw)
        return s

    try_err('queue_declare passive missing', None,
            lambda c, ch: ch.queue_declare(N('missing'), passive=True))
    try_err('exchange_declare passive missing', None,
            lambda c, ch: ch.exchange_declare(N('missingx'), 'direct', passive=True))
    try_err('exchange_declare passive existing, different type', None,
            lambda c, ch: ch.exchange_declare('amq.direct', 'topic', passive=True))
    try_err('queue_declare passive existing, different flags', mkq(durable=False, auto_delete=False),
            lambda c, ch: ch.queue_declare(q, passive=True, durable=True, auto_delete=True))
    # redeclare with different props (queue declared fresh each time)
    for name, first, second in [
        ('durable F->T', dict(durable=False, auto_delete=False), dict(durable=True, auto_delete=False)),
        ('durable T->F', dict(durable=True, auto_delete=False), dict(durable=False, auto_delete=False)),
        ('auto_delete F->T', dict(durable=False, auto_delete=False), dict(durable=False, auto_delete=True)),
        ('exclusive F->T', dict(durable=False, auto_delete=False), dict(durable=False, auto_delete=False, exclusive=True)),
        ('exclusive T->F (same conn)', dict(durable=False, auto_delete=False, exclusive=True), dict(durable=False, auto_delete=False)),
        ('args none -> x-max-length=10', dict(durable=False, auto_delete=False), dict(durable=False, auto_delete=False, arguments={'x-max-length': 10})),
        ('args x-max-length 10 -> 20', dict(durable=False, auto_delete=False, arguments={'x-max-length': 10}), dict(durable=False, auto_delete=False, arguments={'x-max-length': 20})),
        ('args x-max-length 10 -> none', dict(durable=False, auto_delete=False, arguments={'x-max-length': 10}), dict(durable=False, auto_delete=False)),
        ('args x-max-length int 10 -> long 10', dict(durable=False, auto_delete=False, arguments={'x-max-length': 10}), dict(durable=False, auto_delete=False, arguments={'x-max-length': Typed('l', 10)})),
        ('args x-max-length 10 -> string "10"', dict(durable=False, auto_delete=False, arguments={'x-max-length': 10}), dict(durable=False, auto_delete=False, arguments={'x-max-length': '10'})),
        ('args x-message-ttl 100 -> 200', dict(durable=False, auto_delete=False, arguments={'x-message-ttl': 100}), dict(durable=False, auto_delete=False, arguments={'x-message-ttl': 200})),
        ('args x-dead-letter-exchange a -> b', dict(durable=False, auto_delete=False, arguments={'x-dead-letter-exchange': 'a'}), dict(durable=False, auto_delete=False, arguments={'x-dead-letter-exchange': 'b'})),
        ('args x-foo(unknown) 1 -> 2', dict(durable=False, auto_delete=False, arguments={'x-foo': 1}), dict(durable=False, auto_delete=False, arguments={'x-foo': 2})),
        ('args none -> x-foo(unknown)=1', dict(durable=False, auto_delete=False), dict(durable=False, auto_delete=False, arguments={'x-foo': 1})),
        ('identical redeclare', dict(durable=True, auto_delete=False), dict(durable=True, auto_delete=False)),
    ]:
        def setup(c, ch, first=first):
            try:
                ch.queue_delete(q)
            except Exception:
                pass
            Q(ch, q, **first)
        try_err('redeclare queue ' + name, setup,
                lambda c, ch, second=second: ch.queue_declare(q, **second))
    try:
        c = connect()
        c.channel().queue_delete(q)
        c.close()
    except Exception:
        pass
    for name, first, second in [
        ('type direct->fanout', dict(typ='direct'), dict(type='fanout')),
        ('durable F->T', dict(typ='direct', durable=False, auto_delete=False), dict(type='direct', durable=True, auto_delete=False)),
        ('auto_delete F->T', dict(typ='direct', durable=False, auto_delete=False), dict(type='direct', durable=False, auto_delete=True)),
        ('args none -> x-foo=1 (unknown)', dict(typ='direct', durable=False, auto_delete=False), dict(type='direct', durable=False, auto_delete=False, arguments={'x-foo': 1})),
        ('args alternate-exchange none->a', dict(typ='direct', durable=False, auto_delete=False), dict(type='direct', durable=False, auto_delete=False, arguments={'alternate-exchange': 'a'})),
    ]:
        def setup(c, ch, first=first):
            try:
                ch.exchange_delete(x)
            except Exception:
                pass
            f = dict(first)
            X(ch, x, f.pop('typ'), **f)
        try_err('redeclare exchange ' + name, setup,
                lambda c, ch, second=second: ch.exchange_declare(x, **second))
    try_err('exchange_declare amq.direct same props (durable)', None,
            lambda c, ch: ch.exchange_declare('amq.direct', 'direct', durable=True, auto_delete=False))
    try_err('exchange_declare amq.direct non-durable', None,
            lambda c, ch: ch.exchange_declare('amq.direct', 'direct', durable=False, auto_delete=False))
    try_err('exchange_declare "" (default) direct durable', None,
            lambda c, ch: ch.exchange_declare('', 'direct', durable=True, auto_delete=False))
    try_err('exchange_declare amq.foo', None,
            lambda c, ch: ch.exchange_declare(N('x') and 'amq.' + RUN, 'direct', durable=False, auto_delete=True))
    try_err('exchange_declare amq.foo passive', None,
            lambda c, ch: ch.exchange_declare('amq.' + RUN, 'direct', passive=True))
    try_err('exchange_declare unknown type "bogus"', None,
            lambda c, ch: ch.exchange_declare(N('bogusx'), 'bogus', auto_delete=True))
    try_err('queue_declare amq.foo', None,
            lambda c, ch: ch.queue_declare('amq.' + RUN, auto_delete=True))
    try_err('queue_declare amq.foo passive', None,
            lambda c, ch: ch.queue_declare('amq.' + RUN, passive=True))
    try_err('queue_bind to default exchange ""', mkq(),
            lambda c, ch: ch.queue_bind(q, '', 'foo'))
    try_err('queue_bind to default exchange "" key=queue name', mkq(),
            lambda c, ch: ch.queue_bind(q, '', q))
    try_err('queue_unbind from default exchange ""', mkq(),
            lambda c, ch: ch.queue_unbind(q, '', q))
    try_err('exchange_delete ""', None, lambda c, ch: ch.exchange_delete(''))
    try_err('exchange_delete amq.direct', None, lambda c, ch: ch.exchange_delete('amq.direct'))
    try_err('queue_bind to amq.direct', mkq(),
            lambda c, ch: ch.queue_bind(q, 'amq.direct', N('k')))
    try_err('basic_publish to missing exchange', None,
            lambda c, ch: pub(ch, N('missingx'), 'k', 'b'))
    try_err('basic_publish to amq.direct (ok)', None,
            lambda c, ch: pub(ch, 'amq.direct', N('nobody'), 'b'))
    try_err('basic_ack unknown tag 99', None, lambda c, ch: ch.basic_ack(99))
    try_err('basic_ack tag 0 multiple=False (nothing outstanding)', None, lambda c, ch: ch.basic_ack(0))
    try_err('basic_ack tag 0 multiple=True (nothing outstanding)', None, lambda c, ch: ch.basic_ack(0, multiple=True))
    try_err('basic_nack unknown tag 99', None, lambda c, ch: ch.basic_nack(99, requeue=True))
    try_err('basic_reject unknown tag 99', None, lambda c, ch: ch.basic_reject(99, requeue=True))

    def got_one(c, ch):
        Q(ch, q)
        ch.basic_publish(amqp.Message('x'), '', q)
        time.sleep(0.1)
        m = ch.basic_get(q, no_ack=False)
        return m.delivery_tag

    def ack_twice(c, ch, tag):
        ch.basic_ack(tag)
        ch.basic_ack(tag)
    try_err('basic_ack twice same tag', got_one, ack_twice)
    try_err('basic_ack multiple=True of unknown higher tag 5 (1 outstanding)', got_one,
            lambda c, ch, tag: ch.basic_ack(tag + 4, multiple=True))

    def noack_get(c, ch):
        Q(ch, q)
        ch.basic_publish(amqp.Message('x'), '', q)
        time.sleep(0.1)
        return ch.basic_get(q, no_ack=True).delivery_tag
    try_err('basic_ack of a tag delivered with no_ack=True', noack_get,
            lambda c, ch, tag: ch.basic_ack(tag))
    try_err('basic_get missing queue', None, lambda c, ch: ch.basic_get(N('missing')))
    try_err('basic_consume missing queue', None, lambda c, ch: ch.basic_consume(N('missing'), callback=lambda m: None))
    try_err('queue_purge missing queue', None, lambda c, ch: ch.queue_purge(N('missing')))
    try_err('queue_bind missing queue', None, lambda c, ch: ch.queue_bind(N('missing'), 'amq.direct', 'k'))
    try_err('queue_bind missing exchange', mkq(), lambda c, ch: ch.queue_bind(q, N('missingx'), 'k'))
    try_err('queue_bind missing queue AND missing exchange', None, lambda c, ch: ch.queue_bind(N('missing'), N('missingx'), 'k'))
    try_err('queue_unbind non-existent binding (both exist)', mkq(), lambda c, ch: ch.queue_unbind(q, 'amq.direct', N('neverbound')))
    try_err('queue_unbind missing queue', None, lambda c, ch: ch.queue_unbind(N('missing'), 'amq.direct', 'k'))
    try_err('queue_unbind missing exchange', mkq(), lambda c, ch: ch.queue_unbind(q, N('missingx'), 'k'))
    try_err('exchange_bind missing source', mkx(), lambda c, ch: ch.exchange_bind(x, N('missingx'), 'k'))
    try_err('exchange_bind missing destination', mkx(), lambda c, ch: ch.exchange_bind(N('missingx'), x, 'k'))
    try_err('exchange_unbind non-existent binding', mkx(), lambda c, ch: ch.exchange_unbind(x, 'amq.direct', 'k'))

    def bound(c, ch):
        ch.exchange_delete(x)
        X(ch, x, 'direct', auto_delete=False)
        Q(ch, q)
        ch.queue_bind(q, x, 'k')
    try_err('exchange_delete if_unused on bound exchange (as source)', bound,
            lambda c, ch: ch.exchange_delete(x, if_unused=True))

    def bound_dest(c, ch):
        ch.exchange_delete(x)
        X(ch, x, 'direct', auto_delete=False)
        ch.exchange_bind(x, 'amq.direct', N('k'))
    try_err('exchange_delete if_unused, exchange only a destination', bound_dest,
            lambda c, ch: ch.exchange_delete(x, if_unused=True))
    try_err('exchange_delete if_unused unbound', mkx(),
            lambda c, ch: ch.exchange_delete(x, if_unused=True))

    def with_consumer(c, ch):
        Q(ch, q)
        ch.basic_consume(q, callback=lambda m: None)
    try_err('queue_delete if_unused with a consumer', with_consumer,
            lambda c, ch: ch.queue_delete(q, if_unused=True))

    def with_msgs(c, ch):
        Q(ch, q)
        ch.basic_publish(amqp.Message('x'), '', q)
        time.sleep(0.1)
    try_err('queue_delete if_empty with messages', with_msgs,
            lambda c, ch: ch.queue_delete(q, if_empty=True))

    def with_unacked(c, ch):
        ch.queue_delete(q)
        Q(ch, q)
        ch.basic_publish(amqp.Message('x'), '', q)
        time.sleep(0.1)
        ch.basic_get(q, no_ack=False)
    try_err('queue_delete if_empty, 0 ready but 1 unacked', with_unacked,
            lambda c, ch: ch.queue_delete(q, if_empty=True))
    try_err('exchange_delete missing exchange', None, lambda c, ch: ch.exchange_delete(N('missingx')))
    try_err('queue_delete missing queue', None, lambda c, ch: ch.queue_delete(N('missing')))
    try_err('queue_delete missing queue if_empty/if_unused', None,
            lambda c, ch: ch.queue_delete(N('missing'), if_unused=True, if_empty=True))

    # exclusive queue of another connection
    owner = connect()
    och = owner.channel()
    xq = Q(och, N('excl'), exclusive=True)
    try_err('basic_consume exclusive queue of other connection', None,
            lambda c, ch: ch.basic_consume(xq, callback=lambda m: None))
    try_err('basic_get exclusive queue of other connection', None,
            lambda c, ch: ch.basic_get(xq))
    try_err('queue_declare (same args, exclusive) of other conn\'s', None,
            lambda c, ch: ch.queue_declare(xq, exclusive=True, auto_delete=False))
    try_err('queue_declare (non-exclusive) of other conn\'s excl q', None,
            lambda c, ch: ch.queue_declare(xq, auto_delete=False))
    try_err('queue_declare passive of other conn\'s excl q', None,
            lambda c, ch: ch.queue_declare(xq, passive=True))
    try_err('queue_bind other conn\'s excl q', None,
            lambda c, ch: ch.queue_bind(xq, 'amq.direct', 'k'))
    try_err('queue_purge other conn\'s excl q', None,
            lambda c, ch: ch.queue_purge(xq))
    try_err('queue_delete other conn\'s excl q', None,
            lambda c, ch: ch.queue_delete(xq))
    try_err('basic_publish to other conn\'s excl q (default exch)', None,
            lambda c, ch: pub(ch, '', xq, 'b'))
    owner.close()

    try_err('basic_consume when an exclusive consumer exists', lambda c, ch: (Q(ch, q), ch.basic_consume(q, callback=lambda m: None, exclusive=True)),
            lambda c, ch: ch.basic_consume(q, callback=lambda m: None))
    try_err('basic_consume exclusive=True when consumer exists', with_consumer,
            lambda c, ch: ch.basic_consume(q, callback=lambda m: None, exclusive=True))

    def ctag(c, ch):
        Q(ch, q)
        ch.basic_consume(q, consumer_tag='dup-tag', callback=lambda m: None)
    try_err('basic_consume reuse consumer tag, same channel', ctag,
            lambda c, ch: ch.basic_consume(q, consumer_tag='dup-tag', callback=lambda m: None))

    def ctag_other(c, ch):
        Q(ch, q)
        ch.basic_consume(q, consumer_tag='dup-tag', callback=lambda m: None)
        return True

    def other_ch(c, ch, _):
        ch2 = c.channel()
        t = ch2.basic_consume(q, consumer_tag='dup-tag', callback=lambda m: None)
        ch2.exchange_declare('amq.direct', 'direct', passive=True)
        return t
    try_err('basic_consume same consumer tag, other channel', ctag_other, other_ch)
    try_err('basic_cancel unknown consumer tag', None, lambda c, ch: ch.basic_cancel('no-such-tag'))

    def hdr(args):
        def a(c, ch):
            ch.queue_bind(q, 'amq.headers', '', arguments=args)
        return a
    try_err('headers bind x-match=bogus', mkq(), hdr({'x-match': 'bogus'}))
    try_err('headers bind x-match=ALL (upper case)', mkq(), hdr({'x-match': 'ALL'}))
    try_err('headers bind x-match=1 (int)', mkq(), hdr({'x-match': 1}))
    for i, v in enumerate((-1, 'abc', '1000', 0, 1.5, Typed('l', 2 ** 32 + 1))):
        try_err('queue_declare x-message-ttl=%r' % (v,), None,
                lambda c, ch, v=v, i=i: ch.queue_declare(N('ttl%d' % i), exclusive=True, arguments={'x-message-ttl': v}))
    for arg, v in [('x-max-length', -1), ('x-max-length', 'x'), ('x-expires', 0), ('x-expires', -5),
                   ('x-max-priority', 256), ('x-max-priority', -1), ('x-overflow', 'bogus'),
                   ('x-dead-letter-routing-key', 'k'), ('x-queue-type', 'bogus'),
                   ('x-dead-letter-exchange', 1)]:
        try_err('queue_declare %s=%r' % (arg, v), None,
                lambda c, ch, arg=arg, v=v: ch.queue_declare(N('arg'), exclusive=True, arguments={arg: v}))
    try_err('publish expiration="-1"', mkq(), lambda c, ch: pub(ch, '', q, 'x', expiration='-1'))
    try_err('publish expiration="abc"', mkq(), lambda c, ch: pub(ch, '', q, 'x', expiration='abc'))
    try_err('basic_qos prefetch_size=1', None, lambda c, ch: ch.basic_qos(1, 0, False))
    try_err('basic_qos global=True prefetch 5', None, lambda c, ch: ch.basic_qos(0, 5, True))
    try_err('basic_recover requeue=False', None, lambda c, ch: ch.basic_recover(requeue=False))
    try_err('channel.flow active=False', None, lambda c, ch: ch.flow(False))
    try_err('tx_commit without tx_select', None, lambda c, ch: ch.tx_commit())
    try_err('confirm_select after tx_select', lambda c, ch: ch.tx_select(), lambda c, ch: ch.confirm_select())
    try_err('tx_select after confirm_select', lambda c, ch: ch.confirm_select(), lambda c, ch: ch.tx_select())
    try_err('queue_declare name "" passive', None, lambda c, ch: ch.queue_declare('', passive=True))
    try_err('exchange_declare name "" passive', None, lambda c, ch: ch.exchange_declare('', 'direct', passive=True))
    try_err('exchange_declare empty type ""', None, lambda c, ch: ch.exchange_declare(N('notype'), '', auto_delete=True))
    try:
        c = connect()
        ch = c.channel()
        ch.exchange_delete(N('intx'))
        ch.exchange_delete(x)
        ch.queue_delete(q)
        c.close()
    except Exception:
        pass


@probe
def p02_server_named():
    out('== p02 server-named queues ==')
    c, ch = setup_conn()
    names = []
    for _ in range(5):
        r = ch.queue_declare('', exclusive=True)
        names.append(r.queue)
    out('  names: %s' % names)
    out('  lengths: %s (suffix after "amq.gen-": %s)' % ([len(n) for n in names], [len(n) - 8 for n in names]))
    chars = set(''.join(n[8:] for n in names))
    out('  suffix char classes: upper=%s lower=%s digit=%s other=%r' % (
        any(ch_.isupper() for ch_ in chars), any(ch_.islower() for ch_ in chars),
        any(ch_.isdigit() for ch_ in chars), sorted(ch_ for ch_ in chars if not ch_.isalnum())))
    r = ch.queue_declare('', exclusive=False, auto_delete=True)
    out('  non-exclusive server-named: %s' % r.queue)
    CLEAN_Q.add(r.queue)
    c.close()


def requeue_probe(qargs, label):
    out('== p03 requeue order (%s) ==' % label)
    durable = bool(qargs)
    # A: nack m2 only
    for scen in ('A', 'B', 'C'):
        c, ch = setup_conn()
        q = Q(ch, N('rq%s%s' % (label, scen)), durable=durable, auto_delete=False, arguments=qargs)
        for i in range(1, 6):
            pub(ch, '', q, 'm%d' % i)
        tags = {}
        for i in range(1, 4):
            m = ch.basic_get(q, no_ack=False)
            tags[m.body] = m.delivery_tag
        ch2 = c.channel()
        if scen == 'A':
            ch.basic_nack(tags['m2'], requeue=True)
            time.sleep(0.1)
            out('  got m1,m2,m3 (unacked); nack(m2,requeue) -> queue: %s' % fmt_msgs(drain_get(ch2, q)))
        elif scen == 'B':
            ch.basic_nack(tags['m2'], requeue=True)
            ch.basic_nack(tags['m1'], requeue=True)
            ch.basic_nack(tags['m3'], requeue=True)
            time.sleep(0.1)
            out('  got m1,m2,m3; nack m2, then m1, then m3 (each requeue) -> queue: %s' % fmt_msgs(drain_get(ch2, q)))
        else:
            ch.basic_nack(tags['m3'], multiple=True, requeue=True)
            time.sleep(0.1)
            out('  got m1,m2,m3; nack(m3, multiple=True, requeue) -> queue: %s' % fmt_msgs(drain_get(ch2, q)))
        ch.queue_delete(q) if False else ch2.queue_delete(q)
        c.close()
    # channel close with unacked
    c, ch = setup_conn()
    q = Q(ch, N('rq%sclose' % label), durable=durable, auto_delete=False, arguments=qargs)
    for i in range(1, 6):
        pub(ch, '', q, 'm%d' % i)
    ch1 = c.channel()
    for _ in range(3):
        ch1.basic_get(q, no_ack=False)
    ch1b = c.channel()
    m4 = ch1b.basic_get(q, no_ack=False)
    ch1.close()
    time.sleep(0.1)
    out('  ch1 got m1,m2,m3, ch1b got m4 (all unacked), ch1 closed -> queue: %s' % fmt_msgs(drain_get(ch, q)))
    ch1b.close()
    time.sleep(0.1)
    out('  then ch1b closed -> queue: %s' % fmt_msgs(drain_get(ch, q)))
    # get 1,2,3 ; ack m2; close -> m1,m3 back
    for i in range(1, 6):
        pub(ch, '', q, 'n%d' % i)
    ch1 = c.channel()
    ms = [ch1.basic_get(q, no_ack=False) for _ in range(3)]
    ch1.basic_ack(ms[1].delivery_tag)
    ch1.close()
    time.sleep(0.1)
    out('  got n1,n2,n3; ack n2; close channel -> queue: %s' % fmt_msgs(drain_get(ch, q)))
    # basic_recover(requeue=True)
    for i in range(1, 6):
        pub(ch, '', q, 'r%d' % i)
    ch1 = c.channel()
    for _ in range(3):
        ch1.basic_get(q, no_ack=False)
    ch1.basic_recover(requeue=True)
    time.sleep(0.1)
    out('  got r1,r2,r3 (basic_get, unacked); basic_recover(requeue=True) -> queue: %s' % fmt_msgs(drain_get(ch, q)))
    try:
        ch1.basic_ack(1)
        ch1.exchange_declare('amq.direct', 'direct', passive=True)
        out('  after recover, ack of old tag 1: OK')
    except Exception as e:
        out('  after recover, ack of old tag 1: %s' % errinfo(e))
    # basic_reject from a consumer while others wait
    for i in range(1, 6):
        pub(ch, '', q, 'c%d' % i)
    cc = connect()
    cch = cc.channel()
    cch.basic_qos(0, 1, False)
    seen = []
    state = {'rejected': False}

    def cb(m):
        seen.append('%s%s' % (m.body, '(R)' if m.delivery_info['redelivered'] else ''))
        if m.body == 'c1' and not state['rejected']:
            state['rejected'] = True
            cch.basic_reject(m.delivery_tag, requeue=True)
        else:
            cch.basic_ack(m.delivery_tag)
    cch.basic_consume(q, callback=cb)
    deadline = time.time() + 2
    while len(seen) < 6 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.3)
        except Exception:
            pass
    out('  consumer prefetch=1 rejects c1 (requeue) once, acks rest -> delivery order: %s' % ' '.join(seen))
    cc.close()
    # same with prefetch 0 (all in flight)
    for i in range(1, 6):
        pub(ch, '', q, 'd%d' % i)
    cc = connect()
    cch = cc.channel()
    seen = []
    state = {'rejected': False}

    def cb2(m):
        seen.append('%s%s' % (m.body, '(R)' if m.delivery_info['redelivered'] else ''))
        if m.body == 'd1' and not state['rejected']:
            state['rejected'] = True
            cch.basic_reject(m.delivery_tag, requeue=True)
        else:
            cch.basic_ack(m.delivery_tag)
    cch.basic_consume(q, callback=cb2)
    deadline = time.time() + 2
    while len(seen) < 6 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.3)
        except Exception:
            pass
    out('  consumer prefetch=0 rejects d1 (requeue) once, acks rest -> delivery order: %s' % ' '.join(seen))
    cc.close()
    # consumer + basic_recover(requeue=True): redelivered to whom, in what order?
    for i in range(1, 4):
        pub(ch, '', q, 'e%d' % i)
    cc = connect()
    cch = cc.channel()
    seen = []
    cch.basic_consume(q, consumer_tag='A', callback=lambda m: seen.append('A:%s%s#%d' % (m.body, '(R)' if m.delivery_info['redelivered'] else '', m.delivery_tag)))
    deadline = time.time() + 1
    while len(seen) < 3 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.3)
        except Exception:
            pass
    cch2 = cc.channel()
    cch2.basic_consume(q, consumer_tag='B', callback=lambda m: seen.append('B:%s%s#%d' % (m.body, '(R)' if m.delivery_info['redelivered'] else '', m.delivery_tag)))
    cch.basic_recover(requeue=True)
    deadline = time.time() + 1
    while len(seen) < 6 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.3)
        except Exception:
            pass
    out('  consumer A (no qos) got e1..e3 unacked, consumer B (other channel) attached, A\'s channel basic_recover(requeue=True) -> deliveries consumer:body#tag: %s' % ' '.join(seen))
    out('  (basic_recover(requeue=False) -> connection.close 540 NOT_IMPLEMENTED - requeue=false, see p01)')
    cc.close()
    time.sleep(0.1)
    drain_get(ch, q)
    ch.queue_delete(q)
    c.close()


@probe
def p03_requeue_classic():
    requeue_probe(None, 'classic')


@probe
def p03_requeue_quorum():
    requeue_probe({'x-queue-type': 'quorum'}, 'quorum')


TOPIC_PATTERNS = ['', '#', '*', '#.', '.#', 'a.#.z', '#.z', 'a.*', '*.*', '#.#', 'a.#.#.z', '*.#',
                  'a.#', '#.a', 'a.*.z', '*', 'a', 'abc.#', '#.#.z', 'a..z', 'a.*.*', '*.*.*', '.', '*.']
TOPIC_PATTERNS += ['a*', 'a#', '#a', 'a.#.#']
TOPIC_KEYS = ['', '.', 'a', 'a.', '.a', 'a..z', 'a.z', 'abc', 'abc.', 'a.b.c.z', 'z', 'a.b', 'a.b.z', '..',
              '*', '#', 'a*', 'ab']


@probe
def p04_topic():
    out('== p04 topic matrix (Y = routed) ==')
    c, ch = setup_conn()
    x = X(ch, N('topic'), 'topic', auto_delete=False)
    pats = list(dict.fromkeys(TOPIC_PATTERNS))
    qs = {}
    for i, p in enumerate(pats):
        q = Q(ch, N('t%d' % i), auto_delete=False)
        try:
            ch.queue_bind(q, x, p)
        except Exception as e:
            out('  bind %r failed: %s' % (p, errinfo(e)))
            ch = c.channel()
        qs[p] = q
    for k in TOPIC_KEYS:
        pub(ch, x, k, 'K[%s]' % k)
    time.sleep(0.2)
    got = {p: {b[2:-1] for b, _ in drain_get(ch, q)} for p, q in qs.items()}
    w = 9
    out('  %-9s | ' % 'pat\\key' + ' '.join('%-7s' % repr(k) for k in TOPIC_KEYS))
    for p in pats:
        out('  %-9s | ' % repr(p) + ' '.join('%-7s' % ('Y' if k in got[p] else '.') for k in TOPIC_KEYS))
    # double binding
    q = Q(ch, N('tdup'), auto_delete=False)
    ch.queue_bind(q, x, 'a.*')
    ch.queue_bind(q, x, 'a.#')
    ch.queue_bind(q, x, '#')
    pub(ch, x, 'a.b', 'dup')
    time.sleep(0.1)
    out('  queue bound by a.*, a.#, # ; publish a.b -> copies: %d' % len(drain_get(ch, q)))
    # case sensitivity
    q2 = Q(ch, N('tcase'), auto_delete=False)
    ch.queue_bind(q2, x, 'A.b')
    pub(ch, x, 'a.b', 'lower')
    pub(ch, x, 'A.b', 'upper')
    time.sleep(0.1)
    out('  bound A.b; published a.b, A.b -> got: %s' % fmt_msgs(drain_get(ch, q2)))
    # binding same key twice is idempotent; unbind once removes
    ch.queue_bind(q2, x, 'x.y')
    ch.queue_bind(q2, x, 'x.y')
    ch.queue_unbind(q2, x, 'x.y')
    pub(ch, x, 'x.y', 'afterunbind')
    time.sleep(0.1)
    out('  bind x.y twice, unbind once, publish x.y -> got: %s' % fmt_msgs(drain_get(ch, q2)))
    c.close()


@probe
def p05_headers():
    out('== p05 headers exchange (Y = routed) ==')
    c, ch = setup_conn()
    x = X(ch, N('hdr'), 'headers', auto_delete=False)
    binds = [
        ('all a=int1,b="x"', {'x-match': 'all', 'a': 1, 'b': 'x'}),
        ('any a=int1,b="x"', {'x-match': 'any', 'a': 1, 'b': 'x'}),
        ('(no x-match) a=int1', {'a': 1}),
        ('all a=long1', {'x-match': 'all', 'a': Typed('l', 1)}),
        ('all a="1"', {'x-match': 'all', 'a': '1'}),
        ('all a=void', {'x-match': 'all', 'a': None}),
        ('all a=byte1', {'x-match': 'all', 'a': Typed('b', 1)}),
        ('all a=bool true', {'x-match': 'all', 'a': True}),
        ('all a=float1.0', {'x-match': 'all', 'a': 1.0}),
        ('all (no other args)', {'x-match': 'all'}),
        ('any (no other args)', {'x-match': 'any'}),
        ('all a=int1,x-foo="bar"', {'x-match': 'all', 'a': 1, 'x-foo': 'bar'}),
        ('any x-foo="bar"', {'x-match': 'any', 'x-foo': 'bar'}),
        ('all x-foo="bar"', {'x-match': 'all', 'x-foo': 'bar'}),
        ('all-with-x a=int1,x-foo="bar"', {'x-match': 'all-with-x', 'a': 1, 'x-foo': 'bar'}),
        ('any-with-x x-foo="bar"', {'x-match': 'any-with-x', 'x-foo': 'bar'}),
        ('any-with-x x-foo=void', {'x-match': 'any-with-x', 'x-foo': None}),
        ('all-with-x (no other)', {'x-match': 'all-with-x'}),
        ('any-with-x (no other)', {'x-match': 'any-with-x'}),
        ('any a=int1 b=int2', {'x-match': 'any', 'a': 1, 'b': 2}),
        ('all x-match=all only via rk "zz"', {'x-match': 'all', 'rk': 'zz'}),
    ]
    msgs = [
        ('H1 a=int1', {'a': 1}),
        ('H2 a=long1', {'a': Typed('l', 1)}),
        ('H3 a="1"', {'a': '1'}),
        ('H4 a=int1,b="x"', {'a': 1, 'b': 'x'}),
        ('H5 b="x"', {'b': 'x'}),
        ('H6 no headers', None),
        ('H7 empty headers {}', {}),
        ('H8 a=void', {'a': None}),
        ('H9 x-foo="bar"', {'x-foo': 'bar'}),
        ('H10 a=int1,x-foo="bar"', {'a': 1, 'x-foo': 'bar'}),
        ('H11 a=int2', {'a': 2}),
        ('H12 a=bool true', {'a': True}),
        ('H13 a=float1.0', {'a': 1.0}),
        ('H14 a=byte1', {'a': Typed('b', 1)}),
        ('H15 a=short1', {'a': Typed('s', 1)}),
        ('H16 a=uint1', {'a': Typed('i', 1)}),
        ('H17 A=int1 (upper-case name)', {'A': 1}),
    ]
    qs = []
    for i, (label, args) in enumerate(binds):
        q = Q(ch, N('h%d' % i), auto_delete=False)
        try:
            ch.queue_bind(q, x, 'ignored-key', arguments=args)
            qs.append((label, q))
        except Exception as e:
            out('  bind %s failed: %s' % (label, errinfo(e)))
            ch = c.channel()
    for j, (ml, hdrs) in enumerate(msgs):
        props = {} if hdrs is None else {'application_headers': hdrs}
        pub(ch, x, 'zz', 'M%d' % j, **props)
    time.sleep(0.2)
    out('  ' + 'binding \\ message'.ljust(32) + ' ' + ' '.join('%-4s' % ml.split()[0] for ml, _ in msgs))
    for label, q in qs:
        got = {b for b, _ in drain_get(ch, q)}
        out('  ' + label.ljust(32) + ' ' + ' '.join('%-4s' % ('Y' if 'M%d' % j in got else '.') for j in range(len(msgs))))
    for ml, _ in msgs:
        out('    %s' % ml)
    c.close()


@probe
def p06_fanout_direct_dups():
    out('== p06 fanout/direct duplicate bindings ==')
    c, ch = setup_conn()
    fx = X(ch, N('fan'), 'fanout', auto_delete=False)
    dx = X(ch, N('dir'), 'direct', auto_delete=False)
    q = Q(ch, N('fq'), auto_delete=False)
    ch.queue_bind(q, fx, 'k1')
    ch.queue_bind(q, fx, 'k2')
    pub(ch, fx, 'k3', 'f')
    time.sleep(0.1)
    out('  fanout: queue bound with k1 and k2, publish k3 -> copies: %d' % len(drain_get(ch, q)))
    ch.queue_unbind(q, fx, 'k1')
    pub(ch, fx, 'zz', 'f')
    time.sleep(0.1)
    out('  fanout: after unbinding k1 (k2 remains) -> copies: %d' % len(drain_get(ch, q)))
    ch.queue_bind(q, dx, 'k1')
    ch.queue_bind(q, dx, 'k2')
    pub(ch, dx, 'k1', 'd')
    time.sleep(0.1)
    out('  direct: queue bound k1 and k2, publish k1 -> copies: %d' % len(drain_get(ch, q)))
    # e2e duplicate path: x -> q directly and via another exchange
    ex2 = X(ch, N('fan2'), 'fanout', auto_delete=False)
    ch.exchange_bind(ex2, fx, '')
    ch.queue_bind(q, ex2, '')
    pub(ch, fx, 'zz', 'two-paths')
    time.sleep(0.1)
    out('  fanout->q and fanout->fanout2->q (two paths) -> copies: %d' % len(drain_get(ch, q)))
    # direct case sensitivity & empty key
    q3 = Q(ch, N('dq3'), auto_delete=False)
    ch.queue_bind(q3, dx, '')
    pub(ch, dx, '', 'emptykey')
    pub(ch, dx, 'K1', 'upper')
    time.sleep(0.1)
    out('  direct bound "", publish "" -> %s' % fmt_msgs(drain_get(ch, q3)))
    c.close()


def consume_rr(prefetch, nmsg=9, ack_delay=0.0):
    c, ch = setup_conn()
    q = Q(ch, N('rr%d' % prefetch), auto_delete=False)
    cc = connect()
    got = {}
    chans = []
    for i in range(3):
        cch = cc.channel()
        if prefetch:
            cch.basic_qos(0, prefetch, False)
        tag = 'C%d' % (i + 1)
        got[tag] = []

        def cb(m, tag=tag, cch=cch):
            got[tag].append(m.body)
            cch.basic_ack(m.delivery_tag)
        cch.basic_consume(q, consumer_tag=tag, callback=cb)
        chans.append(cch)
    for i in range(1, nmsg + 1):
        pub(ch, '', q, 'm%d' % i)
    deadline = time.time() + 2
    while sum(map(len, got.values())) < nmsg and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.3)
        except Exception:
            pass
    cc.close()
    ch.queue_delete(q)
    c.close()
    return got


@probe
def p07_round_robin():
    out('== p07 round robin / prefetch ==')
    for pf in (0, 1):
        got = consume_rr(pf)
        out('  3 consumers (one per channel, registered C1,C2,C3), prefetch=%d, 9 msgs: %s' % (
            pf, ' | '.join('%s: %s' % (k, ','.join(v)) for k, v in got.items())))
    # publish before consumers exist
    c, ch = setup_conn()
    q = Q(ch, N('rrpre'), auto_delete=False)
    for i in range(1, 10):
        pub(ch, '', q, 'm%d' % i)
    cc = connect()
    got = {}
    for i in range(3):
        cch = cc.channel()
        cch.basic_qos(0, 1, False)
        tag = 'C%d' % (i + 1)
        got[tag] = []

        def cb(m, tag=tag, cch=cch):
            got[tag].append(m.body)
            cch.basic_ack(m.delivery_tag)
        cch.basic_consume(q, consumer_tag=tag, callback=cb)
    deadline = time.time() + 2
    while sum(map(len, got.values())) < 9 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.3)
        except Exception:
            pass
    out('  9 msgs published first, then 3 consumers prefetch=1 attach: %s' % ' | '.join('%s: %s' % (k, ','.join(v)) for k, v in got.items()))
    cc.close()
    # prefetch=2, no acks
    for i in range(1, 6):
        pub(ch, '', q, 'p%d' % i)
    cc = connect()
    cch = cc.channel()
    cch.basic_qos(0, 2, False)
    held = []
    cch.basic_consume(q, callback=lambda m: held.append(m))
    deadline = time.time() + 1
    while time.time() < deadline:
        try:
            cc.drain_events(timeout=0.2)
        except Exception:
            pass
    r = ch.queue_declare(q, passive=True)
    out('  5 msgs, 1 consumer prefetch=2 never acking: delivered=%s; passive declare message_count=%d consumer_count=%d' % (
        [m.body for m in held], r.message_count, r.consumer_count))
    cch.basic_ack(held[0].delivery_tag)
    time.sleep(0.3)
    try:
        cc.drain_events(timeout=0.3)
    except Exception:
        pass
    r = ch.queue_declare(q, passive=True)
    out('  after ack of first: delivered=%s; message_count=%d' % ([m.body for m in held], r.message_count))
    # qos change mid-flight
    cch.basic_qos(0, 4, False)
    deadline = time.time() + 0.6
    while time.time() < deadline:
        try:
            cc.drain_events(timeout=0.2)
        except Exception:
            pass
    r = ch.queue_declare(q, passive=True)
    out('  after basic_qos(prefetch=4) on same channel: delivered=%s; message_count=%d' % ([m.body for m in held], r.message_count))
    # basic_get ignores prefetch?
    cc2 = connect()
    gch = cc2.channel()
    gch.basic_qos(0, 1, False)
    pub(ch, '', q, 'g1')
    pub(ch, '', q, 'g2')
    cc.close()
    time.sleep(0.2)
    a = gch.basic_get(q, no_ack=False)
    b = gch.basic_get(q, no_ack=False)
    out('  basic_get with prefetch=1 and one unacked: second get returns %s (prefetch does not limit basic_get if not None)' % (b.body if b else None))
    cc2.close()
    time.sleep(0.1)
    drain_get(ch, q)
    ch.queue_delete(q)
    c.close()


@probe
def p08_auto_delete_exclusive():
    out('== p08 auto_delete / exclusive lifetime ==')
    c, ch = setup_conn()
    q = Q(ch, N('ad1'), auto_delete=True)
    time.sleep(0.3)
    out('  auto_delete queue, never had consumer, after 0.3s: %s' % exists_q(q))
    tag = ch.basic_consume(q, callback=lambda m: None)
    ch.basic_cancel(tag)
    time.sleep(0.2)
    out('  after one consumer subscribed and cancelled: %s' % exists_q(q))
    q = Q(ch, N('ad2'), auto_delete=True)
    t1 = ch.basic_consume(q, callback=lambda m: None)
    t2 = ch.basic_consume(q, callback=lambda m: None)
    ch.basic_cancel(t1)
    time.sleep(0.2)
    out('  two consumers, one cancelled: %s' % exists_q(q))
    ch.basic_cancel(t2)
    time.sleep(0.2)
    out('  second cancelled: %s' % exists_q(q))
    # consumer's channel closes
    q = Q(ch, N('ad3'), auto_delete=True)
    ch3 = c.channel()
    ch3.basic_consume(q, callback=lambda m: None)
    ch3.close()
    time.sleep(0.2)
    out('  consumer channel closed: %s' % exists_q(q))
    # basic_get on auto_delete queue does not count
    q = Q(ch, N('ad4'), auto_delete=True)
    pub(ch, '', q, 'x')
    ch.basic_get(q, no_ack=True)
    time.sleep(0.2)
    out('  only basic_get used: %s' % exists_q(q))
    # auto_delete queue with messages when last consumer leaves
    q = Q(ch, N('ad5'), auto_delete=True)
    pub(ch, '', q, 'x')
    pub(ch, '', q, 'y')
    c5 = connect()
    ch5 = c5.channel()
    ch5.basic_qos(0, 1, False)
    ch5.basic_consume(q, callback=lambda m: None)
    try:
        c5.drain_events(timeout=0.3)
    except Exception:
        pass
    c5.close()
    time.sleep(0.2)
    out('  consumer holding 1 unacked (1 ready) closes connection: %s' % exists_q(q))
    # exchange auto_delete
    x = X(ch, N('adx'), 'direct', auto_delete=True)
    time.sleep(0.2)
    out('  auto_delete exchange, never bound: %s' % exists_x(x))
    q = Q(ch, N('adxq'), auto_delete=False)
    ch.queue_bind(q, x, 'k1')
    ch.queue_bind(q, x, 'k2')
    ch.queue_unbind(q, x, 'k1')
    out('  bound twice, one unbound: %s' % exists_x(x))
    ch.queue_unbind(q, x, 'k2')
    time.sleep(0.1)
    out('  last queue binding removed: %s' % exists_x(x))
    x = X(ch, N('adx2'), 'direct', auto_delete=True)
    ch.queue_bind(q, x, 'k1')
    ch.queue_delete(q)
    time.sleep(0.1)
    out('  auto_delete exchange whose only bound queue is deleted: %s' % exists_x(x))
    x = X(ch, N('adx3'), 'fanout', auto_delete=True)
    ch.exchange_bind(x, 'amq.fanout', N('k'))
    ch.exchange_unbind(x, 'amq.fanout', N('k'))
    time.sleep(0.1)
    out('  auto_delete exchange as DESTINATION of e2e binding, unbound: %s' % exists_x(x))
    x = X(ch, N('adx4'), 'fanout', auto_delete=True)
    y = X(ch, N('adx4dst'), 'fanout', auto_delete=False)
    ch.exchange_bind(y, x, '')
    ch.exchange_unbind(y, x, '')
    time.sleep(0.1)
    out('  auto_delete exchange as SOURCE of e2e binding, unbound: %s' % exists_x(x))
    # exclusive
    c2 = connect()
    eq = Q(c2.channel(), N('excl2'), exclusive=True)
    out('  exclusive queue while owner open (checked from other conn): %s' % exists_q(eq))
    c2.close()
    time.sleep(0.2)
    out('  exclusive queue after owner connection closed: %s' % exists_q(eq))
    c2 = connect()
    c2ch = c2.channel()
    eq = Q(c2ch, N('excl3'), exclusive=True)
    c2ch.close()
    time.sleep(0.2)
    out('  exclusive queue after owner CHANNEL closed (conn open): %s' % exists_q(eq))
    c2.close()
    c.close()


@probe
def p09_purge_delete_counts():
    out('== p09 purge / delete counts ==')
    c, ch = setup_conn()
    q = Q(ch, N('pc'), auto_delete=False)
    for i in range(5):
        pub(ch, '', q, 'm%d' % i)
    ch2 = c.channel()
    ch2.basic_get(q, no_ack=False)
    ch2.basic_get(q, no_ack=False)
    n = ch.queue_purge(q)
    out('  5 published, 2 unacked via basic_get: queue_purge returned %r' % (n,))
    ch2.close()
    time.sleep(0.1)
    r = ch.queue_declare(q, passive=True)
    out('  after unacked channel closes: message_count=%d (unacked come back after purge)' % r.message_count)
    for i in range(3):
        pub(ch, '', q, 'n%d' % i)
    ch2 = c.channel()
    ch2.basic_get(q, no_ack=False)
    r = ch.queue_declare(q, passive=True)
    out('  declare-ok message_count with 4 ready+1 unacked: %d' % r.message_count)
    n = ch.queue_delete(q)
    out('  queue_delete with 4 ready + 1 unacked returned %r' % (n,))
    try:
        ch2.basic_ack(1)
        ch2.exchange_declare('amq.direct', 'direct', passive=True)
        out('  ack of unacked msg from deleted queue: OK')
    except Exception as e:
        out('  ack of unacked msg from deleted queue: %s' % errinfo(e))
    q = Q(ch, N('pc2'), auto_delete=False)
    out('  purge empty queue -> %r; delete empty -> %r' % (ch.queue_purge(q), ch.queue_delete(q)))
    c.close()


@probe
def p10_unroutable():
    out('== p10 unroutable / mandatory ==')
    c = connect(confirm=False)
    ch = c.channel()
    returned = []
    ch.events['basic_return'].add(lambda exc, ex, rk, m: returned.append((exc.reply_code, exc.reply_text, ex, rk, m.body)))
    ch.basic_publish(amqp.Message('x'), exchange='', routing_key=N('nosuchq'))
    ch.basic_publish(amqp.Message('y'), exchange='', routing_key=N('nosuchq'), mandatory=True)
    ch.basic_publish(amqp.Message('z'), exchange='amq.topic', routing_key=N('nobody'), mandatory=True)
    ch.basic_publish(amqp.Message('w'), exchange='amq.fanout', routing_key='', mandatory=True)
    ch.basic_qos(0, 0, False)
    try:
        c.drain_events(timeout=0.5)
        c.drain_events(timeout=0.5)
        c.drain_events(timeout=0.5)
    except Exception:
        pass
    out('  default exch to missing queue, no mandatory: no error, channel ok')
    for r in returned:
        out('  basic.return: code=%r text=%r exchange=%r routing_key=%r body=%r' % r)
    # confirms + mandatory unroutable
    ch2 = c.channel()
    ch2.confirm_select()
    events = []
    ch2.events['basic_return'].add(lambda exc, ex, rk, m: events.append('return'))
    ch2.events['basic_ack'].add(lambda tag, multiple: events.append('ack(%d)' % tag))
    ch2.events['basic_nack'].add(lambda tag, multiple: events.append('nack(%d)' % tag))
    ch2.basic_publish(amqp.Message('u'), exchange='', routing_key=N('nosuchq'), mandatory=True)
    ch2.basic_publish(amqp.Message('u2'), exchange='', routing_key=N('nosuchq'))
    deadline = time.time() + 1
    while len(events) < 3 and time.time() < deadline:
        try:
            c.drain_events(timeout=0.3)
        except Exception:
            pass
    out('  confirm mode, unroutable mandatory then unroutable non-mandatory -> events: %s' % events)
    # reject-publish overflow with confirms
    ch3 = c.channel()
    q = Q(ch3, N('rp'), auto_delete=False, arguments={'x-max-length': 1, 'x-overflow': 'reject-publish'})
    ch3.confirm_select()
    ev = []
    ch3.events['basic_ack'].add(lambda tag, multiple: ev.append('ack(%d)' % tag))
    ch3.events['basic_nack'].add(lambda tag, multiple: ev.append('nack(%d)' % tag))
    for i in range(3):
        ch3.basic_publish(amqp.Message('o%d' % i), exchange='', routing_key=q)
    deadline = time.time() + 1
    while len(ev) < 3 and time.time() < deadline:
        try:
            c.drain_events(timeout=0.3)
        except Exception:
            pass
    out('  x-max-length=1 x-overflow=reject-publish, 3 confirmed publishes -> %s; queue: %s' % (ev, fmt_msgs(drain_get(ch3, q))))
    ch3.queue_delete(q)
    c.close()


@probe
def p11_cancel_unacked():
    out('== p11 unacked after basic_cancel ==')
    c, ch = setup_conn()
    q = Q(ch, N('cu'), auto_delete=False)
    for i in range(1, 6):
        pub(ch, '', q, 'm%d' % i)
    cc = connect()
    cch = cc.channel()
    cch.basic_qos(0, 3, False)
    held = []
    tag = cch.basic_consume(q, callback=lambda m: held.append(m))
    deadline = time.time() + 1
    while len(held) < 3 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.2)
        except Exception:
            pass
    cch.basic_cancel(tag)
    time.sleep(0.2)
    r = ch.queue_declare(q, passive=True)
    out('  consumer (prefetch 3) holds m1..m3 unacked, basic_cancel: ready=%d consumers=%d' % (r.message_count, r.consumer_count))
    cch.basic_ack(held[0].delivery_tag)
    cch.basic_nack(held[1].delivery_tag, requeue=True)
    time.sleep(0.2)
    try:
        cch.exchange_declare('amq.direct', 'direct', passive=True)
        out('  ack(m1) and nack-requeue(m2) after cancel: OK')
    except Exception as e:
        out('  ack after cancel: %s' % errinfo(e))
    r = ch.queue_declare(q, passive=True)
    out('  after ack m1 + nack m2: ready=%d' % r.message_count)
    cc.close()
    time.sleep(0.2)
    out('  after consumer connection closed -> queue: %s' % fmt_msgs(drain_get(ch, q)))
    ch.queue_delete(q)
    c.close()


@probe
def p12_name_length():
    out('== p12 name length ==')
    for n in (255, 256):
        name = (RUN + 'L' * 300)[:n]
        try_err('queue_declare name of %d bytes' % n, None,
                lambda c, ch, name=name: (CLEAN_Q.add(name), ch.queue_declare(name, auto_delete=True).queue.__len__())[1])
        try_err('exchange_declare name of %d bytes' % n, None,
                lambda c, ch, name=name: (CLEAN_X.add(name), ch.exchange_declare(name, 'direct', auto_delete=True))[1])
    # raw frame: queue.declare with a 256-byte name is impossible on the wire (shortstr length is 1 octet)
    out('  note: shortstr length is a single octet, a 256-byte name cannot be encoded')
    try_err('queue_declare name with non-ASCII UTF-8 (é)', None,
            lambda c, ch: (CLEAN_Q.add(RUN + 'é'), ch.queue_declare(RUN + 'é', auto_delete=True).queue)[1])
    try_err('queue_declare name with space and slash', None,
            lambda c, ch: (CLEAN_Q.add(RUN + ' a/b'), ch.queue_declare(RUN + ' a/b', auto_delete=True).queue)[1])
    try_err('routing key of 255 bytes', None,
            lambda c, ch: pub(ch, 'amq.direct', 'k' * 255, 'x'))


@probe
def p13_durable_mix():
    out('== p13 durable exchange + transient queue ==')
    c, ch = setup_conn()
    x = X(ch, N('dx'), 'direct', durable=True, auto_delete=False)
    q = Q(ch, N('tq'), durable=False, auto_delete=False)
    try:
        ch.queue_bind(q, x, 'k')
        pub(ch, x, 'k', 'ok')
        time.sleep(0.1)
        out('  durable exchange -> transient queue bind: OK; routed: %s' % fmt_msgs(drain_get(ch, q)))
    except Exception as e:
        out('  durable exchange -> transient queue bind: %s' % errinfo(e))
    x2 = X(ch, N('tx'), 'direct', durable=False, auto_delete=False)
    q2 = Q(ch, N('dq'), durable=True, auto_delete=False)
    try:
        ch.queue_bind(q2, x2, 'k')
        out('  transient exchange -> durable queue bind: OK')
    except Exception as e:
        out('  transient exchange -> durable queue bind: %s' % errinfo(e))
    c.close()


@probe
def p14_advanced():
    out('== p14 e2e, alternate exchange, DLX, max-length, TTL, priority ==')
    c, ch = setup_conn()
    # e2e
    src = X(ch, N('e2e.src'), 'topic', auto_delete=False)
    dst = X(ch, N('e2e.dst'), 'direct', auto_delete=False)
    q = Q(ch, N('e2e.q'), auto_delete=False)
    ch.exchange_bind(dst, src, 'a.*')
    ch.queue_bind(q, dst, 'a.b')
    for k in ('a.b', 'a.c', 'x.y'):
        pub(ch, src, k, k)
    time.sleep(0.1)
    out('  e2e: topic src -(a.*)-> direct dst -(a.b)-> q ; publish a.b,a.c,x.y -> q got: %s' % fmt_msgs(drain_get(ch, q)))
    ch.exchange_bind(src, dst, 'loop')
    ch.queue_bind(q, src, 'loop')
    pub(ch, src, 'loop', 'loopmsg')
    time.sleep(0.1)
    out('  e2e cycle (src<->dst both bound, q on src) publish "loop" -> q got: %s' % fmt_msgs(drain_get(ch, q)))
    # alternate exchange
    ae = X(ch, N('ae'), 'fanout', auto_delete=False)
    aeq = Q(ch, N('aeq'), auto_delete=False)
    ch.queue_bind(aeq, ae, '')
    main = X(ch, N('main'), 'direct', auto_delete=False, arguments={'alternate-exchange': ae})
    mq = Q(ch, N('mainq'), auto_delete=False)
    ch.queue_bind(mq, main, 'good')
    pub(ch, main, 'good', 'g')
    pub(ch, main, 'bad', 'b')
    time.sleep(0.1)
    out('  AE: main(direct, alternate-exchange=ae fanout) good->mainq; publish good,bad -> mainq: %s ; aeq: %s' % (
        fmt_msgs(drain_get(ch, mq)), fmt_msgs(drain_get(ch, aeq))))
    cr = connect(confirm=False)
    crch = cr.channel()
    rets = []
    crch.events['basic_return'].add(lambda exc, ex, rk, m: rets.append((exc.reply_code, exc.reply_text)))
    crch.basic_publish(amqp.Message('m'), exchange=main, routing_key='bad', mandatory=True)
    main2 = X(ch, N('main2'), 'direct', auto_delete=False, arguments={'alternate-exchange': N('missing-ae')})
    crch.basic_publish(amqp.Message('m2'), exchange=main2, routing_key='bad', mandatory=True)
    crch.basic_qos(0, 0, False)
    try:
        cr.drain_events(timeout=0.5)
    except Exception:
        pass
    time.sleep(0.1)
    out('  mandatory to main with key routed by AE -> returns: %s (aeq got %d)' % (rets[:1] if rets and len(rets) > 1 else [], len(drain_get(ch, aeq))))
    out('  mandatory to exchange whose AE does not exist -> returns: %s' % rets[-1:])
    cr.close()
    # DLX and x-death
    dlx = X(ch, N('dlx'), 'fanout', auto_delete=False)
    dlq = Q(ch, N('dlq'), auto_delete=False)
    ch.queue_bind(dlq, dlx, '')
    work = Q(ch, N('work'), auto_delete=False, arguments={'x-dead-letter-exchange': dlx})
    pub(ch, '', work, 'dead1', application_headers={'h': 1})
    m = ch.basic_get(work, no_ack=False)
    ch.basic_nack(m.delivery_tag, requeue=True)
    m = ch.basic_get(work, no_ack=False)
    ch.basic_nack(m.delivery_tag, requeue=False)
    time.sleep(0.1)
    d = ch.basic_get(dlq, no_ack=True)
    out('  nack(requeue=True) then nack(requeue=False) on q with DLX (fanout) -> dlq got %r redelivered=%s routing_key=%r exchange=%r' % (
        d.body, d.delivery_info['redelivered'], d.delivery_info['routing_key'], d.delivery_info['exchange']))
    out('    headers: %r' % (d.properties.get('application_headers'),))
    out('    other props: %r' % ({k: v for k, v in d.properties.items() if k != 'application_headers'},))
    # second death: republish the dead message back to work, reject again
    pub(ch, '', work, d.body, application_headers=d.properties['application_headers'])
    m = ch.basic_get(work, no_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.1)
    d2 = ch.basic_get(dlq, no_ack=True)
    out('  republished the dead-lettered message (with its headers) to work, basic_reject(requeue=False) again ->')
    out('    headers: %r' % (d2.properties.get('application_headers'),))
    # death in two different queues: dlq2 with dlx back to work
    dlx2 = X(ch, N('dlx2'), 'fanout', auto_delete=False)
    q2 = Q(ch, N('work2'), auto_delete=False, arguments={'x-dead-letter-exchange': dlx2})
    ch.queue_bind(work, dlx2, '')
    pub(ch, '', q2, 'hop', application_headers=d2.properties['application_headers'])
    m = ch.basic_get(q2, no_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.1)
    m = ch.basic_get(work, no_ack=True)
    out('  that message published to work2 (DLX->work), rejected there -> arrives in work with headers:')
    out('    %r' % (m.properties.get('application_headers'),))
    # dead-letter routing key
    dlxd = X(ch, N('dlxd'), 'direct', auto_delete=False)
    dlqd = Q(ch, N('dlqd'), auto_delete=False)
    ch.queue_bind(dlqd, dlxd, 'dead-key')
    w3 = Q(ch, N('work3'), auto_delete=False, arguments={'x-dead-letter-exchange': dlxd, 'x-dead-letter-routing-key': 'dead-key'})
    ch.queue_bind(w3, 'amq.topic', N('orig.key'))
    ch.queue_bind(w3, 'amq.direct', N('orig'))
    pub(ch, 'amq.topic', N('orig.key'), 'rk', application_headers={'CC': [N('cc1')]})
    m = ch.basic_get(w3, no_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.1)
    d = ch.basic_get(dlqd, no_ack=True)
    out('  x-dead-letter-routing-key=dead-key, published via amq.topic with CC header -> dlq routing_key=%r exchange=%r' % (
        d.delivery_info['routing_key'], d.delivery_info['exchange']))
    out('    headers: %r' % (d.properties.get('application_headers'),))
    # DLX exchange missing -> message dropped
    w4 = Q(ch, N('work4'), auto_delete=False, arguments={'x-dead-letter-exchange': N('nodlx')})
    pub(ch, '', w4, 'lost')
    m = ch.basic_get(w4, no_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    time.sleep(0.1)
    out('  DLX set to missing exchange, reject(requeue=False): channel ok, queue now %s' % fmt_msgs(drain_get(ch, w4)))
    # max-length drop-head
    ml = Q(ch, N('maxlen'), auto_delete=False, arguments={'x-max-length': 3})
    for i in range(1, 6):
        pub(ch, '', ml, 'm%d' % i)
    r = ch.queue_declare(ml, passive=True)
    out('  x-max-length=3 (default overflow drop-head), publish m1..m5 -> count %d, queue: %s' % (r.message_count, fmt_msgs(drain_get(ch, ml))))
    mld = Q(ch, N('maxlendlx'), auto_delete=False, arguments={'x-max-length': 2, 'x-dead-letter-exchange': dlx})
    drain_get(ch, dlq)
    for i in range(1, 5):
        pub(ch, '', mld, 'm%d' % i)
    time.sleep(0.1)
    got = []
    while True:
        d = ch.basic_get(dlq, no_ack=True)
        if d is None:
            break
        xd = d.properties['application_headers']['x-death'][0]
        got.append('%s(reason=%s)' % (d.body, xd['reason']))
    out('  x-max-length=2 + DLX, publish m1..m4 -> queue: %s ; dead-lettered: %s' % (fmt_msgs(drain_get(ch, mld)), ' '.join(got)))
    # unacked + max-length: unacked don't count; requeue into a full queue drops from the head
    for held, after in [(1, ['u2', 'u3']), (2, ['u3', 'u4']), (1, ['u2']), (2, ['u3']), (1, ['u2', 'u3', 'u4'])]:
        mq2 = Q(ch, N('mlx%d%d' % (held, len(after))), auto_delete=False, arguments={'x-max-length': 2})
        for i in range(1, held + 1):
            pub(ch, '', mq2, 'u%d' % i)
        chu = c.channel()
        for _ in range(held):
            chu.basic_get(mq2, no_ack=False)
        for bb in after:
            pub(ch, '', mq2, bb)
        ready = ch.queue_declare(mq2, passive=True).message_count
        chu.close()
        time.sleep(0.2)
        out('  x-max-length=2: %d held unacked, then published %s; ready before close=%d -> after holder channel closes: %s' % (
            held, ','.join(after), ready, fmt_msgs(drain_get(ch, mq2))))
    mlb = Q(ch, N('maxlenb'), auto_delete=False, arguments={'x-max-length-bytes': 10})
    for b in ('aaaa', 'bbbb', 'cccc', 'dddddddddddd'):
        pub(ch, '', mlb, b)
    out('  x-max-length-bytes=10, publish 4,4,4,12-byte bodies -> queue: %s' % fmt_msgs(drain_get(ch, mlb)))
    # TTL expiry into DLX
    drain_get(ch, dlq)
    tq = Q(ch, N('ttlq'), auto_delete=False, arguments={'x-message-ttl': 100, 'x-dead-letter-exchange': dlx})
    pub(ch, '', tq, 'expire-me')
    pub(ch, '', tq, 'expire-me-too', expiration='50')
    time.sleep(0.4)
    r = ch.queue_declare(tq, passive=True)
    out('  x-message-ttl=100 + DLX, after 400ms: count=%d' % r.message_count)
    while True:
        d = ch.basic_get(dlq, no_ack=True)
        if d is None:
            break
        out('    dlq got %r rk=%r props=%r' % (d.body, d.delivery_info['routing_key'], d.properties))
    # per-message expiration, head-of-line
    eq = Q(ch, N('expq'), auto_delete=False)
    pub(ch, '', eq, 'long', expiration='10000')
    pub(ch, '', eq, 'short', expiration='50')
    time.sleep(0.3)
    r = ch.queue_declare(eq, passive=True)
    out('  per-msg expiration: long(10s) then short(50ms), after 300ms passive count=%d; get: %s' % (r.message_count, fmt_msgs(drain_get(ch, eq))))
    pub(ch, '', eq, 'zero', expiration='0')
    time.sleep(0.05)
    out('  expiration="0" with no consumer -> get: %s' % fmt_msgs(drain_get(ch, eq)))
    # ttl 0 with consumer present?
    # priority
    pq = Q(ch, N('prio'), auto_delete=False, arguments={'x-max-priority': 10})
    for i, p in enumerate([1, 5, 3, 5, 0]):
        pub(ch, '', pq, 'p%d#%d' % (p, i + 1), priority=p)
    pub(ch, '', pq, 'none#6')
    pub(ch, '', pq, 'p200#7', priority=200)
    out('  x-max-priority=10, publish prio 1,5,3,5,0,(none),200 -> get order: %s' % fmt_msgs(drain_get(ch, pq)))
    pq2 = Q(ch, N('prio2'), auto_delete=False, arguments={'x-max-priority': 3})
    for i, p in enumerate([1, 5, 3, 9, 0]):
        pub(ch, '', pq2, 'p%d#%d' % (p, i + 1), priority=p)
    out('  x-max-priority=3, publish prio 1,5,3,9,0 -> get order: %s' % fmt_msgs(drain_get(ch, pq2)))
    npq = Q(ch, N('noprio'), auto_delete=False)
    for i, p in enumerate([1, 5, 3]):
        pub(ch, '', npq, 'p%d#%d' % (p, i + 1), priority=p)
    out('  no x-max-priority, publish prio 1,5,3 -> get order: %s' % fmt_msgs(drain_get(ch, npq)))
    # requeue within priority queue
    for i, p in enumerate([5, 5, 1]):
        pub(ch, '', pq, 'p%d#%d' % (p, i + 1), priority=p)
    ch2 = c.channel()
    a = ch2.basic_get(pq, no_ack=False)
    ch2.basic_nack(a.delivery_tag, requeue=True)
    time.sleep(0.1)
    out('  prio queue: publish 5#1,5#2,1#3; get 5#1 and requeue -> order: %s' % fmt_msgs(drain_get(ch, pq)))
    c.close()


@probe
def p15_misc():
    out('== p15 misc ==')
    c, ch = setup_conn()
    q = Q(ch, N('misc'), auto_delete=False)
    r = ch.queue_declare(q, passive=True)
    out('  passive declare-ok returns queue=%r message_count=%d consumer_count=%d' % (r.queue, r.message_count, r.consumer_count))
    pub(ch, '', q, 'a')
    pub(ch, '', q, 'b')
    m = ch.basic_get(q, no_ack=True)
    out('  basic_get-ok: message_count (remaining) = %r, delivery_tag=%r, exchange=%r routing_key=%r' % (
        m.delivery_info.get('message_count'), m.delivery_tag, m.delivery_info['exchange'], m.delivery_info['routing_key']))
    out('  basic_get on empty after draining: %r' % (ch.basic_get(q, no_ack=True) and ch.basic_get(q, no_ack=True)))
    # delivery tags are per channel and continue across get/consume
    ch2 = c.channel()
    for s in ('t1', 't2', 't3'):
        pub(ch, '', q, s)
    tags = [ch2.basic_get(q, no_ack=True).delivery_tag for _ in range(3)]
    out('  delivery tags on a fresh channel for 3 gets (no_ack): %s' % tags)
    # no_local ignored?
    # consumer tag format
    cc = connect()
    cch = cc.channel()
    t = cch.basic_consume(q, callback=lambda m: None)
    out('  server-generated consumer tag: %r' % t)
    cc.close()
    # publish to default exchange with routing key = queue name of amq.gen
    # queue declared with name "" twice -> different names
    # basic.cancel from server when queue deleted
    cc = connect()
    cch = cc.channel()
    cancelled = []
    q2 = Q(ch, N('cancelme'), auto_delete=False)
    cch.basic_consume(q2, consumer_tag='ct', callback=lambda m: None, on_cancel=lambda tag: cancelled.append(tag))
    ch.queue_delete(q2)
    try:
        cc.drain_events(timeout=0.5)
    except Exception:
        pass
    out('  queue deleted under a consumer: server basic.cancel received for %s' % cancelled)
    cc.close()
    # redelivered flag after a consumer's channel closes mid-flight and another consumer picks up
    # message count visible right after publish without confirms
    c3 = connect(confirm=False)
    c3ch = c3.channel()
    q3 = Q(c3ch, N('noconfirm'), auto_delete=False)
    for i in range(100):
        c3ch.basic_publish(amqp.Message('x'), '', q3)
    r = c3ch.queue_declare(q3, passive=True)
    out('  100 publishes w/o confirms then passive declare on same channel: message_count=%d' % r.message_count)
    c3ch.queue_delete(q3)
    c3.close()
    c.close()


@probe
def p16_extras():
    out('== p16 extras ==')
    c, ch = setup_conn()
    # internal exchange (py-amqp has no internal flag: send Exchange.Declare by hand)
    ix = N('internal')
    CLEAN_X.add(ix)
    ch.send_method((40, 10), 'BssbbbbbF', (0, ix, 'fanout', False, False, True, True, False, {}),
                   wait=[(40, 11)])
    try_err('basic_publish to internal exchange', None, lambda c2, ch2: pub(ch2, ix, 'k', 'b'))
    # single active consumer
    q = Q(ch, N('sac'), auto_delete=False, arguments={'x-single-active-consumer': True})
    cc = connect()
    got = []
    chs = []
    for tag in ('S1', 'S2'):
        cch = cc.channel()
        cch.basic_consume(q, consumer_tag=tag, callback=lambda m, tag=tag, cch=cch: (got.append('%s:%s' % (tag, m.body)), cch.basic_ack(m.delivery_tag)))
        chs.append(cch)
    for i in range(1, 5):
        pub(ch, '', q, 's%d' % i)
    deadline = time.time() + 1
    while len(got) < 4 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.2)
        except Exception:
            pass
    r = ch.queue_declare(q, passive=True)
    out('  x-single-active-consumer: S1,S2 subscribed, 4 msgs -> %s ; declare-ok consumer_count=%d' % (' '.join(got), r.consumer_count))
    chs[0].basic_cancel('S1')
    for i in range(5, 7):
        pub(ch, '', q, 's%d' % i)
    deadline = time.time() + 1
    while len(got) < 6 and time.time() < deadline:
        try:
            cc.drain_events(timeout=0.2)
        except Exception:
            pass
    out('  after S1 cancels, 2 more -> %s' % ' '.join(got[4:]))
    cc.close()
    # x-expires
    eq = Q(ch, N('expires'), auto_delete=False, arguments={'x-expires': 200})
    time.sleep(0.6)
    out('  x-expires=200, unused for 600ms: %s' % exists_q(eq))
    # headers: queue bound twice with different args, message matches both
    hx = X(ch, N('hdr2'), 'headers', auto_delete=False)
    hq = Q(ch, N('hq2'), auto_delete=False)
    ch.queue_bind(hq, hx, '', arguments={'a': 1})
    ch.queue_bind(hq, hx, '', arguments={'b': 2})
    pub(ch, hx, '', 'both', application_headers={'a': 1, 'b': 2})
    time.sleep(0.1)
    out('  headers: queue bound twice (a=1) and (b=2), msg a=1,b=2 -> copies: %d' % len(drain_get(ch, hq)))
    ch.queue_bind(hq, hx, '', arguments={'a': 1})
    ch.queue_unbind(hq, hx, '', arguments={'b': 2})
    pub(ch, hx, '', 'b-only', application_headers={'b': 2})
    time.sleep(0.1)
    out('  unbind (b=2) with matching args -> msg b=2 copies: %d' % len(drain_get(ch, hq)))
    ch.queue_unbind(hq, hx, '', arguments={'a': 2})
    pub(ch, hx, '', 'a-only', application_headers={'a': 1})
    time.sleep(0.1)
    out('  unbind with non-matching args (a=2) -> binding (a=1) kept, msg a=1 copies: %d' % len(drain_get(ch, hq)))
    # exclusive queue: another channel of the same connection may use it
    eq2 = Q(ch, N('exsame'), exclusive=True)
    ch2 = c.channel()
    pub(ch, '', eq2, 'x')
    m = ch2.basic_get(eq2, no_ack=True)
    out('  exclusive queue used from another channel of same connection: basic_get -> %r' % (m and m.body))
    # requeued message via basic_get shows redelivered and message_count
    q2 = Q(ch, N('rd'), auto_delete=False)
    pub(ch, '', q2, 'x')
    pub(ch, '', q2, 'y')
    m = ch2.basic_get(q2, no_ack=False)
    ch2.basic_reject(m.delivery_tag, requeue=True)
    time.sleep(0.1)
    m = ch2.basic_get(q2, no_ack=True)
    out('  basic_get after reject(requeue): body=%r redelivered=%r message_count=%r' % (
        m.body, m.delivery_info['redelivered'], m.delivery_info.get('message_count')))
    # publish to default exchange to another connection's exclusive queue: delivered?
    oc = connect()
    och = oc.channel()
    xq = Q(och, N('exother'), exclusive=True)
    pub(ch, '', xq, 'from-other-conn')
    time.sleep(0.1)
    m = och.basic_get(xq, no_ack=True)
    out('  publish from conn B to conn A\'s exclusive queue via "" -> A gets %r' % (m and m.body))
    oc.close()
    # nack multiple with requeue=False + DLX: order in DLQ
    dlx = X(ch, N('dlx3'), 'fanout', auto_delete=False)
    dlq = Q(ch, N('dlq3'), auto_delete=False)
    ch.queue_bind(dlq, dlx, '')
    w = Q(ch, N('w3'), auto_delete=False, arguments={'x-dead-letter-exchange': dlx})
    for i in range(1, 4):
        pub(ch, '', w, 'k%d' % i)
    ms = [ch2.basic_get(w, no_ack=False) for _ in range(3)]
    ch2.basic_nack(ms[2].delivery_tag, multiple=True, requeue=False)
    time.sleep(0.2)
    out('  nack(multiple, requeue=False) of k1..k3 -> DLQ order: %s' % fmt_msgs(drain_get(ch, dlq)))
    # message TTL: redelivered message keeps/loses TTL? expiration=0 with a waiting consumer
    tq = Q(ch, N('ttl0'), auto_delete=False)
    cc = connect()
    cch = cc.channel()
    got = []
    cch.basic_consume(tq, callback=lambda m: got.append(m.body), no_ack=True)
    pub(ch, '', tq, 'zero-ttl-with-consumer', expiration='0')
    try:
        cc.drain_events(timeout=0.5)
    except Exception:
        pass
    out('  expiration="0" with a waiting consumer -> delivered: %s' % got)
    cc.close()
    c.close()


def cleanup():
    c = connect()
    ch = c.channel()
    for q in sorted(CLEAN_Q):
        try:
            ch.queue_delete(q)
        except Exception:
            ch = c.channel()
    for x in sorted(CLEAN_X):
        try:
            ch.exchange_delete(x)
        except Exception:
            ch = c.channel()
    c.close()


def main():
    sel = sys.argv[1:]
    out('run prefix: %s (names below contain it)' % RUN)
    try:
        for p in PROBES:
            if sel and not any(s in p.__name__ for s in sel):
                continue
            try:
                p()
            except Exception as e:
                out('  !! probe %s crashed: %s' % (p.__name__, errinfo(e)))
                import traceback
                traceback.print_exc()
    finally:
        cleanup()


if __name__ == '__main__':
    main()
