#include "bindings/kube/kube_secrets.h"

#include "bindings/kube/kube_objects.h"
#include "bindings/kube/kube_primitive.h"
#include "engine/core/sha256.h"

namespace runbook::kube {
namespace {

constexpr size_t kMinSecret = 6;

// Decodes standard base64 (what the API server returns for Secret data).
std::string FromBase64(const std::string& in) {
  auto digit = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0, acc = 0;
  for (char c : in) {
    int d = digit(c);
    if (d < 0) continue;
    acc = (acc << 6) | d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

void NoteOne(const Value& secret, Redactor& redactor) {
  if (secret.contains("data") && secret["data"].is_object()) {
    for (const auto& v : secret["data"]) {
      if (!v.is_string()) continue;
      const std::string decoded = FromBase64(v.get<std::string>());
      if (decoded.size() >= kMinSecret) {
        redactor.Add(decoded);
        redactor.Add(v.get<std::string>());
      }
    }
  }
  if (secret.contains("stringData") && secret["stringData"].is_object()) {
    for (const auto& v : secret["stringData"]) {
      if (v.is_string() && v.get<std::string>().size() >= kMinSecret) {
        redactor.Add(v.get<std::string>());
      }
    }
  }
}

std::string BackupName(KubeStep& step, const std::string& name) {
  std::string h = Sha256Hex(step.ctx().run_id() + "/" + step.ctx().step_id() + "/" + name);
  return "runbook-backup-" + h.substr(0, 12);
}

std::vector<std::string> InNs(std::vector<std::string> args, const std::string& ns) {
  if (!ns.empty()) args.push_back("--namespace=" + ns);
  return args;
}

}  // namespace

bool IsSecret(const Value& object) { return Str(object, "kind") == "Secret"; }

void NoteSecretValues(const Value& v, Redactor& redactor) {
  if (v.is_array()) {
    for (const auto& item : v) NoteSecretValues(item, redactor);
    return;
  }
  if (!v.is_object()) return;
  if (IsSecret(v)) NoteOne(v, redactor);
  if (v.contains("items") && v["items"].is_array()) NoteSecretValues(v["items"], redactor);
}

Result<Value> BackUpSecret(KubeStep& step, const Value& live) {
  const std::string name = Str(live.value("metadata", Value::object()), "name");
  const std::string ns = Str(live.value("metadata", Value::object()), "namespace");
  const std::string backup = BackupName(step, name);
  Value copy{{"apiVersion", "v1"},
             {"kind", "Secret"},
             {"metadata",
              {{"name", backup},
               {"labels", {{"runbook.dev/backup-of", name}}},
               {"annotations", {{"runbook.dev/backup", "the state of Secret " + name +
                                                           " before a runbook step changed it; "
                                                           "its undo restores it from here"}}}}},
             {"type", live.value("type", "Opaque")},
             {"data", live.value("data", Value::object())}};
  if (!ns.empty()) copy["metadata"]["namespace"] = ns;
  // Replaced if an earlier attempt left one (its content is the same Secret).
  Result<KubectlOutput> r = step.Change({InNs({"apply", "--filename=-"}, ns), copy.dump()});
  if (!r.ok()) return r.status().Prefixed("backing up Secret " + name + " as " + backup);
  Value restore = StripServerFields(live);
  restore.erase("data");
  restore.erase("stringData");
  return Value{{"backup_secret", backup}, {"restore", restore}};
}

Result<Value> SecretFromBackup(KubeStep& step, const Value& record) {
  Value restore = record.value("restore", Value::object());
  const std::string ns = Str(restore.value("metadata", Value::object()), "namespace");
  Result<KubectlOutput> r = step.client().Run(
      {InNs({"get", "secret", Str(record, "backup_secret"), "-o", "json"}, ns)});
  if (!r.ok()) {
    return r.status().Prefixed("reading backup Secret " + Str(record, "backup_secret"));
  }
  Value backup = Value::parse(r->out, nullptr, false);
  if (!backup.is_object()) return Status::Failed("backup Secret is not JSON");
  restore["data"] = backup.value("data", Value::object());
  restore["type"] = backup.value("type", "Opaque");
  return restore;
}

Status DropSecretBackup(KubeStep& step, const Value& record) {
  const Value restore = record.value("restore", Value::object());
  const std::string ns = Str(restore.value("metadata", Value::object()), "namespace");
  return step
      .Change({InNs({"delete", "secret", Str(record, "backup_secret"), "--ignore-not-found"}, ns)})
      .status();
}

}  // namespace runbook::kube
