// Moves bytes between local sockets and direct-tcpip channels of one ssh
// session, on a thread of its own. libssh sessions are not thread-safe, so
// the relay owns its SshClient and its thread is the session's only user.
//
// Used twice: a jump host (one socketpair, handed to the inner session) and
// ssh.tunnel (a listening socket on 127.0.0.1; each accepted connection gets
// its own channel). Buffers are bounded and writes to a channel never exceed
// its window, so one slow reader cannot stall the others.
#pragma once

#include <libssh/libssh.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bindings/ssh/ssh_client.h"

namespace runbook {

class ChannelRelay {
 public:
  explicit ChannelRelay(std::unique_ptr<SshClient> client);
  ~ChannelRelay();  // stops the thread, closes every socket and channel
  ChannelRelay(const ChannelRelay&) = delete;
  ChannelRelay& operator=(const ChannelRelay&) = delete;

  // Before Start(): relay `fd` (a connected socket, now owned) over `channel` (owned).
  void AddPipe(int fd, ssh_channel channel);
  // Before Start(): accept on `listen_fd` (owned) and forward each accepted
  // connection to host:port as seen from the ssh server.
  void SetListener(int listen_fd, std::string host, int port);
  // Before Start(): end the thread once no pipe is left (a jump host).
  void set_stop_when_idle(bool v) { stop_when_idle_ = v; }
  void Start();

  // False once the session dropped or the thread ended.
  bool alive() const { return alive_; }
  // Why it is not alive, or the last failed forward.
  std::string error() const;

 private:
  struct Pipe;
  void Loop();
  bool Pump(Pipe& p);
  void Accept();
  void PumpSession();
  void SetError(const std::string& e);

  std::unique_ptr<SshClient> client_;
  std::vector<std::unique_ptr<Pipe>> pipes_;  // the thread's alone once started
  int listen_fd_ = -1;
  std::string host_;
  int port_ = 0;
  int local_port_ = 0;
  bool stop_when_idle_ = false;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> alive_{true};
  mutable std::mutex mu_;
  std::string error_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace runbook
