# -*- coding: utf-8 -*-
# amqp_publisher.py: the seed tutorial's publisher (lpe234, 2014-12-15), ported to Python 3
# only where the language or py-amqp 5 requires it: print is a function, xrange is range,
# the connection is opened with connect(), and the host comes from argv or AMQP_HOST.
__author__ = 'lpe234'
__date__ = '2014-12-15'
import json
import os
import sys

import amqp

host = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AMQP_HOST", "localhost:5672")
conn = amqp.Connection(host=host, userid="guest", password="guest", virtual_host="/", insist=False)
conn.connect()
chan = conn.channel()
for x in range(10):
    msg = json.dumps({'id': str(x) + '111', 'lists': [{'id': 12345}, {'id': 12345}, {'id': 15656}, {'id': '4545'}, ]})
    print(msg)
    msg = amqp.Message(msg)
    msg.properties["delivery_mode"] = 2
    chan.basic_publish(msg, exchange="sorting_room", routing_key="1111")
chan.close()
conn.close()
