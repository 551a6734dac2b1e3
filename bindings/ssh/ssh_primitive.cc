#include "bindings/ssh/ssh_primitive.h"

#include <cstdio>

#include "engine/core/duration.h"

namespace runbook {

ArgSpec SshArg(std::string name, ArgType type, bool required, std::string help) {
  ArgSpec a;
  a.name = std::move(name);
  a.type = type;
  a.required = required;
  a.help = std::move(help);
  return a;
}

ArgSpec SshConnArg() {
  ArgSpec a = SshArg("conn", ArgType::kConnection, true, "the ssh connection");
  a.conn_type = "ssh";
  return a;
}

std::string SshStrArg(const Value& args, const char* key, const std::string& fallback) {
  if (!args.is_object() || !args.contains(key) || args[key].is_null()) return fallback;
  const Value& v = args[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

bool SshBoolArg(const Value& args, const char* key, bool fallback) {
  if (!args.is_object() || !args.contains(key) || !args[key].is_boolean()) return fallback;
  return args[key].get<bool>();
}

Result<std::optional<std::chrono::milliseconds>> SshDurationArg(const Value& args,
                                                                const char* key) {
  using Out = std::optional<std::chrono::milliseconds>;
  if (!args.is_object() || !args.contains(key) || args[key].is_null()) return Out();
  const Value& v = args[key];
  if (v.is_number()) {
    return Out(std::chrono::milliseconds(static_cast<int64_t>(v.get<double>() * 1000)));
  }
  if (v.is_string()) {
    if (auto d = ParseDuration(v.get<std::string>())) return Out(*d);
  }
  return Status::Invalid(std::string(key) + " must be a duration such as 30s, got " + v.dump());
}

Result<std::optional<int>> SshModeArg(const Value& args, const char* key) {
  if (!args.is_object() || !args.contains(key) || args[key].is_null()) return std::optional<int>();
  const Value& v = args[key];
  std::string digits = v.is_string() ? v.get<std::string>()
                       : v.is_number_integer() ? std::to_string(v.get<int64_t>())
                                               : "";
  bool ok = !digits.empty() && digits.size() <= 5;
  int mode = 0;
  for (char c : digits) {
    if (c < '0' || c > '7') ok = false;
    mode = mode * 8 + (c - '0');
  }
  if (!ok || mode > 07777) {
    return Status::Invalid(std::string(key) + " must be an octal file mode such as \"0644\", got " +
                           v.dump());
  }
  return std::optional<int>(mode);
}

std::string FormatMode(int mode) {
  char buf[16];
  snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

SteadyTime EarlierDeadline(SteadyTime deadline, std::optional<std::chrono::milliseconds> timeout) {
  if (!timeout) return deadline;
  SteadyTime mine = std::chrono::steady_clock::now() + *timeout;
  return std::min(deadline, mine);
}

}  // namespace runbook
