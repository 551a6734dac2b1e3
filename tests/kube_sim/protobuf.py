"""Just enough Kubernetes protobuf decoding for the bodies kubectl sends as
`application/vnd.kubernetes.protobuf`: `kubectl create namespace`,
`create configmap` and `create secret`. The envelope is `k8s\\0` followed by
runtime.Unknown {1: TypeMeta {1: apiVersion, 2: kind}, 2: raw object}. Only
the fields those commands set are decoded (names, labels, annotations, data).
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
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(num, []).append(value)
    return out


def _str(f, num):
    return f[num][-1].decode() if num in f else ""


def _map(f, num, binary=False):
    out = {}
    for entry in f.get(num, []):
        e = fields(entry)
        key = _str(e, 1)
        value = e[2][-1] if 2 in e else b""
        out[key] = base64.b64encode(value).decode() if binary else value.decode()
    return out


def _object_meta(buf):
    f = fields(buf)
    meta = {}
    for num, key in ((1, "name"), (2, "generateName"), (3, "namespace")):
        if _str(f, num):
            meta[key] = _str(f, num)
    for num, key in ((11, "labels"), (12, "annotations")):
        m = _map(f, num)
        if m:
            meta[key] = m
    if 14 in f:
        meta["finalizers"] = [v.decode() for v in f[14]]
    return meta


def _namespace(f):
    obj = {}
    if 2 in f:
        spec = fields(f[2][-1])
        if 1 in spec:
            obj["spec"] = {"finalizers": [v.decode() for v in spec[1]]}
    return obj


def _configmap(f):
    obj = {}
    if 2 in f:
        obj["data"] = _map(f, 2)
    if 3 in f:
        obj["binaryData"] = _map(f, 3, binary=True)
    if 4 in f:
        obj["immutable"] = bool(f[4][-1])
    return obj


def _secret(f):
    obj = {}
    if 2 in f:
        obj["data"] = _map(f, 2, binary=True)
    if _str(f, 3):
        obj["type"] = _str(f, 3)
    if 4 in f:
        obj["stringData"] = _map(f, 4)
    if 5 in f:
        obj["immutable"] = bool(f[5][-1])
    return obj


_KINDS = {("v1", "Namespace"): _namespace, ("v1", "ConfigMap"): _configmap, ("v1", "Secret"): _secret}


def decode(body):
    """A protobuf-encoded object as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "the protobuf body does not start with the k8s magic prefix")
    try:
        unknown = fields(body[len(MAGIC):])
        type_meta = fields(unknown[1][-1]) if 1 in unknown else {}
        api_version, kind = _str(type_meta, 1), _str(type_meta, 2)
        decoder = _KINDS.get((api_version, kind))
        if decoder is None:
            raise ApiError(415, f"the simulator decodes protobuf only for Namespace, ConfigMap and Secret, "
                           f"not {api_version} {kind}: send JSON (kubectl apply -f)")
        raw = fields(unknown[2][-1]) if 2 in unknown else {}
        obj = {"apiVersion": api_version, "kind": kind,
               "metadata": _object_meta(raw[1][-1]) if 1 in raw else {}}
        obj.update(decoder(raw))
        return obj
    except (IndexError, KeyError, ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"cannot decode the protobuf body: {e}") from None
