"""Schemathesis hooks for wagate's config API (loaded by tests/tests/schemathesis.rs).

They add what generation cannot learn from the OpenAPI document, and nothing that hides a
mismatch:

- the `server-url` and `cidr` string formats: values of the shape the document states
  (`ServerUrl`, `Cidr`), pointing only at the local GOWA simulator or at names under the
  reserved `.test` domain (which never resolve), so a generated connection test reaches
  nothing but the simulator and an SSRF refusal (400) is never drawn for a "valid" URL;
- three rules the document states in words because JSON Schema cannot compare two values:
  a backup differs from the primary, webhook secret ids and import tenant ids are unique, a
  migration's `to` differs from its `from` (applied to every request before it is sent; a
  negative request stays negative: only the value that collides is changed), and an endpoint
  of a kind other than GOWA (or of a kind the request does not name: a candidate or a
  replacement takes the stored tenant's) is never pointed at the (GOWA) simulator;
- opaque paging cursors: a generated `cursor` is replaced by one the API issued (seeded by
  the test in WAGATE_CURSOR_TENANTS / WAGATE_CURSOR_AUDIT), since any other value is 400 by
  design.
"""

import ipaddress
import os
import re
import string

import schemathesis
from hypothesis import strategies as st

SIM_URL = os.environ.get("WAGATE_SIM_URL", "http://127.0.0.1:9")

_label = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12).filter(
    lambda s: s[0].isalpha() and not s.endswith("-")
)
_host = st.builds(lambda a, b: f"{a}.{b}.test", _label, _label)
_port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
_path = st.one_of(st.just(""), st.lists(_label, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)))
_server_url = st.one_of(
    st.just(SIM_URL),
    st.builds(lambda s, h, p, pa: f"{s}://{h}{p}{pa}", st.sampled_from(["http", "https", "HTTPS"]), _host, _port, _path),
)
schemathesis.openapi.format("server-url", _server_url)


def _network(ip, prefix):
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


_cidr = st.one_of(
    st.builds(_network, st.ip_addresses(v=4), st.integers(0, 32)),
    st.builds(_network, st.ip_addresses(v=6), st.integers(0, 128)),
    st.ip_addresses().map(str),
)
schemathesis.openapi.format("cidr", _cidr)


def _distinct_endpoints(obj):
    primary, backup = obj.get("primary"), obj.get("backup")
    if (
        isinstance(primary, dict)
        and isinstance(backup, dict)
        and primary.get("baseUrl") == backup.get("baseUrl")
        and primary.get("deviceId") == backup.get("deviceId")
    ):
        backup["deviceId"] = "backup-device" if primary.get("deviceId") != "backup-device" else "backup-device-2"


def _unique(items, key, limit):
    if not isinstance(items, list):
        return
    seen = set()
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get(key), str):
            value = item[key]
            while value in seen:
                value = (f"u{i}-" + value)[:limit]
            item[key] = value
            seen.add(value)


# Values of the document's patterns that the server refuses for what the formats say in words
# (an SSRF target, a string that is no IP network) are replaced before the request is sent by
# values of the same pattern it accepts. A value that breaks the pattern is left alone, so a
# request meant to be invalid still is.

_SERVER_URL_PATTERN = re.compile(
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~!$&'()*+,;=%:\[\]-]+(/[A-Za-z0-9._~!$&'()*+,;=%:@/-]*)?\Z"
)
_CIDR_PATTERN = re.compile(r"^[0-9A-Fa-f.:/]+\Z")


def _safe_url(value, n):
    if not isinstance(value, str) or not _SERVER_URL_PATTERN.match(value):
        return value
    host = value.split("://", 1)[1].split("/", 1)[0].lower()
    if value == SIM_URL or re.fullmatch(r"([a-z][a-z0-9-]*\.)+test(:[0-9]{1,5})?", host):
        port = host.rsplit(":", 1)[1] if ":" in host else "1"
        if 1 <= int(port) <= 65535:
            return value
    return f"https://replaced-{n}.wagate.test"


def _canonical_cidr(value):
    try:
        return str(ipaddress.ip_address(value)) == value
    except ValueError:
        pass
    try:
        return str(ipaddress.ip_network(value, strict=False)) == value
    except ValueError:
        return False


def _sanitize(obj, counter, kind="gowa"):
    if isinstance(obj, dict):
        # The server kind this object's endpoints are (its own `provider`, else its parent's).
        if isinstance(obj.get("provider"), str):
            kind = obj["provider"]
        for key, value in obj.items():
            if key == "baseUrl":
                counter[0] += 1
                obj[key] = _safe_url(value, counter[0])
                # The simulator speaks GOWA only: an endpoint of another kind pointed at it
                # would make wagate call that kind's routes on a GOWA server (a generated
                # misconfiguration, not a wagate bug); it gets a `.test` name instead, which
                # never resolves.
                if obj[key] == SIM_URL and kind != "gowa":
                    obj[key] = f"https://other-kind-{counter[0]}.wagate.test"
            elif key == "webhookSourceCidrs" and isinstance(value, list):
                for i, v in enumerate(value):
                    if isinstance(v, str) and _CIDR_PATTERN.match(v) and not _canonical_cidr(v):
                        value[i] = "203.0.113.0/24" if "/" in v else "203.0.113.7"
            elif key in ("candidate", "endpoint") and isinstance(value, dict) and not isinstance(value.get("provider"), str):
                # A connection-test candidate or a switch's replacement naming no kind takes
                # the stored tenant's, which a generated request cannot know: only one that
                # names gowa may point at the simulator.
                _sanitize(value, counter, "stored")
            else:
                _sanitize(value, counter, kind)
    elif isinstance(obj, list):
        for item in obj:
            _sanitize(item, counter, kind)



@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, (dict, list)):
        _sanitize(body, [0])
    if isinstance(body, dict):
        _distinct_endpoints(body)
        _unique(body.get("webhookSecrets"), "id", 64)
        _unique(body.get("items"), "tenantId", 64)
        if isinstance(body.get("items"), list):
            for item in body["items"]:
                if isinstance(item, dict):
                    _distinct_endpoints(item)
                    _unique(item.get("webhookSecrets"), "id", 64)
        if isinstance(body.get("from"), str) and body.get("from") == body.get("to"):
            body["to"] = body["to"] + "-target"
    query = case.query
    if isinstance(query, dict) and "cursor" in query:
        seeded = None
        if case.operation.path == "/tenants":
            seeded = os.environ.get("WAGATE_CURSOR_TENANTS")
        elif case.operation.path == "/tenants/{tenantId}/audit" and (case.path_parameters or {}).get("tenantId") == "acme":
            seeded = os.environ.get("WAGATE_CURSOR_AUDIT")
        if seeded:
            query["cursor"] = seeded
        else:
            del query["cursor"]
