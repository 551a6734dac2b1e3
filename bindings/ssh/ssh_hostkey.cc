// Host key verification: always against known_hosts; anything but a match
// refuses the connection, saying which key the server offered (its SHA256
// fingerprint) and the exact known_hosts line that would trust it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bindings/ssh/ssh_client.h"

namespace runbook {
namespace {

struct OfferedKey {
  std::string type;         // ssh-ed25519
  std::string fingerprint;  // SHA256:...
  std::string line;         // [host]:port ssh-ed25519 AAAA...
};

Result<OfferedKey> Offered(ssh_session s, const std::string& what) {
  ssh_key key = nullptr;
  if (ssh_get_server_publickey(s, &key) != SSH_OK) {
    return Status::Failed(what + ": the server sent no host key: " + ssh_get_error(s));
  }
  OfferedKey out;
  out.type = ssh_key_type_to_char(ssh_key_type(key));
  unsigned char* hash = nullptr;
  size_t hlen = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == SSH_OK) {
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    if (fp) {
      out.fingerprint = fp;
      ssh_string_free_char(fp);
    }
    ssh_clean_pubkey_hash(&hash);
  }
  ssh_key_free(key);
  char* entry = nullptr;
  if (ssh_session_export_known_hosts_entry(s, &entry) == SSH_OK && entry) {
    out.line = entry;
    ssh_string_free_char(entry);
    while (!out.line.empty() && (out.line.back() == '\n' || out.line.back() == '\r')) {
      out.line.pop_back();
    }
  }
  return out;
}

std::string KnownHostsFile(ssh_session s) {
  char* v = nullptr;
  if (ssh_options_get(s, SSH_OPTIONS_KNOWNHOSTS, &v) != SSH_OK || !v) {
    return ExpandUserPath("~/.ssh/known_hosts");
  }
  std::string out = v;
  ssh_string_free_char(v);
  return out;
}

// Appends `line` to `path`, creating the file (0600) and its directory
// (0700) if needed. One write(2) with O_APPEND, so concurrent appends do
// not interleave.
Status AppendLine(const std::string& path, const std::string& line) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Failed("cannot create " + dir + ": " + strerror(errno));
    }
  }
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Failed("cannot open " + path + ": " + strerror(errno));
  std::string text = line + "\n";
  // Start on a new line if the file does not end with one.
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    int rfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    char last = '\n';
    if (rfd >= 0) {
      if (pread(rfd, &last, 1, st.st_size - 1) != 1) last = '\n';
      close(rfd);
    }
    if (last != '\n') text = "\n" + text;
  }
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  bool synced = fsync(fd) == 0;
  close(fd);
  if (n != static_cast<ssize_t>(text.size()) || !synced) {
    return Status::Failed("cannot append to " + path + ": " + strerror(err));
  }
  return Status::Ok();
}

}  // namespace

Status VerifyHostKey(ssh_session s, const SshTarget& t, const std::string& what,
                     const SshLogFn& log) {
  Result<OfferedKey> key = Offered(s, what);
  if (!key.ok()) return key.status();
  const std::string file = KnownHostsFile(s);
  const std::string offered = key->type + " key " + key->fingerprint;
  switch (ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      return Status::Ok();
    case SSH_KNOWN_HOSTS_CHANGED:
    case SSH_KNOWN_HOSTS_OTHER:
      return Status::Failed(
          what + ": REFUSED: the host key has CHANGED. The server offers the " + offered +
          ", but known_hosts (" + file + " or the global file) holds a different key for it. "
          "This may be a man-in-the-middle attack, or the host was reinstalled. Verify the new "
          "fingerprint out of band; if it is right, replace the old entry with:\n  " + key->line +
          "\n(accept_new never trusts a changed key)");
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      if (t.accept_new) {
        Status a = AppendLine(file, key->line);
        if (!a.ok()) return a.Prefixed(what + ": accept_new: cannot record the host key");
        if (log) {
          log(LogLevel::kWarn, what + ": trusted a host key seen for the first time (accept_new): " +
                                   offered + "; recorded in " + file);
        }
        return Status::Ok();
      }
      return Status::Failed(
          what + ": REFUSED: unknown host key. The server offers the " + offered +
          ", which is not in known_hosts (" + file + "). Verify the fingerprint out of band, then "
          "add this line to " + file + ":\n  " + key->line +
          "\n(or set accept_new: true on the connection to trust a first-seen key)");
    case SSH_KNOWN_HOSTS_ERROR:
    default:
      return Status::Failed(what + ": cannot check the host key against " + file + ": " +
                            ssh_get_error(s));
  }
}

}  // namespace runbook
