#include "bindings/ssh/sftp_io.h"

#include <fcntl.h>

#include "bindings/ssh/sha256_stream.h"

namespace runbook {
namespace {

constexpr size_t kChunk = 32 * 1024;

const char* SftpCodeText(int code) {
  switch (code) {
    case SSH_FX_EOF: return "end of file";
    case SSH_FX_NO_SUCH_FILE: return "no such file or directory";
    case SSH_FX_PERMISSION_DENIED: return "permission denied";
    case SSH_FX_FAILURE: return "failed (the server gave no reason: a full disk, a directory in "
                                "the way, or an existing target)";
    case SSH_FX_BAD_MESSAGE: return "bad message";
    case SSH_FX_NO_CONNECTION: return "no connection";
    case SSH_FX_CONNECTION_LOST: return "connection lost";
    case SSH_FX_OP_UNSUPPORTED: return "operation not supported by the server";
    case SSH_FX_INVALID_HANDLE: return "invalid handle";
    case SSH_FX_NO_SUCH_PATH: return "no such path";
    case SSH_FX_FILE_ALREADY_EXISTS: return "file already exists";
    case SSH_FX_WRITE_PROTECT: return "write protected";
    case SSH_FX_NO_MEDIA: return "no media";
    default: return "unknown SFTP error";
  }
}

bool Absent(int code) { return code == SSH_FX_NO_SUCH_FILE || code == SSH_FX_NO_SUCH_PATH; }

Status CheckDeadline(SteadyTime deadline, const std::string& what) {
  if (std::chrono::steady_clock::now() < deadline) return Status::Ok();
  return Status::Timeout(what + ": the step's deadline passed");
}

class FileGuard {
 public:
  explicit FileGuard(sftp_file f) : f_(f) {}
  ~FileGuard() {
    if (f_) sftp_close(f_);
  }
  int Close() {
    int rc = f_ ? sftp_close(f_) : SSH_OK;
    f_ = nullptr;
    return rc;
  }
  FileGuard(const FileGuard&) = delete;
  FileGuard& operator=(const FileGuard&) = delete;

