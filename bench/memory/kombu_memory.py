#!/usr/bin/python3
"""Kombu's memory transport on bench_memory's workload: the anchor for kelp.

Publishes, consumes and acks M messages of 100 bytes through
kombu.Connection('memory://') and prints one machine-readable line:

    kombu_result shape=one api=consumer messages=20000 wall_ns=... cpu_ns=...

Shapes (the same as bench_memory's):
  one  one thread, one Connection: publish a batch, drain until it is consumed
  two  a producer thread with its own Connection publishes as fast as it can;
       the main thread drains until every message was consumed

APIs:
  consumer  Producer.publish + Consumer(on_message=...) + Connection.drain_events
            (on_message skips Kombu's decode step: the callback reads the raw
            body, as kelp's callback does; the fastest honest way, see README)
  simple    SimpleQueue.put / SimpleQueue.get (decodes every message)

Both use the default exchange with the queue's name as routing key, as
bench_memory does. Bodies are bytes with no serializer, so Kombu sends them as
application/data; its virtual transport still base64-encodes them on publish.

The memory transport polls: drain_events sleeps `polling_interval` (1 s by
default) whenever every queue is empty. It is set to 0 here, the lowest value
Kombu takes (None is ignored and leaves the default); sleep(0) only yields.

Every message must arrive exactly once (checked by its sequence number); the
script exits nonzero otherwise.
"""

import argparse
import os
import sys
import threading
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue

BODY_SIZE = 100
SEQ_DIGITS = 10
TRANSPORT_OPTIONS = {'polling_interval': 0}


def make_body(seq):
    head = b'%0*d' % (SEQ_DIGITS, seq)
    return head + b'x' * (BODY_SIZE - len(head))


class Tally:
    """Counts deliveries and catches duplicates and strays by sequence number."""

    def __init__(self, total):
        self.total = total
        self.seen = bytearray(total)
        self.count = 0
        self.errors = []

    def record(self, body):
        if len(body) != BODY_SIZE:
            self.errors.append('body of %d bytes' % len(body))
            return
        seq = int(body[:SEQ_DIGITS])
        if not 0 <= seq < self.total:
            self.errors.append('stray sequence number %d' % seq)
        elif self.seen[seq]:
            self.errors.append('message %d consumed twice' % seq)
        else:
            self.seen[seq] = 1
        self.count += 1

    def check(self):
        missing = self.total - sum(self.seen)
        if missing:
            self.errors.append('%d messages never consumed' % missing)
        return self.errors


def bench_queue(name):
    # The default exchange: routed straight to the queue named by the key.
    return Queue(name, Exchange(''), routing_key=name)


class ConsumerApi:
    """Producer + Consumer(on_message) + drain_events."""

    def __init__(self, conn, queue, tally, consume):
        self.conn = conn
        self.queue = queue
        self.producer = Producer(conn.default_channel, routing_key=queue.name)
        self.consumer = None
        if consume:
            def on_message(message):
                tally.record(message.body)
                message.ack()

            self.consumer = Consumer(conn.default_channel, [queue], on_message=on_message,
                                     accept=['application/data'])
            self.consumer.consume()

    def publish(self, seq):
        self.producer.publish(make_body(seq), routing_key=self.queue.name)

    def drain_one(self, timeout):
        self.conn.drain_events(timeout=timeout)

    def close(self):
        if self.consumer is not None:
            self.consumer.cancel()


class SimpleApi:
    """SimpleQueue.put / SimpleQueue.get."""

    def __init__(self, conn, queue, tally, consume):
        self.simple = conn.SimpleQueue(queue, accept=['application/data'])
        self.tally = tally

    def publish(self, seq):
        self.simple.put(make_body(seq))

    def drain_one(self, timeout):
        message = self.simple.get(timeout=timeout)
        self.tally.record(message.body)
        message.ack()

    def close(self):
        self.simple.close()


APIS = {'consumer': ConsumerApi, 'simple': SimpleApi}


def run_one(api_class, messages, batch, name):
    tally = Tally(messages)
    with Connection('memory://', transport_options=TRANSPORT_OPTIONS) as conn:
        queue = bench_queue(name)
        queue(conn.default_channel).declare()
        api = api_class(conn, queue, tally, consume=True)
        wall0, cpu0 = time.monotonic_ns(), time.process_time_ns()
        sent = 0
        while sent < messages:
            end = min(sent + batch, messages)
            for seq in range(sent, end):
                api.publish(seq)
            sent = end
            while tally.count < sent:
                api.drain_one(timeout=10)
        wall1, cpu1 = time.monotonic_ns(), time.process_time_ns()
        api.close()
    return tally, wall1 - wall0, cpu1 - cpu0


def run_two(api_class, messages, name):
    tally = Tally(messages)
    failure = []
    with Connection('memory://', transport_options=TRANSPORT_OPTIONS) as conn:
        queue = bench_queue(name)
        queue(conn.default_channel).declare()
        api = api_class(conn, queue, tally, consume=True)
        start = threading.Barrier(2)

        def produce():
            try:
                with Connection('memory://', transport_options=TRANSPORT_OPTIONS) as pconn:
                    producer = api_class(pconn, queue, None, consume=False)
                    start.wait()
                    for seq in range(messages):
                        producer.publish(seq)
            except Exception as exc:  # reported by the main thread
                failure.append(repr(exc))
                start.abort()

        thread = threading.Thread(target=produce)
        thread.start()
        start.wait()
        wall0, cpu0 = time.monotonic_ns(), time.process_time_ns()
        while tally.count < messages and not failure:
            api.drain_one(timeout=10)
        wall1, cpu1 = time.monotonic_ns(), time.process_time_ns()
        thread.join()
        api.close()
    tally.errors.extend(failure)
    return tally, wall1 - wall0, cpu1 - cpu0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--messages', type=int, default=20000)
    parser.add_argument('--shape', choices=['one', 'two'], default='one')
    parser.add_argument('--api', choices=sorted(APIS), default='consumer')
    parser.add_argument('--batch', type=int, default=1000)
    args = parser.parse_args()
    if args.messages <= 0 or args.batch <= 0:
        parser.error('--messages and --batch must be positive')

    name = 'bench-%s-%d' % (args.shape, os.getpid())
    api_class = APIS[args.api]
    if args.shape == 'one':
        tally, wall, cpu = run_one(api_class, args.messages, args.batch, name)
    else:
        tally, wall, cpu = run_two(api_class, args.messages, name)
    errors = tally.check()
    if errors:
        for error in errors[:10]:
            print('kombu_memory: ' + error, file=sys.stderr)
        return 1
    print('kombu_result shape=%s api=%s messages=%d wall_ns=%d cpu_ns=%d kombu=%s python=%s' %
          (args.shape, args.api, args.messages, wall, cpu, __import__('kombu').__version__,
           sys.version.split()[0]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
