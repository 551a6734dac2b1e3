#include "engine/state/private_dir.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

namespace runbook::state_internal {

namespace {

Status MakeOneDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) == 0) return Status::Ok();
  int err = errno;
  struct stat st;
  // An existing directory is fine whatever mkdir said (EACCES on a parent we
  // may not write, say).
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::Invalid("cannot create directory " + dir + ": a file is in the way");
  }
  return Status::Invalid("cannot create directory " + dir + ": " + strerror(err));
}

}  // namespace

Status MakePrivateDirs(const std::string& dir) {
  if (dir.empty()) return Status::Ok();
  // Each prefix ending before a '/', then the whole path.
  for (size_t pos = dir.find('/', 1); pos != std::string::npos; pos = dir.find('/', pos + 1)) {
    if (dir[pos - 1] == '/') continue;  // "a//b"
    Status s = MakeOneDir(dir.substr(0, pos));
    if (!s.ok()) return s;
  }
  return MakeOneDir(dir);
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  size_t end = path.find_last_not_of('/', slash);
  if (end == std::string::npos) return "/";
  return path.substr(0, end + 1);
}

UmaskGuard::UmaskGuard(mode_t mask) : old_(umask(mask)) {}
UmaskGuard::~UmaskGuard() { umask(old_); }

}  // namespace runbook::state_internal
