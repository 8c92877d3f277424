"""How moto_server's FIFO queue costs grow with the messages queued, and what an empty long
poll costs moto when every visible message is in a message group with a message in flight
(BENCHMARKS.md, "the stall"). Needs a moto_server started by scripts/moto.sh.

Usage: .venv/bin/python scripts/moto_fifo_probe.py PORT
"""

import os
import sys
import time
from pathlib import Path

import boto3

port = sys.argv[1]
root = Path(__file__).resolve().parent.parent
moto_pid = int((root / ".local" / f"moto-{port}.pid").read_text())
sqs = boto3.client(
    "sqs",
    endpoint_url=f"http://127.0.0.1:{port}",
    region_name="ap-southeast-4",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)


def cpu():
    fields = open(f"/proc/{moto_pid}/stat").read().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


url = sqs.create_queue(
    QueueName=f"probe-{int(time.time())}.fifo",
    Attributes={"FifoQueue": "true", "VisibilityTimeout": "600"},
)["QueueUrl"]
sent = 0


def send_batch():
    global sent
    entries = [
        {
            "Id": f"m{i}",
            "MessageBody": f"body {sent + i}",
            "MessageGroupId": f"g{(sent + i) % 50}",
            "MessageDeduplicationId": f"d{sent + i}",
        }
        for i in range(10)
    ]
    t = time.time()
    sqs.send_message_batch(QueueUrl=url, Entries=entries)
    sent += 10
    return time.time() - t


for target in [0, 250, 500, 1000]:
    while sent < target:
        send_batch()
    took = min(send_batch() for _ in range(3))
    t0 = time.time()
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0)
    print(
        f"queued {sent}: SendMessageBatch(10) {took * 1000:.0f} ms, "
        f"ReceiveMessage(10) {(time.time() - t0) * 1000:.0f} ms",
        flush=True,
    )
# Block every group: receive (and keep in flight) until nothing more is handed out.
in_flight = 0
while True:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=600)
    if not got.get("Messages"):
        break
    in_flight += len(got["Messages"])
print(f"in flight {in_flight}, {sent - in_flight} visible", flush=True)
for wait in [0, 1, 5]:
    c0, t0 = cpu(), time.time()
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
    print(
        f"empty receive, WaitTimeSeconds={wait}: {len(got.get('Messages', []))} messages "
        f"after {time.time() - t0:.2f} s, moto CPU {cpu() - c0:.2f} s",
        flush=True,
    )
sqs.delete_queue(QueueUrl=url)
