#include "bindings/kube/kube_objects.h"

#include <vector>

namespace runbook::kube {
namespace {

// RFC 6901 token decoding: "~1" is "/", "~0" is "~".
std::string DecodeToken(const std::string& t) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '~' && i + 1 < t.size()) {
      out += t[i + 1] == '1' ? '/' : '~';
      ++i;
    } else {
      out += t[i];
    }
  }
  return out;
}

std::vector<std::string> Tokens(const std::string& pointer) {
  std::vector<std::string> out;
  if (pointer.empty() || pointer[0] != '/') return out;
  size_t start = 1;
  for (;;) {
    size_t slash = pointer.find('/', start);
    out.push_back(DecodeToken(pointer.substr(start, slash == std::string::npos
                                                        ? std::string::npos
                                                        : slash - start)));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

void EraseIfEmpty(Value& obj, const char* key) {
  if (obj.is_object() && obj.contains(key) && obj[key].is_object() && obj[key].empty()) {
    obj.erase(key);
  }
}

bool HasDirective(const Value& patch) {
  if (!patch.is_object()) return false;
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (!it.key().empty() && it.key()[0] == '$') return true;
  }
  return false;
}

// Records into `restore` the live value at `tokens` (up to the first list).
void RecordPath(Value& restore, const Value& live, const std::vector<std::string>& tokens) {
  Value* out = &restore;
  const Value* cur = &live;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& key = tokens[i];
    bool last = i + 1 == tokens.size();
    if (!cur || !cur->is_object() || !cur->contains(key)) {
      (*out)[key] = nullptr;  // absent: the restore removes it
      return;
    }
    const Value& next = (*cur)[key];
    if (last || !next.is_object()) {  // a leaf, or a list: recorded whole
      (*out)[key] = next;
      return;
    }
    if (out->contains(key) && !(*out)[key].is_object()) return;  // already recorded whole
    if (!out->contains(key)) (*out)[key] = Value::object();
    out = &(*out)[key];
    cur = &next;
  }
}

}  // namespace

Value StripServerFields(const Value& live) {
  if (!live.is_object()) return live;
  Value o = live;
  o.erase("status");
  if (o.contains("metadata") && o["metadata"].is_object()) {
    Value& m = o["metadata"];
    for (const char* k : {"uid", "resourceVersion", "generation", "creationTimestamp",
                          "managedFields", "selfLink", "deletionTimestamp",
                          "deletionGracePeriodSeconds"}) {
      m.erase(k);
    }
    if (m.contains("annotations") && m["annotations"].is_object()) {
      for (const char* k : {"kubectl.kubernetes.io/last-applied-configuration",
                            "deployment.kubernetes.io/revision"}) {
        m["annotations"].erase(k);
      }
      EraseIfEmpty(m, "annotations");
    }
  }
  return o;
}

Value StripForRecreate(const Value& live) {
  Value o = StripServerFields(live);
  if (!o.is_object()) return o;
  std::string kind = Str(o, "kind");
  if (kind == "Service" && o.contains("spec") && o["spec"].is_object()) {
    std::string ip = Str(o["spec"], "clusterIP");
    if (ip != "None") {  // headless services keep saying so
      o["spec"].erase("clusterIP");
      o["spec"].erase("clusterIPs");
    }
  }
  if (kind == "Job" && o.contains("spec") && o["spec"].is_object()) {
    o["spec"].erase("selector");
    Value* labels = nullptr;
    if (o["spec"].contains("template") && o["spec"]["template"].is_object() &&
        o["spec"]["template"].contains("metadata") &&
        o["spec"]["template"]["metadata"].contains("labels")) {
      labels = &o["spec"]["template"]["metadata"]["labels"];
    }
    if (labels && labels->is_object()) {
      for (const char* k : {"controller-uid", "batch.kubernetes.io/controller-uid"}) {
        labels->erase(k);
      }
    }
  }
  return o;
}

