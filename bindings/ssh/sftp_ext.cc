// The OpenSSH SFTP extensions libssh 0.10 has no call for, sent over a
// second SFTP channel that speaks just enough of the protocol (draft-ietf-
// secsh-filexfer-02, version 3): INIT/VERSION, then one EXTENDED request
// and its STATUS reply.
#include <cstring>

#include "bindings/ssh/sftp_io.h"

namespace runbook {
namespace {

constexpr uint8_t kFxpInit = 1, kFxpVersion = 2, kFxpStatus = 101, kFxpExtended = 200;
constexpr uint32_t kMaxPacket = 256 * 1024;

void PutU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
}
void PutString(std::string* out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  *out += s;
}
uint32_t GetU32(const std::string& in, size_t at) {
  if (at + 4 > in.size()) return 0;
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return v;
}

class RawSftp {
 public:
  RawSftp(SshClient& c, SteadyTime deadline) : c_(c), deadline_(deadline) {}
  ~RawSftp() {
    if (!ch_) return;
    if (ssh_channel_is_open(ch_)) ssh_channel_close(ch_);
    ssh_channel_free(ch_);
  }

  Status Open() {
    ch_ = ssh_channel_new(c_.session());
    if (!ch_ || ssh_channel_open_session(ch_) != SSH_OK ||
        ssh_channel_request_subsystem(ch_, "sftp") != SSH_OK) {
      return Lost("cannot open an SFTP channel");
    }
    std::string init(1, static_cast<char>(kFxpInit));
    PutU32(&init, 3);
    Status s = Send(init);
    if (!s.ok()) return s;
    std::string reply;
    s = Receive(&reply);
    if (!s.ok()) return s;
    if (reply.empty() || static_cast<uint8_t>(reply[0]) != kFxpVersion) {
      return Status::Failed(c_.Describe() + ": unexpected SFTP reply to INIT");
    }
    return Status::Ok();
  }

  // Sends EXTENDED(name, a, b) and returns the STATUS code and message.
  Status Call(const std::string& name, const std::string& a, const std::string& b, uint32_t* code,
              std::string* message) {
    std::string req(1, static_cast<char>(kFxpExtended));
    PutU32(&req, 1);
    PutString(&req, name);
    PutString(&req, a);
    PutString(&req, b);
    Status s = Send(req);
    if (!s.ok()) return s;
    std::string reply;
    s = Receive(&reply);
    if (!s.ok()) return s;
    if (reply.size() < 9 || static_cast<uint8_t>(reply[0]) != kFxpStatus) {
      return Status::Failed(c_.Describe() + ": unexpected SFTP reply to " + name);
    }
    *code = GetU32(reply, 5);
    uint32_t len = GetU32(reply, 9);
    if (13 + static_cast<size_t>(len) <= reply.size()) *message = reply.substr(13, len);
    return Status::Ok();
  }

 private:
  Status Lost(const std::string& what) {
    return Status::Unavailable(c_.Describe() + ": " + what + ": " + c_.LastError());
  }

  Status Send(const std::string& body) {
    std::string packet;
    PutU32(&packet, static_cast<uint32_t>(body.size()));
    packet += body;
    if (ssh_channel_write(ch_, packet.data(), static_cast<uint32_t>(packet.size())) !=
        static_cast<int>(packet.size())) {
      return Lost("SFTP write failed");
    }
    return Status::Ok();
  }

  Status ReadExact(char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline_ - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Status::Timeout(c_.Describe() + ": SFTP reply timed out");
      int wait = static_cast<int>(std::min<int64_t>(left.count(), 1000));
      int r = ssh_channel_read_timeout(ch_, buf + got, static_cast<uint32_t>(n - got), 0, wait);
      if (r < 0 || (r == 0 && ssh_channel_is_eof(ch_))) return Lost("SFTP channel closed");
      got += static_cast<size_t>(r);
    }
    return Status::Ok();
  }

  Status Receive(std::string* body) {
    char len_buf[4];
    Status s = ReadExact(len_buf, 4);
    if (!s.ok()) return s;
    uint32_t len = GetU32(std::string(len_buf, 4), 0);
    if (len == 0 || len > kMaxPacket) return Status::Failed(c_.Describe() + ": bad SFTP packet");
    body->assign(len, '\0');
    return ReadExact(body->data(), len);
  }

  SshClient& c_;
  SteadyTime deadline_;
  ssh_channel ch_ = nullptr;
};

}  // namespace

Status SftpSession::Extended(const std::string& name, const std::string& a, const std::string& b,
                             SteadyTime deadline) {
  if (!HasExtension(name)) {
    return Status::Failed(client_->Describe() + ": the SFTP server does not support " + name);
  }
  // Bounded even without a step deadline: a reply is one round trip.
  deadline = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(60));
  RawSftp raw(*client_, deadline);
  Status s = raw.Open();
  if (!s.ok()) return s;
  uint32_t code = 0;
  std::string message;
  s = raw.Call(name, a, b, &code, &message);
  if (!s.ok()) return s;
  if (code == SSH_FX_OK) return Status::Ok();
  std::string msg = client_->Describe() + ": " + name + " " + a + " -> " + b + ": " +
                    (message.empty() ? "failed (SFTP status " + std::to_string(code) + ")" : message);
  return code == SSH_FX_NO_SUCH_FILE ? Status::NotFound(msg) : Status::Failed(msg);
}

Status SftpSession::PosixRename(const std::string& from, const std::string& to,
                                SteadyTime deadline) {
  return Extended("posix-rename@openssh.com", from, to, deadline);
}

Status SftpSession::Hardlink(const std::string& existing, const std::string& link,
                             SteadyTime deadline) {
  return Extended("hardlink@openssh.com", existing, link, deadline);
}

}  // namespace runbook
