#!/usr/bin/python3
"""Python Kombu (Debian's python3-kombu 5.2.4) as a live peer of kelp's
redis:// transport on a real Redis server, and of its amqp:// transport on a
real RabbitMQ (py-amqp, Debian's python3-amqp).

    kombu_peer.py publish <spec.json>
        Declares the spec's queues and publishes its messages with
        kombu.Producer, in order.
    kombu_peer.py consume <spec.json> <report.json>
        Declares the spec's queues, consumes `count` messages (one
        kombu.Consumer per queue, so each message names its queue), acks
        each, and writes what Kombu made of them to <report.json>. Prints
        "ready" once its fanout subscriptions are in place.
    kombu_peer.py hold <spec.json>
        Consumes one message with prefetch_count 1, never acks it, prints
        "holding <report as JSON>" and sleeps until killed.

The spec is JSON written by kelp's test: {"url", "transport_options",
"queues": [{"name", "exchange", "type", "routing_key", "max_priority"}], "messages": [...],
"count", "timeout", "linger", "accept", "prefetch_count"}. Byte strings travel as base64; an integer
too big for kelp's JSON travels as {"$int": "<digits>"}.

Every failure exits non-zero with the reason on stderr.
"""
import base64
import json
import socket
import sys
import time

try:
    import kombu
except ImportError:
    sys.exit('kombu_peer.py: cannot import kombu: install the Debian package python3-kombu '
             '(scripts/install-deps test), and run this with /usr/bin/python3')


