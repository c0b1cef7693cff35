"""Reads one AMQP message order-sync published (JSON on stdin: the message's
properties, headers and body) and parses it with the official CloudEvents SDK
for Python, AMQP binding, binary content mode. Prints the event's attributes
as JSON; exits non-zero (with the SDK's error) when it is not a valid event."""

import json
import sys

from cloudevents.core.bindings import amqp

message = json.load(sys.stdin)
event = amqp.from_binary_event(
    amqp.AMQPMessage(
        properties=message["properties"],
        application_properties=message["headers"],
        application_data=message["body"].encode(),
    )
)
attributes = {k: str(v) for k, v in event.get_attributes().items()}
attributes["data.message_id"] = event.get_data()["message_id"]
print(json.dumps(attributes))
