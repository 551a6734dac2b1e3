#include "engine/state/lock.h"

#include "engine/core/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <sstream>

#include "engine/state/private_dir.h"

namespace runbook {

namespace {

// Keys name targets ("db:prod/main"); anything outside [A-Za-z0-9_.-]
// becomes '_' so a key cannot leave the lock directory. A key that had to
// change, or that is too long for a file name, gets a hash of itself: two
// keys never share a file, and every key has one.
std::string LockFileName(const std::string& key) {
  std::string name = key;
  for (char& c : name) {
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-';
    if (!keep) c = '_';
  }
  if (name != key || name.size() > 120 || name[0] == '.') {
    name = name.substr(0, 80) + "-" + Sha256Hex(key).substr(0, 16);
  }
  return name + ".lock";
}

std::string ReadAll(int fd) {
  std::string text;
  char buf[256];
  off_t off = 0;
  while (text.size() < 4096) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return text;
}

bool WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The message for a lock someone else holds, from what the holder wrote.
Status HeldBy(const std::string& key, const std::string& content) {
  std::istringstream in(content);
  std::string run, pid;
  if (!(in >> run >> pid)) {
    // The holder has the lock but has not written its name yet.
    return Status::Unavailable("lock '" + key + "' is held by another run");
  }
  return Status::Unavailable("lock '" + key + "' is held by run " + run + " (pid " + pid + ")");
}

}  // namespace

RunLock::~RunLock() {
  if (fd_ < 0) return;
  // No unlink: a waiting locker may already have this file open, and would
  // then hold a lock on a name nobody else sees.
  flock(fd_, LOCK_UN);
  close(fd_);
}

bool RunLock::IsHeld(const std::string& state_path, const std::string& key) {
  if (key.empty()) return false;
  std::string path = state_internal::DirName(state_path) + "/locks/" + LockFileName(key);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;  // never taken
  bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // releases the shared lock if we got it
  return held;
}

Result<std::unique_ptr<RunLock>> RunLock::Acquire(const std::string& state_path,
                                                  const std::string& key,
                                                  const std::string& run_id) {
  if (key.empty()) return Status::Invalid("lock key is empty");
  std::string dir = state_internal::DirName(state_path) + "/locks";
  Status s = state_internal::MakePrivateDirs(dir);
  if (!s.ok()) return s.Prefixed("lock '" + key + "'");
  std::string path = dir + "/" + LockFileName(key);

  std::unique_ptr<RunLock> lock(new RunLock());
  lock->fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock->fd_ < 0) {
    return Status::Internal("lock '" + key + "': cannot open " + path + ": " + strerror(errno));
  }
  int rc;
  do {
    rc = flock(lock->fd_, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EWOULDBLOCK) return HeldBy(key, ReadAll(lock->fd_));
    return Status::Internal("lock '" + key + "': cannot lock " + path + ": " + strerror(errno));
  }
  std::string holder = run_id + " " + std::to_string(getpid()) + "\n";
  if (ftruncate(lock->fd_, 0) != 0 || !WriteAll(lock->fd_, holder)) {
    return Status::Internal("lock '" + key + "': cannot write " + path + ": " + strerror(errno));
  }
  return lock;
}

}  // namespace runbook
