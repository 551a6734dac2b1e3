"""Just enough Kubernetes protobuf decoding for the bodies kubectl sends as
`application/vnd.kubernetes.protobuf`: `kubectl create namespace|configmap|
secret|deployment|job|service`. The envelope is `k8s\\0` followed by
runtime.Unknown {1: TypeMeta {1: apiVersion, 2: kind}, 2: raw object}.

Decoding is driven by the schemas below (field number -> JSON name and
type), which hold only the fields those commands set, checked against
`kubectl create ... --dry-run=client -o json`. Like Go's `omitempty`, empty
strings, zeros and false are dropped, except for pointer fields ("ip": a
`*int32` such as replicas, where 0 is a value).
"""

import base64

from store import ApiError

MAGIC = b"k8s\x00"


def _varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """field number -> list of values (int for varint/fixed, bytes for length-delimited)."""
    out, pos = {}, 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated protobuf field")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(num, []).append(value)
    return out


# Schemas: field number -> (json name, type). Types: "s" string, "i" int, "ip" pointer int,
# "b" bool, "m" map<string,string>, "bm" map<string,bytes> (base64 in JSON), "rs" repeated
# string, "ios" IntOrString, a dict (message), ("r", dict) repeated message.

OBJECT_META = {1: ("name", "s"), 2: ("generateName", "s"), 3: ("namespace", "s"), 11: ("labels", "m"),
               12: ("annotations", "m"), 14: ("finalizers", "rs")}
LABEL_SELECTOR = {1: ("matchLabels", "m"),
                  2: ("matchExpressions", ("r", {1: ("key", "s"), 2: ("operator", "s"), 3: ("values", "rs")}))}
CONTAINER = {1: ("name", "s"), 2: ("image", "s"), 3: ("command", "rs"), 4: ("args", "rs"), 5: ("workingDir", "s"),
             6: ("ports", ("r", {1: ("name", "s"), 2: ("hostPort", "i"), 3: ("containerPort", "i"),
                                 4: ("protocol", "s"), 5: ("hostIP", "s")})),
             7: ("env", ("r", {1: ("name", "s"), 2: ("value", "s")})), 14: ("imagePullPolicy", "s")}
POD_SPEC = {2: ("containers", ("r", CONTAINER)), 3: ("restartPolicy", "s"), 6: ("dnsPolicy", "s"),
            7: ("nodeSelector", "m"), 8: ("serviceAccountName", "s")}
POD_TEMPLATE = {1: ("metadata", OBJECT_META), 2: ("spec", POD_SPEC)}

SCHEMAS = {
    ("v1", "Namespace"): {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", "rs")})},
    ("v1", "ConfigMap"): {1: ("metadata", OBJECT_META), 2: ("data", "m"), 3: ("binaryData", "bm"),
                          4: ("immutable", "b")},
    ("v1", "Secret"): {1: ("metadata", OBJECT_META), 2: ("data", "bm"), 3: ("type", "s"), 4: ("stringData", "m"),
                       5: ("immutable", "b")},
    ("v1", "Service"): {1: ("metadata", OBJECT_META), 2: ("spec", {
        1: ("ports", ("r", {1: ("name", "s"), 2: ("protocol", "s"), 3: ("port", "i"), 4: ("targetPort", "ios"),
                            5: ("nodePort", "i")})),
        2: ("selector", "m"), 3: ("clusterIP", "s"), 4: ("type", "s")})},
    ("apps/v1", "Deployment"): {1: ("metadata", OBJECT_META), 2: ("spec", {
        1: ("replicas", "ip"), 2: ("selector", LABEL_SELECTOR), 3: ("template", POD_TEMPLATE),
        4: ("strategy", {1: ("type", "s")}), 5: ("minReadySeconds", "i"), 6: ("revisionHistoryLimit", "ip"),
        7: ("paused", "b"), 9: ("progressDeadlineSeconds", "ip")})},
    ("batch/v1", "Job"): {1: ("metadata", OBJECT_META), 2: ("spec", {
        1: ("parallelism", "ip"), 2: ("completions", "ip"), 3: ("activeDeadlineSeconds", "ip"),
        4: ("selector", LABEL_SELECTOR), 6: ("template", POD_TEMPLATE), 7: ("backoffLimit", "ip"),
        8: ("ttlSecondsAfterFinished", "ip")})},
}


def _value(kind, raw):
    if kind in ("s", "rs"):
        return raw.decode()
    if kind in ("i", "ip"):
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if kind == "b":
        return bool(raw)
    if kind == "ios":
        f = fields(raw)
        return f.get(3, [b""])[-1].decode() if f.get(1, [0])[-1] == 1 else f.get(2, [0])[-1]
    if isinstance(kind, dict):
        return decode_message(raw, kind)
    raise ValueError(f"unknown schema type {kind!r}")


def decode_message(buf, schema):
    out = {}
    for num, values in fields(buf).items():
        if num not in schema:
            continue
        name, kind = schema[num]
        if kind in ("m", "bm"):
            entries = {}
            for entry in values:
                e = fields(entry)
                key, val = e.get(1, [b""])[-1].decode(), e.get(2, [b""])[-1]
                entries[key] = base64.b64encode(val).decode() if kind == "bm" else val.decode()
            out[name] = entries
        elif kind == "rs":
            out[name] = [_value("s", v) for v in values]
        elif isinstance(kind, tuple):
            out[name] = [_value(kind[1], v) for v in values]
        else:
            value = _value(kind, values[-1])
            if value or kind == "ip" or isinstance(kind, dict):
                out[name] = value
    return out


def decode(body):
    """A protobuf-encoded object as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "the protobuf body does not start with the k8s magic prefix")
    try:
        unknown = fields(body[len(MAGIC):])
        type_meta = fields(unknown[1][-1]) if 1 in unknown else {}
        api_version = type_meta.get(1, [b""])[-1].decode()
        kind = type_meta.get(2, [b""])[-1].decode()
        schema = SCHEMAS.get((api_version, kind))
        if schema is None:
            names = ", ".join(k for _, k in SCHEMAS)
            raise ApiError(415, f"the simulator decodes protobuf only for {names}, not {api_version} {kind}: "
                           "send JSON (kubectl apply -f)")
        obj = {"apiVersion": api_version, "kind": kind}
        obj.update(decode_message(unknown[2][-1] if 2 in unknown else b"", schema))
        return obj
    except (IndexError, KeyError, ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"cannot decode the protobuf body: {e}") from None
