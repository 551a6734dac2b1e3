// Pieces shared by the ssh.* primitives (the rest is engine/core/primitive_kit.h):
// the connection argument, file modes, deadlines.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/primitive_kit.h"
#include "engine/core/registry.h"

namespace runbook {

// The `conn` argument: an ssh connection.
ArgSpec SshConnArg();

// A file mode: "0640", "640" or a number (taken as octal digits when it
// reads like one: 644 means 0644). nullopt if absent.
Result<std::optional<int>> SshModeArg(const Value& args, const char* key);
// "0644".
std::string FormatMode(int mode);

// The earlier of the step's deadline and now + `timeout`.
SteadyTime EarlierDeadline(SteadyTime deadline, std::optional<std::chrono::milliseconds> timeout);

// Registration of each primitive family (one file each).
void AddSshExecPrimitives(Registry* r);      // ssh.exec
void AddSshUploadPrimitives(Registry* r);    // ssh.upload
void AddSshDownloadPrimitives(Registry* r);  // ssh.download
void AddSshTunnelPrimitives(Registry* r);    // ssh.tunnel

}  // namespace runbook
