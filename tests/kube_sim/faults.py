"""Fault injection rules, managed over POST/GET/DELETE /_sim/faults.

A rule: {"match": {"method": "PATCH", "path_regex": "/deployments/web"},
         "status": 500, "count": 1, "delay_ms": 0, "drop": false,
         "message": "...", "reason": "..."}
`path_regex` is searched in the request path including its query string;
`method` is optional (any method when absent). `count` is how many requests
the rule hits (default 1; 0 or null: every request until cleared). A hit
sleeps `delay_ms`, then either drops the connection (`drop`), answers a
Status error (`status`), or, with neither, lets the request go on (a slow
response). The first matching rule with hits left wins.
"""

import copy
import re
import threading

from store import ApiError


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.next_id = 1

    def add(self, spec):
        if not isinstance(spec, dict):
            raise ApiError(400, "a fault is a JSON object")
        match = spec.get("match") or {}
        try:
            regex = re.compile(match.get("path_regex") or "")
        except re.error as e:
            raise ApiError(400, f"bad path_regex: {e}") from None
        status = spec.get("status")
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise ApiError(400, "status must be an HTTP error code (400-599)")
        count = spec.get("count", 1)
        rule = {"id": self.next_id, "match": {"method": (match.get("method") or "").upper() or None,
                                              "path_regex": regex.pattern},
                "status": status, "count": count if count else None, "hits": 0,
                "delay_ms": int(spec.get("delay_ms") or 0), "drop": bool(spec.get("drop")),
                "message": spec.get("message"), "reason": spec.get("reason")}
        with self.lock:
            self.next_id += 1
            self.rules.append(rule)
        return copy.deepcopy(rule)

    def list(self):
        with self.lock:
            return copy.deepcopy(self.rules)

    def clear(self):
        with self.lock:
            self.rules = []

    def take(self, method, path):
        """The rule this request hits (its count consumed), or None."""
        with self.lock:
            for rule in self.rules:
                m = rule["match"]
                if m["method"] and m["method"] != method:
                    continue
                if not re.search(m["path_regex"], path):
                    continue
                if rule["count"] is not None and rule["hits"] >= rule["count"]:
                    continue
                rule["hits"] += 1
                return copy.deepcopy(rule)
        return None
