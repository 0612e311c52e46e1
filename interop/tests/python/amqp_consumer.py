# -*- coding: utf-8 -*-
# amqp_consumer.py: the seed tutorial's consumer (lpe234, 2014-12-15), ported to Python 3
# only where the language or py-amqp 5 requires it: print is a function, the connection
# is opened with connect(), the wait loop calls conn.drain_events() (py-amqp 5's
# chan.wait() needs the method to wait for), and the host comes from argv or AMQP_HOST
# instead of "localhost:5672".
__author__ = 'lpe234'
__date__ = '2014-12-15'
import os
import sys

import amqp

host = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AMQP_HOST", "localhost:5672")
conn = amqp.Connection(host=host, userid="guest", password="guest", virtual_host="/", insist=False)
conn.connect()
chan = conn.channel()
chan.queue_declare(queue="po_box", durable=True, exclusive=False, auto_delete=False)
chan.exchange_declare(exchange="sorting_room", type="direct", durable=True, auto_delete=False, )
chan.queue_bind(queue="po_box", exchange="sorting_room", routing_key="1111")


def receive_callback(msg):
    print('Received: ' + msg.body + ' from channel #' + str(msg.channel.channel_id))


chan.basic_consume(queue='po_box', no_ack=True, callback=receive_callback, consumer_tag="consumer")
while True:
    conn.drain_events()
chan.basic_cancel("consumer")
chan.close()
conn.close()
