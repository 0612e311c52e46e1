#!/usr/bin/env python3
"""Probes permission checks (configure / write / read) on each AMQP operation.

Usage:
  python3 scripts/permissions_probe.py
      against RabbitMQ at 127.0.0.1:5672 (guest/guest; rabbitmqctl must work, i.e. run as
      root). Creates a vhost and a user of its own and deletes them at the end.
  python3 scripts/permissions_probe.py --driven PORT VHOST USER PASSWORD
      against any broker on 127.0.0.1:PORT where the vhost and user exist and guest has full
      permissions in the vhost: each permission change is asked of the caller as a line
      `SET configure write read` or `CLEAR` on stdout, answered by any line on stdin
      (interop/tests/permissions.rs drives RabbitMQ and Warren so).
Prints one line per case, starting with `R `: the case, the permissions, and the answer.
"""
import subprocess
import sys
import uuid

import pika

DRIVEN = len(sys.argv) > 1 and sys.argv[1] == '--driven'
if DRIVEN:
    PORT, VHOST, USER, PASS = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
else:
    RUN = 'pp' + uuid.uuid4().hex[:6]
    PORT, VHOST, USER, PASS = 5672, RUN + '-vh', RUN + '-user', 'pw-' + RUN
NONE = '^nothing$'


def ctl(*args):
    subprocess.run(['rabbitmqctl', '-q'] + list(args), check=True, capture_output=True)


def set_permissions(perms):
    if DRIVEN:
        print('SET', *[p if p else '""' for p in perms], flush=True)
        sys.stdin.readline()
    else:
        ctl('set_permissions', '-p', VHOST, USER, *perms)


def clear_permissions():
    if DRIVEN:
        print('CLEAR', flush=True)
        sys.stdin.readline()
    else:
        ctl('clear_permissions', '-p', VHOST, USER)


def connect(user, password):
    return pika.BlockingConnection(pika.ConnectionParameters(
        '127.0.0.1', PORT, virtual_host=VHOST, credentials=pika.PlainCredentials(user, password),
        connection_attempts=1))


def admin():
    c = connect('guest', 'guest')
    return c, c.channel()


def user_channel():
    c = connect(USER, PASS)
    return c, c.channel()


def setup():
    c, ch = admin()
    ch.exchange_declare('src', 'direct')
    ch.exchange_declare('dst', 'fanout')
    ch.exchange_declare('ae', 'fanout')
    ch.exchange_declare('dlx', 'fanout')
    ch.queue_declare('q')
    ch.queue_bind('q', 'src', 'k')
    ch.exchange_bind('dst', 'src', 'k')
    c.close()


def report(text):
    print('R ' + text, flush=True)


def case(name, perms, op):
    """Runs op(ch) as the user, who has perms = (configure, write, read)."""
    setup()
    try:
        c, ch = user_channel()
    except Exception as e:  # noqa: BLE001
        report(f'{name:40} {perms!s:40} connect: {e!r}')
        return
    try:
        op(ch)
        if ch.is_open:
            ch.basic_qos(prefetch_count=1)  # a round trip, to see asynchronous errors
        report(f'{name:40} {perms!s:40} ok')
    except pika.exceptions.ChannelClosedByBroker as e:
        report(f'{name:40} {perms!s:40} {e.reply_code} {e.reply_text}')
    except pika.exceptions.ConnectionClosedByBroker as e:
        report(f'{name:40} {perms!s:40} conn {e.reply_code} {e.reply_text}')
    finally:
        if c.is_open:
            c.close()


A = '.*'
COUNTER = [0]


def fresh(prefix):
    """A name not used before, starting with prefix (so '^new' permissions match it)."""
    COUNTER[0] += 1
    return f'{prefix}{COUNTER[0]}'


def main():
    if DRIVEN:
        run_cases()
        return
    ctl('add_vhost', VHOST)
    ctl('add_user', USER, PASS)
    ctl('set_permissions', '-p', VHOST, 'guest', '.*', '.*', '.*')
    try:
        run_cases()
    finally:
        ctl('delete_user', USER)
        ctl('delete_vhost', VHOST)


