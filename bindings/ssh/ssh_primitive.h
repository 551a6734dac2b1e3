// Pieces shared by the ssh.* primitives: schema building, argument access,
// the one-primitive-per-class base, and error prefixes.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/registry.h"

namespace runbook {

ArgSpec SshArg(std::string name, ArgType type, bool required, std::string help);
// The `conn` argument: an ssh connection.
ArgSpec SshConnArg();

// Argument access with defaults (a primitive may also be called from Lua).
std::string SshStrArg(const Value& args, const char* key, const std::string& fallback = "");
bool SshBoolArg(const Value& args, const char* key, bool fallback);
// "30s", "500ms" or a number of seconds; nullopt if absent; kInvalid if bad.
Result<std::optional<std::chrono::milliseconds>> SshDurationArg(const Value& args, const char* key);
// A file mode: "0640", "640" or a number (taken as octal digits when it
// reads like one: 644 means 0644). nullopt if absent.
Result<std::optional<int>> SshModeArg(const Value& args, const char* key);
// "0644".
std::string FormatMode(int mode);

// The earlier of the step's deadline and now + `timeout`.
SteadyTime EarlierDeadline(SteadyTime deadline, std::optional<std::chrono::milliseconds> timeout);

class SshPrimitive : public Primitive {
 public:
  SshPrimitive(std::string name, Schema schema) : name_(std::move(name)), schema_(std::move(schema)) {}
  std::string name() const override { return name_; }
  const Schema& schema() const override { return schema_; }

 private:
  std::string name_;
  Schema schema_;
};

// Registration of each primitive family (one file each).
void AddSshExecPrimitives(Registry* r);      // ssh.exec
void AddSshUploadPrimitives(Registry* r);    // ssh.upload
void AddSshDownloadPrimitives(Registry* r);  // ssh.download
void AddSshTunnelPrimitives(Registry* r);    // ssh.tunnel

}  // namespace runbook
