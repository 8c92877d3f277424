#!/usr/bin/env python3
"""Writes the checked-in seed corpora (fuzz/seeds/<target>/): small, hand-made from the
project's fixtures and unit-test cases. Re-run after changing a target's input layout:

    python3 fuzz/make_seeds.py
"""
import json
import pathlib
import shutil
import socket

here = pathlib.Path(__file__).resolve().parent
root = here.parent
seeds = here / "seeds"


def write(target, name, data):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


for t in ["inbound_webhook", "outbound_message", "tenant_config", "egress_url"]:
    shutil.rmtree(seeds / t, ignore_errors=True)

# inbound_webhook: [kind, mode, (len, header)?, body]. Mode 0 signs with the current secret
# ("secret", GOWA's default), mode 5 sends the header given: the samples' real signatures.
fixtures = root / "tests/fixtures/gowa"
signatures = {}
for line in (fixtures / "SIGNATURES.md").read_text().splitlines():
    cells = [c.strip(" `") for c in line.split("|")]
    if len(cells) > 3 and cells[1].endswith(".json (") is False and cells[2].startswith("sha256="):
        signatures[cells[1].split(" ")[0]] = cells[2]
for f in sorted(fixtures.glob("*.json")):
    body = f.read_bytes()
    header = signatures[f.name].encode()
    write("inbound_webhook", f"raw-{f.stem}", bytes([0, 5, len(header)]) + header + body)
    write("inbound_webhook", f"signed-{f.stem}", bytes([0, 0]) + body)
legacy = json.dumps({"sender_id": "6289876543210", "chat_id": "6289876543210", "pushname": "Budi",
                     "message": {"text": "hello", "id": "3EB0AAA", "replied_id": "3EB0BBB"}},
                    separators=(",", ":"))
write("inbound_webhook", "signed-legacy-message", bytes([0, 0]) + legacy.encode())
write("inbound_webhook", "rotating-other-event",
      bytes([0, 1]) + b'{"event":"call.offer","payload":{"id":"c1","chat_id":"1@g.us"}}')
write("inbound_webhook", "foreign-secret", bytes([0, 3]) + b'{"event":"message","payload":{}}')
write("inbound_webhook", "signed-not-json", bytes([0, 0]) + b"{not json")

# outbound_message: the schema's examples and the unit tests' refusals.
for f in sorted((root / "schemas/examples/outbound-message").glob("*.json")):
    write("outbound_message", f.stem, json.dumps(json.loads(f.read_text()), separators=(",", ":")))
write("outbound_message", "unknown-field",
      '{"tenantId":"acme","idempotencyKey":"k1","to":"6281234567890","content":{"type":"text","body":"x","bold":true}}')
write("outbound_message", "every-field-invalid",
      '{"tenantId":"acme","idempotencyKey":"has space","to":"6281234567890","content":{"type":"document","url":"ftp://x/y","filename":"a/b"},"replyTo":"x y"}')
write("outbound_message", "not-json", "{not json")

# tenant_config: create bodies as the tests send them.
full = {
    "provider": "gowa",
    "primary": {"baseUrl": "http://127.0.0.1:3000/",
                "credentials": {"type": "basic", "username": "admin", "password": "gowa-password-5d2f81"},
                "deviceId": "dev-1", "region": "eu-west-1", "webhookSourceCidrs": ["203.0.113.0/24"]},
    "backup": {"baseUrl": "https://backup.example.com",
               "credentials": {"type": "basic", "username": "backup", "password": "backup-api-key-0000-1111-2222"}},
    "webhookSecrets": [{"id": "s1", "secret": "webhook-secret-a8c3e0"},
                       {"id": "old", "secret": "previous-secret-99", "expiresAt": "2026-12-01T00:00:00Z"}],
    "activeEndpoint": "backup", "isActive": True, "failback": "manual",
    "limits": {"outboundPerMinute": 60, "inboundPerSecond": 50.0},
}
write("tenant_config", "full", json.dumps(full))
write("tenant_config", "minimal", json.dumps({
    "provider": "gowa", "primary": {"baseUrl": "https://WA.example.com:443/gowa/"},
    "webhookSecrets": [{"id": "s1", "secret": "secret"}]}))
write("tenant_config", "ssrf-and-bad-fields", json.dumps({
    "provider": "gowa", "primary": {"baseUrl": "http://[::ffff:169.254.169.254]",
                                    "credentials": {"type": "apiKey", "key": "k-123456789"}, "deviceId": "bad device"},
    "webhookSecrets": [{"id": "s1", "secret": "short"}], "limits": {"outboundPerMinute": 0}}))
write("tenant_config", "null-field", '{"provider":"gowa","primary":{"baseUrl":"https://wa.example.com","deviceId":null}}')

# egress_url: [arm, policy, ...]. Arm 0: [family, how, user, port hi, port lo, address];
# arm 1: URL text; arm 2: [len, count, label, (kind, address)*].
def v4(a):
    return socket.inet_pton(socket.AF_INET, a)


def v6(a):
    return socket.inet_pton(socket.AF_INET6, a)


write("egress_url", "spelled-loopback-hex", bytes([0, 0, 0, 2, 0, 0x23, 0x29]) + v4("127.0.0.1") + v6("::1"))
write("egress_url", "spelled-metadata-octal-allowlisted", bytes([0, 2, 0, 5, 3, 0, 80]) + v4("169.254.169.254") + bytes(12))
write("egress_url", "spelled-runtime-api", bytes([0, 1, 0, 0, 2, 0x23, 0x29]) + v4("127.0.0.1") + bytes(12))
write("egress_url", "spelled-mapped-v6", bytes([0, 0, 1, 0, 0, 0, 0]) + v4("10.1.2.3") + bytes(12))
write("egress_url", "spelled-v6", bytes([0, 3, 2, 1, 0, 1, 187]) + v6("2606:4700::1111"))
write("egress_url", "spelled-nat64", bytes([0, 0, 2, 0, 0, 0, 0]) + v6("64:ff9b::a9fe:a9fe"))
for i, url in enumerate(["http://0x7f.1/", "http://LOCALHOST./", "https://wa.example.com:8443/gowa",
                         "http://[fe80::1]/", "http://2130706433/", "http://user@api.localhost/"]):
    write("egress_url", f"text-{i}", bytes([1, i % 4]) + url.encode())
write("egress_url", "resolved-private", bytes([2, 0, 8, 2]) + b"internal" + bytes([0]) + v4("10.0.0.5") + bytes([1]) + v6("fd00::5"))
write("egress_url", "resolved-mixed", bytes([2, 2, 5, 2]) + b"mixed" + bytes([0]) + v4("127.0.0.1") + bytes([0]) + v4("93.184.216.34"))
