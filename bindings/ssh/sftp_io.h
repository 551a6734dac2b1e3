// SFTP on an ssh session: libssh's sftp client for files, plus the two
// OpenSSH extensions libssh 0.10 cannot send, over a second raw SFTP
// channel (sftp_ext.cc):
//   posix-rename@openssh.com  rename(2) that atomically replaces the target
//                             (plain SFTP v3 RENAME refuses an existing one)
//   hardlink@openssh.com      link(2), the O(1) backup of a file about to be
//                             replaced
// Same thread rules as SshClient: one thread at a time.
#pragma once

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bindings/ssh/ssh_client.h"

namespace runbook {

struct RemoteStat {
  bool exists = false;
  int type = 0;   // SSH_FILEXFER_TYPE_*
  int mode = 0;   // permission bits (07777)
  uint64_t size = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t mtime = 0;
  bool regular() const { return exists && type == SSH_FILEXFER_TYPE_REGULAR; }
  bool directory() const { return exists && type == SSH_FILEXFER_TYPE_DIRECTORY; }
  bool symlink() const { return exists && type == SSH_FILEXFER_TYPE_SYMLINK; }
};

// Yields the next bytes into buf (up to n); 0 at the end.
using ByteSource = std::function<Result<size_t>(char* buf, size_t n)>;
using ByteSink = std::function<Status(const char* data, size_t n)>;

class SftpSession {
 public:
  // Starts the sftp subsystem on `client` (which must outlive the result).
  static Result<std::unique_ptr<SftpSession>> Open(SshClient& client);
  ~SftpSession();
  SftpSession(const SftpSession&) = delete;
  SftpSession& operator=(const SftpSession&) = delete;

  SshClient& client() { return *client_; }
  bool HasExtension(const std::string& name) const;

  // exists=false when there is no such file.
  Result<RemoteStat> Stat(const std::string& path, bool follow_links);
  // Removes a file; one that is not there is fine.
  Status Remove(const std::string& path);
  Status Chmod(const std::string& path, int mode);
  // Plain SFTP rename: fails if `to` exists (see PosixRename).
  Status Rename(const std::string& from, const std::string& to);
  Status Chown(const std::string& path, uint32_t uid, uint32_t gid);
  // Opens the file for reading and closes it (a rehearsal's permission check).
  Status CheckReadable(const std::string& path);
  // Streams the file to `sink`, in order.
  Status Read(const std::string& path, SteadyTime deadline, const ByteSink& sink);
  Result<std::string> Sha256(const std::string& path, SteadyTime deadline);
  // Creates `path` (O_EXCL) with `mode`, writes all of `source`, fsyncs it
  // when the server supports fsync@openssh.com (*synced says), closes.
  Status WriteNew(const std::string& path, int mode, SteadyTime deadline,
                  const ByteSource& source, bool* synced);
  // The login directory (sftp realpath of ".").
  Result<std::string> Home();
  // Bytes available to an unprivileged user, and whether it is mounted read-only.
  struct Space {
    uint64_t available = 0;
    bool read_only = false;
  };
  Result<Space> Statvfs(const std::string& path);

  // The raw-channel extensions (sftp_ext.cc).
  Status PosixRename(const std::string& from, const std::string& to, SteadyTime deadline);
  Status Hardlink(const std::string& existing, const std::string& link, SteadyTime deadline);

  // "<action> <path>: <SFTP status in words>", or the lost connection.
  Status Error(const std::string& action, const std::string& path) const;

 private:
  SftpSession(SshClient* client, sftp_session sftp) : client_(client), sftp_(sftp) {}
  Status Extended(const std::string& name, const std::string& a, const std::string& b,
                  SteadyTime deadline);

  SshClient* client_;
  sftp_session sftp_;
};

// dir and base of a remote (or local) path: "/etc/app.conf" -> "/etc", "app.conf".
std::string PathDir(const std::string& path);
std::string PathBase(const std::string& path);

}  // namespace runbook
