// The run's live ssh sessions: one SshClient per run and connection, kept in
// ctx.resources() under "ssh:<name>#<digest of the configs>" (an included
// runbook may name a different host with the same name) and reused by every
// step that names the connection.
//
// A lease locks the session for one primitive call (libssh sessions are not
// thread-safe; concurrent foreach items take turns), connects on first use,
// and reconnects once when the session turns out to be dead *before*
// anything was done on it (opening a channel fails). A connection lost in
// the middle of a command is an error, never a silent retry.
#pragma once

#include <libssh/libssh.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bindings/ssh/sftp_io.h"
#include "bindings/ssh/ssh_client.h"

namespace runbook {

class SshSessionResource : public Resource {
 public:
  std::mutex mu;
  std::unique_ptr<SshClient> client;  // guarded by mu
  std::unique_ptr<SftpSession> sftp;  // guarded by mu; belongs to client
};

class SshLease {
 public:
  SshLease() = default;
  SshLease(SshLease&&) = default;
  SshLease& operator=(SshLease&&) = default;

  SshClient& client() { return *res_->client; }
  SteadyTime deadline() const { return deadline_; }
  const std::string& conn_name() const { return chain_.back().conn_name; }

  // A new session channel (owned by the caller).
  Result<ssh_channel> OpenChannel();
  // The session's SFTP client, started on first use.
  Result<SftpSession*> Sftp();

 private:
  friend Result<SshLease> LeaseSsh(StepContext& ctx, const std::string& conn_name,
                                   SteadyTime deadline);
  Status Connect();

  std::unique_lock<std::mutex> lock_;
  SshSessionResource* res_ = nullptr;
  std::vector<SshTarget> chain_;
  SteadyTime deadline_ = SteadyTime::max();
  SshLogFn log_;
};

// Leases the run's session for connection `conn_name` (an ssh connection),
// connected. `deadline` bounds the connect (and is kept for the caller).
Result<SshLease> LeaseSsh(StepContext& ctx, const std::string& conn_name, SteadyTime deadline);

// The Resources key part that tells apart two configs with the same name.
std::string SshChainDigest(const std::vector<SshTarget>& chain);

}  // namespace runbook
