"""Differential scenarios: one suite, run unchanged against RabbitMQ and against
warren-server, printing one JSON document of observations (where each message arrives, in
which order, with which redelivered flag; error codes and texts; counts).

usage: scenarios.py HOST PORT

Every name carries a random per-run prefix so that runs against a shared RabbitMQ do not
collide; the output replaces it with "P" and server-generated names with a placeholder, so
that the two documents can be compared byte for byte.
"""
import json
import re
import sys
import time
import uuid

import pika
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError

HOST, PORT = sys.argv[1], int(sys.argv[2])
PREFIX = "wdiff-" + uuid.uuid4().hex[:10]


NAMES = set()


def n(name):
    NAMES.add(PREFIX + "." + name)
    return PREFIX + "." + name


def cleanup():
    """Deletes every queue and exchange this run may have declared (a shared RabbitMQ
    keeps them otherwise)."""
    conn = connect()
    for name in sorted(NAMES):
        for delete in ("queue_delete", "exchange_delete"):
            try:
                ch = conn.channel()
                getattr(ch, delete)(name)
                ch.close()
            except (ChannelClosedByBroker, pika.exceptions.ChannelWrongStateError):
                pass
    conn.close()


def connect():
    params = pika.ConnectionParameters(HOST, PORT, heartbeat=0, blocked_connection_timeout=10)
    return pika.BlockingConnection(params)


