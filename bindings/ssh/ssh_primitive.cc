#include "bindings/ssh/ssh_primitive.h"

#include <cstdio>

namespace runbook {

ArgSpec SshConnArg() { return ConnArg("conn", "ssh", "the ssh connection"); }

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