def run_cases():
    ops = {
        'exchange.declare new': lambda ch: ch.exchange_declare(fresh('newx'), 'direct'),
        'exchange.declare existing': lambda ch: ch.exchange_declare('src', 'direct'),
        'exchange.declare passive': lambda ch: ch.exchange_declare('src', passive=True),
        'exchange.declare passive missing': lambda ch: ch.exchange_declare('nox', passive=True),
        'exchange.declare amq.x': lambda ch: ch.exchange_declare('amq.x', 'direct'),
        'exchange.declare default': lambda ch: ch.exchange_declare('', 'direct'),
        'exchange.declare ae new': lambda ch: ch.exchange_declare(
            fresh('newx'), 'direct', arguments={'alternate-exchange': 'ae'}),
        'exchange.declare ae existing': lambda ch: ch.exchange_declare(
            'src', 'direct', arguments={'alternate-exchange': 'ae'}),
        'exchange.delete': lambda ch: ch.exchange_delete('dst'),
        'exchange.delete missing': lambda ch: ch.exchange_delete('nox'),
        'exchange.delete amq.direct': lambda ch: ch.exchange_delete('amq.direct'),
        'queue.declare new': lambda ch: ch.queue_declare(fresh('newq')),
        'queue.declare server-named': lambda ch: ch.queue_declare(''),
        'queue.declare existing': lambda ch: ch.queue_declare('q'),
        'queue.declare passive': lambda ch: ch.queue_declare('q', passive=True),
        'queue.declare passive missing': lambda ch: ch.queue_declare('noq', passive=True),
        'queue.declare amq.q': lambda ch: ch.queue_declare('amq.q'),
        'queue.declare dlx new': lambda ch: ch.queue_declare(
            fresh('newq'), arguments={'x-dead-letter-exchange': 'dlx'}),
        'queue.declare dlx default': lambda ch: ch.queue_declare(
            fresh('newq'), arguments={'x-dead-letter-exchange': ''}),
        'queue.delete': lambda ch: ch.queue_delete('q'),
        'queue.delete missing': lambda ch: ch.queue_delete('noq'),
        'queue.purge': lambda ch: ch.queue_purge('q'),
        'queue.bind': lambda ch: ch.queue_bind('q', 'src', 'k2'),
        'queue.bind missing queue': lambda ch: ch.queue_bind('noq', 'src', 'k2'),
        'queue.bind default exchange': lambda ch: ch.queue_bind('q', '', 'k2'),
        'queue.unbind': lambda ch: ch.queue_unbind('q', 'src', 'k'),
        'exchange.bind': lambda ch: ch.exchange_bind('dst', 'src', 'k2'),
        'exchange.unbind': lambda ch: ch.exchange_unbind('dst', 'src', 'k'),
        'basic.publish': lambda ch: ch.basic_publish('src', 'k', b'm'),
        'basic.publish default': lambda ch: ch.basic_publish('', 'q', b'm'),
        'basic.publish missing': lambda ch: ch.basic_publish('nox', 'q', b'm'),
        'basic.get': lambda ch: ch.basic_get('q'),
        'basic.consume': lambda ch: ch.basic_consume('q', lambda *a: None),
        'basic.consume reply-to': lambda ch: ch.basic_consume(
            'amq.rabbitmq.reply-to', lambda *a: None, auto_ack=True),
        'publish user_id other': lambda ch: ch.basic_publish(
            'src', 'k', b'm', pika.BasicProperties(user_id='someone')),
        'publish user_id self': lambda ch: ch.basic_publish(
            'src', 'k', b'm', pika.BasicProperties(user_id=USER)),
    }
    perm_sets = [(A, A, A), (NONE, A, A), (A, NONE, A), (A, A, NONE), ('', '', ''),
                 ('^new', A, A), (A, '^q$', A), (A, A, '^q$')]
    for perms in perm_sets:
        set_permissions(perms)
        for name, op in ops.items():
            case(name, perms, op)
    # No permissions at all in the vhost.
    clear_permissions()
    try:
        user_channel()
        report('open without permissions: ok')
    except Exception as e:  # noqa: BLE001
        report(f'open without permissions: {e!r}')
    try:
        connect(USER, 'wrong')
    except Exception as e:  # noqa: BLE001
        report(f'wrong password: {e!r}')


if __name__ == '__main__':
    main()
