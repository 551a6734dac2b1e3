#include "bindings/ssh/ssh_relay.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace runbook {
namespace {

constexpr size_t kChunk = 32 * 1024;
constexpr size_t kMaxBuffered = 256 * 1024;  // channel -> socket, per pipe
constexpr int kPollMs = 200;

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

struct ChannelRelay::Pipe {
  int fd = -1;
  ssh_channel channel = nullptr;
  std::string to_channel;  // read from fd, not yet written (at most one chunk)
  std::string to_fd;       // read from the channel, not yet sent
  bool fd_eof = false;     // the local side finished sending
  bool eof_sent = false;   // ... and we told the channel
  bool fd_shut = false;    // the channel finished, and we told the socket
  bool broken = false;

  ~Pipe() {
    if (channel) {
      ssh_channel_close(channel);
      ssh_channel_free(channel);
    }
    if (fd >= 0) close(fd);
  }
  bool done() const {
    if (broken) return true;
    bool channel_done = ssh_channel_is_closed(channel) || ssh_channel_is_eof(channel);
    return channel_done && to_fd.empty() && (fd_eof || ssh_channel_is_closed(channel));
  }
};

ChannelRelay::ChannelRelay(std::unique_ptr<SshClient> client) : client_(std::move(client)) {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
}

ChannelRelay::~ChannelRelay() {
  stop_ = true;
  if (wake_[1] >= 0) {
    char c = 'x';
    (void)!write(wake_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  pipes_.clear();  // the thread is gone: this thread may use the session now
  if (listen_fd_ >= 0) close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
  client_.reset();
}

void ChannelRelay::AddPipe(int fd, ssh_channel channel) {
  auto p = std::make_unique<Pipe>();
  p->fd = fd;
  p->channel = channel;
  pipes_.push_back(std::move(p));
}

void ChannelRelay::SetListener(int listen_fd, std::string host, int port) {
  listen_fd_ = listen_fd;
  host_ = std::move(host);
  port_ = port;
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    local_port_ = ntohs(addr.sin_port);
  }
}

void ChannelRelay::Start() { thread_ = std::thread([this] { Loop(); }); }

std::string ChannelRelay::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void ChannelRelay::SetError(const std::string& e) {
  std::lock_guard<std::mutex> lock(mu_);
  error_ = e;
}

bool ChannelRelay::Pump(Pipe& p) {
  bool progress = false;
  char buf[kChunk];
  ssh_channel_poll(p.channel, 0);  // lets libssh take in pending packets
  if (!p.fd_eof && p.to_channel.empty()) {
    ssize_t n = recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      p.to_channel.assign(buf, static_cast<size_t>(n));
      progress = true;
    } else if (n == 0 || !WouldBlock(errno)) {
      p.fd_eof = true;
      progress = true;
    }
  }
  if (!p.to_channel.empty()) {
    uint32_t window = ssh_channel_window_size(p.channel);
    if (window > 0) {
      uint32_t n = std::min<uint32_t>(window, static_cast<uint32_t>(p.to_channel.size()));
      int w = ssh_channel_write(p.channel, p.to_channel.data(), n);
      if (w == SSH_ERROR) {
        p.broken = true;
      } else if (w > 0) {
        p.to_channel.erase(0, static_cast<size_t>(w));
        progress = true;
      }
    }
  }
  if (p.fd_eof && p.to_channel.empty() && !p.eof_sent) {
    ssh_channel_send_eof(p.channel);
    p.eof_sent = true;
  }
  if (p.to_fd.size() < kMaxBuffered) {
    int n = ssh_channel_read_nonblocking(p.channel, buf, sizeof buf, 0);
    if (n > 0) {
      p.to_fd.append(buf, static_cast<size_t>(n));
      progress = true;
    } else if (n == SSH_ERROR) {
      p.broken = true;
    }
  }
  if (!p.to_fd.empty()) {
    ssize_t n = send(p.fd, p.to_fd.data(), p.to_fd.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      p.to_fd.erase(0, static_cast<size_t>(n));
      progress = true;
    } else if (n < 0 && !WouldBlock(errno)) {
      p.broken = true;
    }
  }
  if (!p.fd_shut && p.to_fd.empty() && ssh_channel_is_eof(p.channel)) {
    shutdown(p.fd, SHUT_WR);
    p.fd_shut = true;
  }
  return progress;
}

// Lets libssh read and handle what the server sent (keepalive requests, a
// disconnect) when no channel read does it for us. Accepting a forwarded
// channel with a zero timeout is the one public call of libssh 0.10 that
// runs its packet loop without a channel; we never ask for remote
// forwards, so nothing is ever accepted.
void ChannelRelay::PumpSession() {
  if (!pipes_.empty()) {
    ssh_channel_poll(pipes_.front()->channel, 0);
    return;
  }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // no replacement in 0.10
  ssh_channel extra = ssh_channel_accept_forward(client_->session(), 0, nullptr);
#pragma GCC diagnostic pop
  if (extra) ssh_channel_free(extra);
}

void ChannelRelay::Accept() {
  int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  ssh_channel ch = client_->connected() ? ssh_channel_new(client_->session()) : nullptr;
  if (!ch || ssh_channel_open_forward(ch, host_.c_str(), port_, "127.0.0.1", local_port_) != SSH_OK) {
    SetError(client_->Describe() + ": cannot forward to " + host_ + ":" + std::to_string(port_) +
             ": " + client_->LastError());
    if (ch) ssh_channel_free(ch);
    close(fd);  // the client sees the connection closed at once
    return;
  }
  AddPipe(fd, ch);
}

void ChannelRelay::Loop() {
  std::vector<pollfd> fds;
  while (!stop_) {
    bool progress = false;
    for (auto& p : pipes_) progress |= Pump(*p);
    std::erase_if(pipes_, [](const std::unique_ptr<Pipe>& p) { return p->done(); });
    if (!client_->connected()) {
      SetError(client_->Describe() + ": the ssh connection was lost: " + client_->LastError());
      break;
    }
    if (stop_when_idle_ && pipes_.empty()) break;
    client_->Keepalive();
    if (progress) continue;
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({ssh_get_fd(client_->session()), POLLIN, 0});
    if (listen_fd_ >= 0) fds.push_back({listen_fd_, POLLIN, 0});
    for (auto& p : pipes_) {
      short ev = 0;
      if (!p->fd_eof && p->to_channel.empty()) ev |= POLLIN;
      if (!p->to_fd.empty()) ev |= POLLOUT;
      // Nothing to wait for on this socket: leave it out, or a hang-up
      // would wake us again and again while the channel winds down.
      fds.push_back({ev ? p->fd : -1, ev, 0});
    }
    if (poll(fds.data(), fds.size(), kPollMs) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (read(wake_[0], drain, sizeof drain) > 0) {
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) PumpSession();
    if (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      SetError(client_->Describe() + ": the ssh connection was lost: " + client_->LastError());
      break;
    }
    if (listen_fd_ >= 0 && (fds[2].revents & POLLIN)) Accept();
  }
  pipes_.clear();
  alive_ = false;
}

}  // namespace runbook