def from_spec(value):
    """Spec JSON to Python values: {"$int": "digits"} becomes an int."""
    if isinstance(value, dict):
        if set(value) == {'$int'}:
            return int(value['$int'])
        return {key: from_spec(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_spec(item) for item in value]
    return value


def b64(data):
    if isinstance(data, str):  # py-amqp hands out a utf-8 body already decoded
        data = data.encode('utf-8')
    return base64.b64encode(data).decode('ascii')


def connect(spec):
    return kombu.Connection(spec['url'], transport_options=spec.get('transport_options', {}))


def queue_of(entry):
    options = {}
    if 'max_priority' in entry:
        options['max_priority'] = entry['max_priority']
    exchange = entry.get('exchange', '')
    if not exchange:
        return kombu.Queue(entry['name'], **options)
    return kombu.Queue(entry['name'], kombu.Exchange(exchange, entry.get('type', 'direct')),
                       routing_key=entry.get('routing_key', ''), **options)


def body_of(body):
    if 'json' in body:
        return from_spec(body['json'])
    if 'text' in body:
        return body['text']
    return base64.b64decode(body['bytes_b64'])


def publish(spec):
    with connect(spec) as conn:
        producer = conn.Producer()
        queues = [queue_of(entry) for entry in spec.get('queues', [])]
        for queue in queues:
            queue(conn.default_channel).declare()
        for message in spec['messages']:
            exchange = message.get('exchange', '')
            if exchange:
                exchange = kombu.Exchange(exchange, message.get('type', 'direct'))
                exchange(conn.default_channel).declare()
            options = {}
            for name in ('serializer', 'content_type', 'content_encoding', 'compression',
                         'priority', 'expiration', 'delivery_mode'):
                if name in message:
                    options[name] = message[name]
            options.update(message.get('properties', {}))
            producer.publish(body_of(message['body']), exchange=exchange,
                             routing_key=message.get('routing_key', ''),
                             headers=from_spec(message.get('headers', {})), **options)


def report_of(queue, message):
    """What Kombu received, for kelp's test to compare with what it sent."""
    properties = dict(message.properties)
    properties.pop('delivery_tag', None)
    properties.pop('delivery_info', None)
    properties.pop('body_encoding', None)
    info = message.delivery_info or {}
    try:
        decoded = message.decode()
        if isinstance(decoded, bytes):
            decoded = {'bytes_b64': b64(decoded)}
        elif isinstance(decoded, str):
            decoded = {'text': decoded}
        else:
            decoded = {'json_text': json.dumps(decoded, sort_keys=True)}
    except Exception as error:  # reported, for the test to show
        decoded = {'error': f'{type(error).__name__}: {error}'}
    return {
        'queue': queue,
        'body_b64': b64(message.body),
        'decoded': decoded,
        'content_type': message.content_type,
        'content_encoding': message.content_encoding,
        # Sorted keys: the text kelp's dump_json writes for the same value.
        'headers_json': json.dumps(message.headers or {}, sort_keys=True),
        'properties': properties,
        'exchange': info.get('exchange'),
        'routing_key': info.get('routing_key'),
        'redelivered': bool(info.get('redelivered', False)),
    }


def subscribed(channel):
    """True once Redis lists the channel's pub/sub connection with a pattern
    (always on AMQP, where the broker binds fanout queues itself)."""
    if not getattr(channel, 'active_fanout_queues', None):
        return True
    connection = channel.subclient.connection
    if connection is None or connection._sock is None:
        return False
    host, port = connection._sock.getsockname()[:2]
    for client in channel.client.client_list():
        if client['addr'] == f'{host}:{port}':
            return int(client.get('psub', 0)) > 0
    return False


def wait_for_subscriptions(conn, channels, deadline):
    """Kombu subscribes to fanout channels on its first poll; a publish
    before Redis has the subscription would be missed."""
    while True:
        try:
            conn.drain_events(timeout=0.05)
        except socket.timeout:
            pass
        if all(subscribed(channel) for channel in channels):
            return
        if time.monotonic() > deadline:
            sys.exit('kombu_peer.py: the fanout subscriptions did not show in CLIENT LIST')


def consume(spec, report_path):
    received = []
    deadline = time.monotonic() + spec.get('timeout', 10)
    accept = spec.get('accept')
    with connect(spec) as conn:
        consumers = []
        for entry in spec['queues']:
            # A channel per queue: a Kombu channel hands a fanout exchange's
            # messages to one of its queues only (_fanout_to_queue).
            channel = conn.channel()
            def on_message(message, name=entry['name']):
                received.append(report_of(name, message))
                message.ack()
            consumer = kombu.Consumer(channel, [queue_of(entry)], on_message=on_message,
                                      accept=accept,
                                      prefetch_count=spec.get('prefetch_count'))
            consumer.consume()
            consumers.append(consumer)
        wait_for_subscriptions(conn, [consumer.channel for consumer in consumers], deadline)
        print('ready', flush=True)
        while len(received) < spec['count']:
            if time.monotonic() > deadline:
                sys.exit(f'kombu_peer.py: got {len(received)} of {spec["count"]} messages '
                         f'within {spec.get("timeout", 10)} s: {json.dumps(received)}')
            try:
                conn.drain_events(timeout=0.1)
            except socket.timeout:
                pass
        # Anything more that comes meanwhile is reported too: it should not.
        linger_end = time.monotonic() + spec.get('linger', 0)
        while time.monotonic() < linger_end:
            try:
                conn.drain_events(timeout=0.1)
            except socket.timeout:
                pass
        for consumer in consumers:
            consumer.cancel()
    with open(report_path, 'w') as out:
        json.dump(received, out)


def hold(spec):
    with connect(spec) as conn:
        entry = spec['queues'][0]

        def on_message(message):
            print('holding ' + json.dumps(report_of(entry['name'], message)), flush=True)
            time.sleep(3600)  # killed here, the message unacked

        consumer = kombu.Consumer(conn.default_channel, [queue_of(entry)],
                                  on_message=on_message, prefetch_count=1)
        consumer.consume()
        deadline = time.monotonic() + spec.get('timeout', 10)
        while time.monotonic() < deadline:
            try:
                conn.drain_events(timeout=0.1)
            except socket.timeout:
                pass
        sys.exit('kombu_peer.py: no message to hold within the timeout')


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    with open(argv[2]) as spec_file:
        spec = json.load(spec_file)
    if argv[1] == 'publish':
        publish(spec)
    elif argv[1] == 'consume' and len(argv) == 4:
        consume(spec, argv[3])
    elif argv[1] == 'hold':
        hold(spec)
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
