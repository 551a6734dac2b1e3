// Helpers over Kubernetes objects as JSON values: what to keep of a live
// object to restore it later, selectors, readiness, and the "previous
// values" a patch would overwrite (what kube.patch records for its undo).
#pragma once

#include <string>

#include "engine/core/value.h"

namespace runbook::kube {

// The live object without what the server owns: status, uid,
// resourceVersion, generation, timestamps, managedFields, and the
// annotations kubectl and controllers keep. Suitable for `kubectl apply`.
Value StripServerFields(const Value& live);
// StripServerFields, plus what a re-created object must not carry: a
// Service's cluster IPs, a Job's generated selector and controller labels.
Value StripForRecreate(const Value& live);

// {app: web, tier: fe} -> "app=web,tier=fe"; a string is returned as it is.
std::string SelectorText(const Value& selector);
// A pod whose Ready condition is True and which is not being deleted.
bool PodReady(const Value& pod);
// v[key] if v is a map holding a string there, else "" (never throws, unlike
// Value::value on a field of another type).
std::string Str(const Value& v, const char* key);
// The value at a JSON pointer ("/spec/replicas"), or null.
Value AtPointer(const Value& v, const std::string& pointer);
// An int field, or `fallback` when absent or not a number.
int64_t IntAt(const Value& v, const std::string& pointer, int64_t fallback = 0);

// For a merge or strategic-merge patch: a merge patch that puts back what
// `patch` would change in `live`, key by key (null for keys that did not
// exist). Lists, and maps carrying strategic directives ($patch, ...), are
// recorded whole.
Value MergeRestorePatch(const Value& patch, const Value& live);
// For an RFC 6902 JSON patch (a list of operations): a merge patch that
// puts back every path the operations touch (`path`, and `from` of a move).
// A path into a list records the whole list, since a merge patch can only
// replace lists.
Value JsonPatchRestore(const Value& ops, const Value& live);
// Merges two restore patches; what `earlier` recorded wins (it saw the
// object before any attempt changed it).
Value MergeKeepEarlier(const Value& earlier, const Value& later);
// Equal as JSON, whatever the order of keys (the API server sorts them).
bool SameValue(const Value& a, const Value& b);
// A map with every value as a string (labels, selectors).
Value StringMap(const Value& map);

// Does `live` already show every change of merge patch `patch`?
bool MergePatchApplied(const Value& live, const Value& patch);

}  // namespace runbook::kube
