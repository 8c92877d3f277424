#!/usr/bin/env python3
"""Print the messages waiting on a local wagate queue (moto_server), without consuming them.

    .venv/bin/python scripts/peek-queue.py [inbound|outbound|inbound-dlq|outbound-dlq]

Reads the queue URLs from .local/stack.env (written by scripts/dev.sh). Each message is
received with a visibility timeout of 0, so it stays on the queue for the real consumer; a
peek still counts as a receive, and the queues' redrive policy (maxReceiveCount 5) applies.
"""
import json
import pathlib
import sys

import boto3

name = sys.argv[1] if len(sys.argv) > 1 else "inbound"
var = name.upper().replace("-", "_") + "_QUEUE_URL" if not name.endswith("dlq") else name.upper().replace("-", "_") + "_URL"
env = {}
for line in (pathlib.Path(__file__).resolve().parent.parent / ".local/stack.env").read_text().splitlines():
    if "=" in line and not line.startswith("#"):
        k, v = line.split("=", 1)
        env[k] = v.strip("'\"")
url = env.get(var)
if not url:
    sys.exit(f"{var} is not in .local/stack.env; is scripts/dev.sh running?")
sqs = boto3.client(
    "sqs",
    endpoint_url=env.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
    region_name=env.get("AWS_REGION", "us-east-1"),
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
resp = sqs.receive_message(
    QueueUrl=url,
    MaxNumberOfMessages=10,
    VisibilityTimeout=0,
    MessageSystemAttributeNames=["All"],
)
for m in resp.get("Messages", []):
    print(json.dumps({"attributes": m.get("Attributes", {}), "body": json.loads(m["Body"])}, indent=2))
if not resp.get("Messages"):
    print(f"{name}: no messages waiting")