def normalise(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.replace(PREFIX, "P")
        value = re.sub(r"amq\.gen-[A-Za-z0-9_\-]+", "amq.gen-*", value)
        return re.sub(r"amq\.ctag-[A-Za-z0-9_\-]+", "amq.ctag-*", value)
    if isinstance(value, dict):
        return {normalise(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    return value


def settle(conn, seconds=0.5):
    """Lets deliveries arrive: process_data_events returns at the first event, so loop."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)


def error(e):
    return {"code": e.reply_code, "text": e.reply_text}


def drain(ch, queue, ack=True):
    """Fetches every ready message: a list of [body, redelivered]."""
    out = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=ack)
        if method is None:
            return out
        out.append([body, method.redelivered])


def publish(ch, exchange, key, body, **props):
    ch.basic_publish(exchange, key, body, pika.BasicProperties(**props))


def declare_queues(ch, *names, **kw):
    for q in names:
        ch.queue_declare(n(q), **kw)


def routing(conn):
    ch = conn.channel()
    obs = {}
    # direct
    ch.exchange_declare(n("direct"), "direct")
    declare_queues(ch, "d1", "d2")
    ch.queue_bind(n("d1"), n("direct"), "a")
    ch.queue_bind(n("d2"), n("direct"), "b")
    ch.queue_bind(n("d2"), n("direct"), "a")
    for key in ["a", "b", "c", "a"]:
        publish(ch, n("direct"), key, "direct-" + key)
    obs["direct"] = {q: drain(ch, n(q)) for q in ["d1", "d2"]}
    # topic
    ch.exchange_declare(n("topic"), "topic")
    declare_queues(ch, "t1", "t2", "t3")
    ch.queue_bind(n("t1"), n("topic"), "*.orange.*")
    ch.queue_bind(n("t2"), n("topic"), "*.*.rabbit")
    ch.queue_bind(n("t2"), n("topic"), "lazy.#")
    ch.queue_bind(n("t3"), n("topic"), "#")
    keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
            "lazy", "quick.brown.fox", "orange", "quick.orange.male.rabbit", "lazy.orange.male.rabbit",
            "a..rabbit", ""]
    for key in keys:
        publish(ch, n("topic"), key, "topic:" + key)
    obs["topic"] = {q: drain(ch, n(q)) for q in ["t1", "t2", "t3"]}
    # fanout
    ch.exchange_declare(n("fanout"), "fanout")
    declare_queues(ch, "f1", "f2")
    ch.queue_bind(n("f1"), n("fanout"), "ignored")
    ch.queue_bind(n("f2"), n("fanout"), "")
    publish(ch, n("fanout"), "any", "fan-1")
    publish(ch, n("fanout"), "", "fan-2")
    obs["fanout"] = {q: drain(ch, n(q)) for q in ["f1", "f2"]}
    # headers
    ch.exchange_declare(n("headers"), "headers")
    declare_queues(ch, "h_all", "h_any")
    ch.queue_bind(n("h_all"), n("headers"), "", {"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(n("h_any"), n("headers"), "", {"x-match": "any", "format": "pdf", "type": "log"})
    for i, headers in enumerate([{"format": "pdf", "type": "report"}, {"format": "pdf"},
                                 {"type": "log"}, {"format": "zip"}, {}]):
        publish(ch, n("headers"), "", "hdr-%d" % i, headers=headers)
    obs["headers"] = {q: drain(ch, n(q)) for q in ["h_all", "h_any"]}
    # default exchange and the amq.* exchanges
    declare_queues(ch, "dflt")
    publish(ch, "", n("dflt"), "by-name")
    ch.queue_bind(n("dflt"), "amq.direct", n("dflt"))
    publish(ch, "amq.direct", n("dflt"), "via-amq.direct")
    obs["default"] = drain(ch, n("dflt"))
    # properties survive the trip
    publish(ch, "", n("dflt"), "props", content_type="application/json", priority=3,
            correlation_id="c-1", reply_to="r", message_id="m-1", delivery_mode=2,
            headers={"k": "v", "n": 7}, type="t", app_id="app", timestamp=1700000000)
    method, props, body = ch.basic_get(n("dflt"), auto_ack=True)
    obs["properties"] = {"content_type": props.content_type, "priority": props.priority,
                         "correlation_id": props.correlation_id, "reply_to": props.reply_to,
                         "message_id": props.message_id, "delivery_mode": props.delivery_mode,
                         "headers": props.headers, "type": props.type, "app_id": props.app_id,
                         "timestamp": props.timestamp, "exchange": method.exchange,
                         "routing_key": method.routing_key, "body": body}
    # counts in declare-ok, purge-ok and delete-ok
    for i in range(3):
        publish(ch, "", n("dflt"), "count-%d" % i)
    time.sleep(0.2)  # RabbitMQ counts a message once its queue process has it
    ok = ch.queue_declare(n("dflt"), passive=True).method
    obs["declare_ok"] = [ok.message_count, ok.consumer_count]
    obs["purge_ok"] = ch.queue_purge(n("dflt")).method.message_count
    publish(ch, "", n("dflt"), "left")
    obs["delete_ok"] = ch.queue_delete(n("dflt")).method.message_count
    generated = ch.queue_declare("", exclusive=True).method.queue
    obs["server_named"] = generated.startswith("amq.gen-")
    ch.close()
    return obs


def expect_channel_error(conn, action):
    ch = conn.channel()
    try:
        action(ch)
        ch.basic_qos(prefetch_count=0)  # a synchronous call, to meet an asynchronous close
        return "no error"
    except ChannelClosedByBroker as e:
        return error(e)


def errors(conn):
    obs = {}
    setup = conn.channel()
    setup.queue_declare(n("e_q"))
    setup.exchange_declare(n("e_x"), "direct")
    setup.close()
    cases = {
        "passive_queue_missing": lambda ch: ch.queue_declare(n("missing"), passive=True),
        "passive_exchange_missing": lambda ch: ch.exchange_declare(n("missing"), passive=True),
        "queue_redeclare_durable": lambda ch: ch.queue_declare(n("e_q"), durable=True),
        "exchange_redeclare_kind": lambda ch: ch.exchange_declare(n("e_x"), "topic"),
        "exchange_reserved_name": lambda ch: ch.exchange_declare("amq.P-reserved", "direct"),
        "queue_reserved_name": lambda ch: ch.queue_declare("amq.P-reserved"),
        "bind_missing_exchange": lambda ch: ch.queue_bind(n("e_q"), n("missing"), "k"),
        "bind_missing_queue": lambda ch: ch.queue_bind(n("missing"), n("e_x"), "k"),
        "bind_default_exchange": lambda ch: ch.queue_bind(n("e_q"), "", "k"),
        "publish_missing_exchange": lambda ch: ch.basic_publish(n("missing"), "k", b"x"),
        "get_missing_queue": lambda ch: ch.basic_get(n("missing")),
        "consume_missing_queue": lambda ch: ch.basic_consume(n("missing"), lambda *a: None),
        "ack_unknown_tag": lambda ch: ch.basic_ack(99),
        "delete_exchange_amq": lambda ch: ch.exchange_delete("amq.direct"),
        "delete_queue_if_empty": lambda ch: (ch.basic_publish("", n("e_q"), b"x"),
                                             ch.queue_delete(n("e_q"), if_empty=True)),
        "delete_missing_queue": lambda ch: ch.queue_delete(n("missing")),
        "delete_missing_exchange": lambda ch: ch.exchange_delete(n("missing")),
    }
    for name, action in sorted(cases.items()):
        obs[name] = expect_channel_error(conn, action)
    # the connection survives channel errors
    ch = conn.channel()
    obs["after_errors"] = ch.queue_declare(n("e_q"), passive=True).method.message_count
    ch.queue_delete(n("e_q"))
    ch.exchange_delete(n("e_x"))
    ch.close()
    return obs


def exclusive(conn):
    obs = {}
    owner = connect()
    och = owner.channel()
    och.queue_declare(n("excl"), exclusive=True)
    och.basic_publish("", n("excl"), b"mine")
    obs["other_get"] = expect_channel_error(conn, lambda ch: ch.basic_get(n("excl")))
    obs["other_declare"] = expect_channel_error(conn, lambda ch: ch.queue_declare(n("excl"), exclusive=True))
    obs["owner_get"] = drain(och, n("excl"))
    owner.close()
    time.sleep(0.2)
    obs["after_owner_closed"] = expect_channel_error(
        conn, lambda ch: ch.queue_declare(n("excl"), passive=True))
    return obs


def acks(conn):
    obs = {}
    ch = conn.channel()
    ch.queue_declare(n("acks"))
    for i in range(6):
        publish(ch, "", n("acks"), "m%d" % i)
    tags = [ch.basic_get(n("acks"))[0].delivery_tag for _ in range(6)]
    obs["tags"] = tags
    ch.basic_ack(tags[0])                            # m0 gone
    ch.basic_nack(tags[1], requeue=True)             # m1 back
    ch.basic_reject(tags[2], requeue=False)          # m2 dropped
    ch.basic_ack(tags[4], multiple=True)             # m3, m4 gone
    ch.close()                                       # m5 back
    ch = conn.channel()
    obs["after_close"] = drain(ch, n("acks"))
    for i in range(3):
        publish(ch, "", n("acks"), "r%d" % i)
    ch.basic_get(n("acks"))
    ch.basic_get(n("acks"))
    ch.basic_recover(requeue=True)
    obs["after_recover"] = drain(ch, n("acks"))
    for i in range(3):
        publish(ch, "", n("acks"), "n%d" % i)
    last = [ch.basic_get(n("acks"))[0].delivery_tag for _ in range(3)][-1]
    ch.basic_nack(last, multiple=True, requeue=True)
    obs["after_nack_multiple"] = drain(ch, n("acks"))
    ch.queue_delete(n("acks"))
    ch.close()
    return obs


def consuming(conn):
    obs = {}
    ch = conn.channel()
    ch.queue_declare(n("pf"))
    ch.basic_qos(prefetch_count=2)
    got = []
    tag = ch.basic_consume(n("pf"), lambda c, m, p, b: got.append((m.delivery_tag, b)))
    for i in range(5):
        publish(ch, "", n("pf"), "p%d" % i)
    settle(conn)
    obs["prefetch_first"] = [b for _, b in got]
    ch.basic_ack(got[0][0])
    settle(conn)
    obs["prefetch_after_ack"] = [b for _, b in got]
    ch.basic_ack(got[-1][0], multiple=True)
    settle(conn)
    obs["prefetch_after_multi_ack"] = [b for _, b in got]
    ch.basic_cancel(tag)
    ok = ch.queue_declare(n("pf"), passive=True).method
    obs["after_cancel"] = [ok.message_count, ok.consumer_count]
    ch.queue_delete(n("pf"))
    # two consumers share a queue
    ch.queue_declare(n("rr"))
    seen = {"a": [], "b": []}
    ch.basic_consume(n("rr"), lambda c, m, p, b: seen["a"].append(b), auto_ack=True, consumer_tag=n("a"))
    ch.basic_consume(n("rr"), lambda c, m, p, b: seen["b"].append(b), auto_ack=True, consumer_tag=n("b"))
    for i in range(6):
        publish(ch, "", n("rr"), "rr%d" % i)
    settle(conn)
    obs["round_robin_counts"] = [len(seen["a"]), len(seen["b"])]
    obs["tag_reuse"] = None
    try:
        ch.basic_consume(n("rr"), lambda *a: None, consumer_tag=n("a"))
    except pika.exceptions.DuplicateConsumerTag:
        obs["tag_reuse"] = "refused by the client"
    ch.queue_delete(n("rr"))
    # auto-delete: the queue goes with its last consumer
    ch.queue_declare(n("auto"), auto_delete=True)
    tag = ch.basic_consume(n("auto"), lambda *a: None)
    ch.basic_cancel(tag)
    ch.close()
    obs["auto_delete_after_cancel"] = expect_channel_error(
        conn, lambda c: c.queue_declare(n("auto"), passive=True))
    return obs


def confirms(conn):
    obs = {}
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(n("cf"))
    for i in range(5):
        ch.basic_publish("", n("cf"), b"c%d" % i)
    obs["confirmed"] = ch.queue_declare(n("cf"), passive=True).method.message_count
    try:
        ch.basic_publish("", n("nowhere"), b"lost", mandatory=True)
        obs["mandatory_unroutable"] = "not returned"
    except UnroutableError as e:
        obs["mandatory_unroutable"] = [[m.method.reply_code, m.method.reply_text, m.body]
                                       for m in e.messages]
    ch.basic_publish("", n("nowhere"), b"dropped")
    obs["unroutable_without_mandatory"] = "accepted"
    ch.queue_delete(n("cf"))
    ch.close()
    return obs


def more(conn):
    obs = {}
    ch = conn.channel()
    # topic patterns with # in the middle, and unbinding
    ch.exchange_declare(n("t2"), "topic")
    declare_queues(ch, "mid")
    ch.queue_bind(n("mid"), n("t2"), "a.#.z")
    ch.queue_bind(n("mid"), n("t2"), "x.*")
    for key in ["a.z", "a.b.z", "a.b.c.z", "a.b", "x.y", "x.y.z", "x"]:
        publish(ch, n("t2"), key, key)
    ch.queue_unbind(n("mid"), n("t2"), "x.*")
    publish(ch, n("t2"), "x.after-unbind", "x.after-unbind")
    obs["topic_middle_hash"] = drain(ch, n("mid"))
    # basic.get reports the messages left
    for i in range(3):
        publish(ch, "", n("mid"), "left-%d" % i)
    time.sleep(0.1)
    obs["get_message_counts"] = [ch.basic_get(n("mid"), auto_ack=True)[0].message_count
                                 for _ in range(3)]
    # consumers: redelivery in order after the channel closes
    c2 = conn.channel()
    got = []
    c2.basic_consume(n("mid"), lambda c, m, p, b: got.append(b))
    for i in range(3):
        publish(ch, "", n("mid"), "again-%d" % i)
    settle(conn)
    c2.close()
    obs["consumer_redelivered"] = drain(ch, n("mid"))
    ch.close()
    # if-unused deletes and exclusive consumers
    obs["queue_delete_if_unused"] = expect_channel_error(conn, lambda c: (
        c.basic_consume(n("mid"), lambda *a: None),
        c.queue_delete(n("mid"), if_unused=True)))
    obs["exchange_delete_if_unused"] = expect_channel_error(
        conn, lambda c: c.exchange_delete(n("t2"), if_unused=True))
    obs["exclusive_consumer"] = expect_channel_error(conn, lambda c: (
        c.basic_consume(n("mid"), lambda *a: None, exclusive=True),
        c.basic_consume(n("mid"), lambda *a: None)))
    # an auto-delete exchange goes with its last binding
    ch = conn.channel()
    ch.exchange_declare(n("auto_x"), "fanout", auto_delete=True)
    ch.queue_bind(n("mid"), n("auto_x"))
    ch.queue_unbind(n("mid"), n("auto_x"))
    ch.close()
    obs["auto_delete_exchange"] = expect_channel_error(
        conn, lambda c: c.exchange_declare(n("auto_x"), "fanout", passive=True))
    ch = conn.channel()
    ch.queue_delete(n("mid"))
    ch.exchange_delete(n("t2"))
    ch.close()
    return obs


def transactions(conn):
    obs = {}
    cases = {
        "commit_without_select": lambda ch: ch.tx_commit(),
        "rollback_without_select": lambda ch: ch.tx_rollback(),
        "select_after_confirm": lambda ch: (ch.confirm_delivery(), ch.tx_select()),
        "confirm_after_select": lambda ch: (ch.tx_select(), ch.confirm_delivery()),
        "ack_unknown_in_tx": lambda ch: (ch.tx_select(), ch.basic_ack(42), ch.tx_commit()),
    }
    for name, action in sorted(cases.items()):
        obs[name] = expect_channel_error(conn, action)
    ch = conn.channel()
    ch.queue_declare(n("txq"))
    ch.tx_select()
    publish(ch, "", n("txq"), "a")
    publish(ch, "", n("txq"), "b")
    counts = [ch.queue_declare(n("txq"), passive=True).method.message_count]
    ch.tx_commit()
    counts.append(ch.queue_declare(n("txq"), passive=True).method.message_count)
    publish(ch, "", n("txq"), "c")
    ch.tx_rollback()
    counts.append(ch.queue_declare(n("txq"), passive=True).method.message_count)
    method = ch.basic_get(n("txq"))[0]
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    counts.append(ch.queue_declare(n("txq"), passive=True).method.message_count)
    obs["counts"] = counts
    ch.close()
    ch = conn.channel()
    obs["after_close"] = drain(ch, n("txq"))
    ch.queue_delete(n("txq"))
    ch.close()
    return obs


def arguments(conn):
    """Features driven by arguments and properties, which the wire must carry intact."""
    obs = {}
    ch = conn.channel()
    # exchange-to-exchange bindings
    ch.exchange_declare(n("e2e_src"), "topic")
    ch.exchange_declare(n("e2e_dst"), "direct")
    declare_queues(ch, "e2e_q")
    ch.exchange_bind(n("e2e_dst"), n("e2e_src"), "a.*")
    ch.queue_bind(n("e2e_q"), n("e2e_dst"), "a.b")
    for key in ["a.b", "a.c", "b.b"]:
        publish(ch, n("e2e_src"), key, "e2e:" + key)
    ch.exchange_unbind(n("e2e_dst"), n("e2e_src"), "a.*")
    publish(ch, n("e2e_src"), "a.b", "after-unbind")
    obs["exchange_to_exchange"] = drain(ch, n("e2e_q"))
    # alternate exchange
    ch.exchange_declare(n("ae"), "fanout")
    ch.exchange_declare(n("with_ae"), "direct", arguments={"alternate-exchange": n("ae")})
    declare_queues(ch, "ae_q", "main_q")
    ch.queue_bind(n("ae_q"), n("ae"))
    ch.queue_bind(n("main_q"), n("with_ae"), "k")
    publish(ch, n("with_ae"), "k", "routed")
    publish(ch, n("with_ae"), "other", "unrouted")
    obs["alternate_exchange"] = {q: drain(ch, n(q)) for q in ["ae_q", "main_q"]}
    # priority queue
    ch.queue_declare(n("prio"), arguments={"x-max-priority": 5})
    for body, prio in [("low", 1), ("high", 5), ("mid", 3), ("none", None)]:
        publish(ch, "", n("prio"), body, priority=prio)
    time.sleep(0.1)
    obs["priority_order"] = drain(ch, n("prio"))
    # dead-lettering on reject, with x-death
    ch.queue_declare(n("dlq"))
    ch.queue_declare(n("src"), arguments={"x-dead-letter-exchange": "",
                                          "x-dead-letter-routing-key": n("dlq")})
    publish(ch, "", n("src"), "doomed")
    method = ch.basic_get(n("src"))[0]
    ch.basic_reject(method.delivery_tag, requeue=False)
    time.sleep(0.1)
    method, props, body = ch.basic_get(n("dlq"), auto_ack=True)
    death = (props.headers or {}).get("x-death", [{}])[0]
    obs["dead_letter"] = {"body": body, "routing_key": method.routing_key,
                          "reason": death.get("reason"), "queue": death.get("queue"),
                          "count": death.get("count")}
    # length limit with reject-publish: the refused publish is nacked
    ch.queue_declare(n("short"), arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.close()
    ch = conn.channel()
    ch.confirm_delivery()
    outcomes = []
    for i in range(3):
        try:
            ch.basic_publish("", n("short"), b"s%d" % i)
            outcomes.append("ack")
        except pika.exceptions.NackError:
            outcomes.append("nack")
    obs["reject_publish"] = outcomes
    # consumer priorities: the higher-priority consumer gets the messages
    ch2 = conn.channel()
    ch2.queue_declare(n("cprio"))
    seen = {"low": 0, "high": 0}
    def counter(name):
        def on_message(c, m, p, b):
            seen[name] += 1
        return on_message
    ch2.basic_consume(n("cprio"), counter("low"), auto_ack=True, arguments={"x-priority": 1})
    ch2.basic_consume(n("cprio"), counter("high"), auto_ack=True, arguments={"x-priority": 10})
    for i in range(4):
        publish(ch2, "", n("cprio"), "cp%d" % i)
    settle(conn)
    obs["consumer_priority"] = seen
    for q in ["e2e_q", "ae_q", "main_q", "prio", "dlq", "src", "short", "cprio"]:
        ch2.queue_delete(n(q))
    for x in ["e2e_src", "e2e_dst", "ae", "with_ae"]:
        ch2.exchange_delete(n(x))
    ch.close()
    ch2.close()
    return obs


def connection_errors():
    obs = {}
    conn = connect()
    try:
        conn.channel().exchange_declare(n("odd"), "no-such-kind")
        obs["unknown_exchange_kind"] = "declared"
    except ConnectionClosedByBroker as e:
        obs["unknown_exchange_kind"] = error(e)
    conn = connect()
    ch = conn.channel()
    obs["flow_active"] = ch.flow(True)
    try:
        ch.flow(False)
        obs["flow_paused"] = "paused"
    except ConnectionClosedByBroker as e:
        obs["flow_paused"] = error(e)
    try:
        pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT, virtual_host=n("vhost")))
        obs["unknown_vhost"] = "opened"
    except pika.exceptions.ProbableAccessDeniedError as e:
        obs["unknown_vhost"] = "access denied"
    except ConnectionClosedByBroker as e:
        obs["unknown_vhost"] = error(e)
    try:
        creds = pika.PlainCredentials("guest", "wrong-password")
        pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT, credentials=creds))
        obs["bad_password"] = "opened"
    except pika.exceptions.ProbableAuthenticationError:
        obs["bad_password"] = "authentication refused"
    except ConnectionClosedByBroker as e:
        obs["bad_password"] = error(e)
    return obs


def main():
    conn = connect()
    observations = {
        "routing": routing(conn),
        "errors": errors(conn),
        "exclusive": exclusive(conn),
        "acks": acks(conn),
        "consuming": consuming(conn),
        "confirms": confirms(conn),
        "more": more(conn),
        "transactions": transactions(conn),
        "arguments": arguments(conn),
    }
    conn.close()
    observations["connection"] = connection_errors()
    cleanup()
    print(json.dumps(normalise(observations), sort_keys=True, indent=1))


if __name__ == "__main__":
    main()