 private:
  sftp_file f_;
};

}  // namespace

std::string PathDir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string PathBase(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<std::unique_ptr<SftpSession>> SftpSession::Open(SshClient& client) {
  sftp_session sftp = sftp_new(client.session());
  if (!sftp) {
    return Status::Unavailable(client.Describe() + ": cannot open an SFTP channel: " +
                               client.LastError());
  }
  if (sftp_init(sftp) != SSH_OK) {
    std::string why = client.LastError();
    sftp_free(sftp);
    return Status::Failed(client.Describe() + ": the server did not start SFTP (is the sftp "
                          "Subsystem enabled?): " + why);
  }
  return std::unique_ptr<SftpSession>(new SftpSession(&client, sftp));
}

SftpSession::~SftpSession() { sftp_free(sftp_); }

bool SftpSession::HasExtension(const std::string& name) const {
  unsigned int n = sftp_extensions_get_count(sftp_);
  for (unsigned int i = 0; i < n; ++i) {
    const char* ext = sftp_extensions_get_name(sftp_, i);
    if (ext && name == ext) return true;
  }
  return false;
}

Status SftpSession::Error(const std::string& action, const std::string& path) const {
  if (!client_->connected()) {
    return Status::Unavailable(client_->Describe() + ": the ssh connection was lost during " +
                               action + " " + path + " (" + client_->LastError() + ")");
  }
  int code = sftp_get_error(sftp_);
  std::string text = code ? SftpCodeText(code) : client_->LastError();
  std::string msg = client_->Describe() + ": " + action + " " + path + ": " + text;
  return Absent(code) ? Status::NotFound(msg) : Status::Failed(msg);
}

Result<RemoteStat> SftpSession::Stat(const std::string& path, bool follow_links) {
  sftp_attributes a = follow_links ? sftp_stat(sftp_, path.c_str()) : sftp_lstat(sftp_, path.c_str());
  RemoteStat st;
  if (!a) {
    if (client_->connected() && Absent(sftp_get_error(sftp_))) return st;
    return Error("stat", path);
  }
  st.exists = true;
  st.type = a->type;
  st.mode = static_cast<int>(a->permissions & 07777);
  st.size = a->size;
  st.uid = a->uid;
  st.gid = a->gid;
  st.mtime = a->mtime64 ? a->mtime64 : a->mtime;
  sftp_attributes_free(a);
  return st;
}

Status SftpSession::Remove(const std::string& path) {
  if (sftp_unlink(sftp_, path.c_str()) == SSH_OK) return Status::Ok();
  if (client_->connected() && Absent(sftp_get_error(sftp_))) return Status::Ok();
  return Error("remove", path);
}

Status SftpSession::Rename(const std::string& from, const std::string& to) {
  if (sftp_rename(sftp_, from.c_str(), to.c_str()) == SSH_OK) return Status::Ok();
  return Error("rename " + from + " to", to);
}

Status SftpSession::Chmod(const std::string& path, int mode) {
  if (sftp_chmod(sftp_, path.c_str(), static_cast<mode_t>(mode)) == SSH_OK) return Status::Ok();
  return Error("chmod", path);
}

Status SftpSession::Chown(const std::string& path, uint32_t uid, uint32_t gid) {
  if (sftp_chown(sftp_, path.c_str(), uid, gid) == SSH_OK) return Status::Ok();
  return Error("chown", path);
}

Status SftpSession::CheckReadable(const std::string& path) {
  sftp_file f = sftp_open(sftp_, path.c_str(), O_RDONLY, 0);
  if (!f) return Error("open", path);
  sftp_close(f);
  return Status::Ok();
}

Status SftpSession::Read(const std::string& path, SteadyTime deadline, const ByteSink& sink) {
  sftp_file f = sftp_open(sftp_, path.c_str(), O_RDONLY, 0);
  if (!f) return Error("open", path);
  FileGuard guard(f);
  char buf[kChunk];
  while (true) {
    Status s = CheckDeadline(deadline, client_->Describe() + ": reading " + path);
    if (!s.ok()) return s;
    ssize_t n = sftp_read(f, buf, sizeof buf);
    if (n < 0) return Error("read", path);
    if (n == 0) break;
    s = sink(buf, static_cast<size_t>(n));
    if (!s.ok()) return s;
  }
  if (guard.Close() != SSH_OK) return Error("close", path);
  return Status::Ok();
}

Result<std::string> SftpSession::Sha256(const std::string& path, SteadyTime deadline) {
  Sha256Stream hash;
  Status s = Read(path, deadline, [&](const char* data, size_t n) {
    hash.Update(data, n);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return hash.Hex();
}

Status SftpSession::WriteNew(const std::string& path, int mode, SteadyTime deadline,
                             const ByteSource& source, bool* synced) {
  *synced = false;
  sftp_file f = sftp_open(sftp_, path.c_str(), O_WRONLY | O_CREAT | O_EXCL,
                          static_cast<mode_t>(mode));
  if (!f) return Error("create", path);
  FileGuard guard(f);
  char buf[kChunk];
  while (true) {
    Status s = CheckDeadline(deadline, client_->Describe() + ": writing " + path);
    if (!s.ok()) return s;
    Result<size_t> n = source(buf, sizeof buf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    for (size_t done = 0; done < *n;) {
      ssize_t w = sftp_write(f, buf + done, *n - done);
      if (w <= 0) return Error("write", path);
      done += static_cast<size_t>(w);
    }
  }
  if (HasExtension("fsync@openssh.com")) {
    if (sftp_fsync(f) != SSH_OK) return Error("fsync", path);
    *synced = true;
  }
  if (guard.Close() != SSH_OK) return Error("close", path);
  return Status::Ok();
}

Result<std::string> SftpSession::Home() {
  char* p = sftp_canonicalize_path(sftp_, ".");
  if (!p) return Error("realpath", ".");
  std::string out = p;
  ssh_string_free_char(p);
  return out;
}

Result<SftpSession::Space> SftpSession::Statvfs(const std::string& path) {
  if (!HasExtension("statvfs@openssh.com")) {
    return Status::Failed("the server does not support statvfs@openssh.com");
  }
  sftp_statvfs_t v = sftp_statvfs(sftp_, path.c_str());
  if (!v) return Error("statvfs", path);
  Space s;
  s.available = v->f_bavail * (v->f_frsize ? v->f_frsize : v->f_bsize);
  s.read_only = (v->f_flag & SSH_FXE_STATVFS_ST_RDONLY) != 0;
  sftp_statvfs_free(v);
  return s;
}

}  // namespace runbook
