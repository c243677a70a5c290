#!/usr/bin/python3
"""Kombu's Redis transport on bench_redis's workload: the anchor for kelp.

One step per run, against the redis-server bench_redis was given:

  publish  Producer.publish of M JSON bodies of 100 bytes to a queue (the
           default exchange, routing key = queue name: one LPUSH each)
  consume  Consumer(prefetch_count=100, callbacks=[...]) + drain_events until
           the M messages a publish step left in the queue were consumed, each
           acked in the callback (ack emulation on, Kombu's default)

and prints one machine-readable line:

    kombu_result step=publish messages=20000 wall_ns=... cpu_ns=... kombu=5.2.4 python=3.11.2

The bodies are bench_redis's: JSON text with a sequence number, padded to
100 bytes, sent with content_type application/json (no serializer runs on
publish; the consumer decodes the JSON, as kelp's Consumer does). Every
message must arrive exactly once (checked by its sequence number), and after
consuming the queue must be empty and no unacked record left; the script
exits nonzero otherwise.
"""

import argparse
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue

BODY_SIZE = 100
PREFETCH = 100


def make_body(seq):
    # The same text bench_redis's kelp side publishes (common.hpp, json_body).
    head = '{"seq": %d, "task": "bench.process", "args": [1, 2, 3], "pad": "' % seq
    return head + 'x' * (BODY_SIZE - len(head) - 2) + '"}'


def bench_queue(name):
    return Queue(name, Exchange(''), routing_key=name)


def publish(url, name, messages):
    with Connection(url) as conn:
        queue = bench_queue(name)
        queue(conn.default_channel).declare()
        producer = Producer(conn.default_channel, routing_key=name)
        bodies = [make_body(seq) for seq in range(messages)]
        wall0, cpu0 = time.monotonic_ns(), time.process_time_ns()
        for body in bodies:
            producer.publish(body, routing_key=name, content_type='application/json',
                             content_encoding='utf-8')
        wall1, cpu1 = time.monotonic_ns(), time.process_time_ns()
        waiting = conn.default_channel.client.llen(name)
    errors = []
    if waiting != messages:
        errors.append('the queue holds %d messages after %d publishes' % (waiting, messages))
    return errors, wall1 - wall0, cpu1 - cpu0


def consume(url, name, messages):
    seen = bytearray(messages)
    errors = []
    state = {'count': 0}

    def on_body(body, message):
        seq = body.get('seq') if isinstance(body, dict) else None
        if not isinstance(seq, int) or not 0 <= seq < messages:
            errors.append('stray message %r' % (body,))
        elif seen[seq]:
            errors.append('message %d consumed twice' % seq)
        else:
            seen[seq] = 1
        state['count'] += 1
        message.ack()

    with Connection(url) as conn:
        queue = bench_queue(name)
        consumer = Consumer(conn.default_channel, [queue], callbacks=[on_body],
                            accept=['json'], prefetch_count=PREFETCH)
        consumer.consume()
        wall0, cpu0 = time.monotonic_ns(), time.process_time_ns()
        while state['count'] < messages and len(errors) < 10:
            conn.drain_events(timeout=30)
        wall1, cpu1 = time.monotonic_ns(), time.process_time_ns()
        consumer.cancel()
        client = conn.default_channel.client
        left = client.llen(name)
        unacked = client.hlen('unacked')
    missing = messages - sum(seen)
    if missing:
        errors.append('%d messages never consumed' % missing)
    if left:
        errors.append('%d messages left in the queue' % left)
    if unacked:
        errors.append('%d unacked records left after acking every message' % unacked)
    return errors, wall1 - wall0, cpu1 - cpu0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--url', required=True)
    parser.add_argument('--queue', required=True)
    parser.add_argument('--step', choices=['publish', 'consume'], required=True)
    parser.add_argument('--messages', type=int, default=20000)
    args = parser.parse_args()
    if args.messages <= 0:
        parser.error('--messages must be positive')
    if len(make_body(0)) != BODY_SIZE:
        parser.error('body template is %d bytes, not %d' % (len(make_body(0)), BODY_SIZE))

    step = publish if args.step == 'publish' else consume
    errors, wall, cpu = step(args.url, args.queue, args.messages)
    if errors:
        for error in errors[:10]:
            print('kombu_redis: ' + error, file=sys.stderr)
        return 1
    print('kombu_result step=%s messages=%d wall_ns=%d cpu_ns=%d kombu=%s python=%s' %
          (args.step, args.messages, wall, cpu, __import__('kombu').__version__,
           sys.version.split()[0]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
