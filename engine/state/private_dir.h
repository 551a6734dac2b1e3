// Internal to engine/state: directories and files only their owner may read,
// because the journal and the lock files describe production systems.
#pragma once

#include <sys/types.h>

#include <string>

#include "engine/core/status.h"

namespace runbook::state_internal {

// Creates `dir` and any missing parents with mode 0700 (existing ones are
// left as they are). An empty `dir` means the current directory.
Status MakePrivateDirs(const std::string& dir);

// The directory part of `path` ("." when it has none).
std::string DirName(const std::string& path);

// Sets the process umask for its lifetime and restores it after. The umask
// is process-wide: only for short sections at start-up (opening the store).
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask);
  ~UmaskGuard();
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;

 private:
  mode_t old_;
};

}  // namespace runbook::state_internal