std::string SelectorText(const Value& selector) {
  if (selector.is_string()) return selector.get<std::string>();
  if (!selector.is_object()) return "";
  std::string out;
  for (auto it = selector.begin(); it != selector.end(); ++it) {
    std::string v = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    out += (out.empty() ? "" : ",") + it.key() + "=" + v;
  }
  return out;
}

bool PodReady(const Value& pod) {
  if (!pod.is_object()) return false;
  if (!AtPointer(pod, "/metadata/deletionTimestamp").is_null()) return false;
  Value conditions = AtPointer(pod, "/status/conditions");
  if (!conditions.is_array()) return false;
  for (const auto& c : conditions) {
    if (c.is_object() && Str(c, "type") == "Ready") return Str(c, "status") == "True";
  }
  return false;
}

std::string Str(const Value& v, const char* key) {
  if (!v.is_object() || !v.contains(key) || !v[key].is_string()) return "";
  return v[key].get<std::string>();
}

Value AtPointer(const Value& v, const std::string& pointer) {
  const Value* cur = &v;
  for (const auto& t : Tokens(pointer)) {
    if (cur->is_object() && cur->contains(t)) {
      cur = &(*cur)[t];
    } else if (cur->is_array() && !t.empty() &&
               t.find_first_not_of("0123456789") == std::string::npos &&
               std::stoul(t) < cur->size()) {
      cur = &(*cur)[std::stoul(t)];
    } else {
      return nullptr;
    }
  }
  return *cur;
}

int64_t IntAt(const Value& v, const std::string& pointer, int64_t fallback) {
  Value x = AtPointer(v, pointer);
  return x.is_number() ? x.get<int64_t>() : fallback;
}

Value MergeRestorePatch(const Value& patch, const Value& live) {
  Value restore = Value::object();
  if (!patch.is_object()) return restore;
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& key = it.key();
    if (!key.empty() && key[0] == '$') continue;  // a directive, not a field
    bool present = live.is_object() && live.contains(key);
    if (!present) {
      restore[key] = nullptr;
    } else if (it.value().is_object() && live[key].is_object() && !HasDirective(it.value())) {
      restore[key] = MergeRestorePatch(it.value(), live[key]);
    } else {
      restore[key] = live[key];
    }
  }
  return restore;
}

Value JsonPatchRestore(const Value& ops, const Value& live) {
  Value restore = Value::object();
  if (!ops.is_array()) return restore;
  for (const auto& op : ops) {
    if (!op.is_object() || Str(op, "op") == "test") continue;
    for (const char* field : {"path", "from"}) {
      if (!op.contains(field) || !op[field].is_string()) continue;
      if (std::string(field) == "from" && Str(op, "op") != "move") continue;
      std::vector<std::string> tokens = Tokens(op[field].get<std::string>());
      if (!tokens.empty()) RecordPath(restore, live, tokens);
    }
  }
  return restore;
}

Value MergeKeepEarlier(const Value& earlier, const Value& later) {
  if (!earlier.is_object() || !later.is_object()) return earlier.is_null() ? later : earlier;
  Value out = earlier;
  for (auto it = later.begin(); it != later.end(); ++it) {
    if (!out.contains(it.key())) {
      out[it.key()] = it.value();
    } else if (out[it.key()].is_object() && it.value().is_object()) {
      out[it.key()] = MergeKeepEarlier(out[it.key()], it.value());
    }
  }
  return out;
}

bool SameValue(const Value& a, const Value& b) {
  return nlohmann::json::parse(a.dump()) == nlohmann::json::parse(b.dump());
}

Value StringMap(const Value& map) {
  if (!map.is_object()) return map;
  Value out = Value::object();
  for (auto it = map.begin(); it != map.end(); ++it) {
    out[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
  }
  return out;
}

bool MergePatchApplied(const Value& live, const Value& patch) {
  if (!patch.is_object()) return SameValue(live, patch);
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    bool present = live.is_object() && live.contains(it.key());
    if (it.value().is_null()) {
      if (present) return false;
    } else if (!present || !MergePatchApplied(live[it.key()], it.value())) {
      return false;
    }
  }
  return true;
}

}  // namespace runbook::kube
