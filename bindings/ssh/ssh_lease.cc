#include "bindings/ssh/ssh_lease.h"

#include "engine/core/sha256.h"

namespace runbook {

std::string SshChainDigest(const std::vector<SshTarget>& chain) {
  std::string all;
  for (const auto& t : chain) {
    all += t.conn_name + '\0' + t.host + '\0' + std::to_string(t.port) + '\0' + t.user + '\0' +
           t.identity + '\0' + t.known_hosts + '\0' + t.global_known_hosts + '\0' + t.ssh_config +
           '\0' + (t.accept_new ? "1" : "0") + '\n';
  }
  return Sha256Hex(all).substr(0, 16);
}

Result<SshLease> LeaseSsh(StepContext& ctx, const std::string& conn_name, SteadyTime deadline) {
  Result<std::vector<SshTarget>> chain = ResolveSshChain(ctx, conn_name);
  if (!chain.ok()) return chain.status();
  std::string key = "ssh:" + conn_name + "#" + SshChainDigest(*chain);
  Result<Resource*> res = ctx.resources().GetOrCreate(key, []() -> Result<std::unique_ptr<Resource>> {
    return std::unique_ptr<Resource>(std::make_unique<SshSessionResource>());
  });
  if (!res.ok()) return res.status();
  auto* session = dynamic_cast<SshSessionResource*>(*res);
  if (!session) return Status::Internal("resource " + key + " is not an ssh session");

  SshLease lease;
  lease.lock_ = std::unique_lock<std::mutex>(session->mu);
  lease.res_ = session;
  lease.chain_ = std::move(*chain);
  lease.deadline_ = deadline;
  lease.log_ = [&ctx](LogLevel level, const std::string& text) { ctx.Log(level, text); };
  if (!session->client || !session->client->connected()) {
    Status s = lease.Connect();
    if (!s.ok()) return s;
  }
  return lease;
}

Status SshLease::Connect() {
  res_->sftp.reset();
  res_->client = std::make_unique<SshClient>();
  Status s = res_->client->Connect(chain_, deadline_, log_);
  if (!s.ok()) res_->client.reset();
  return s;
}

Result<ssh_channel> SshLease::OpenChannel() {
  for (int attempt = 0;; ++attempt) {
    if (!res_->client) {
      Status s = Connect();
      if (!s.ok()) return s;
    }
    SshClient& c = *res_->client;
    ssh_channel ch = ssh_channel_new(c.session());
    if (ch && ssh_channel_open_session(ch) == SSH_OK) return ch;
    if (ch) ssh_channel_free(ch);
    if (attempt > 0 || c.connected()) {
      if (c.connected()) {
        return Status::Failed(c.Describe() + ": cannot open a session channel: " + c.LastError());
      }
      return Status::Unavailable(c.Describe() + ": the ssh connection is gone: " + c.LastError());
    }
    res_->sftp.reset();
    res_->client.reset();  // dead since the last step: reconnect once
  }
}

Result<SftpSession*> SshLease::Sftp() {
  for (int attempt = 0;; ++attempt) {
    if (!res_->client) {
      Status s = Connect();
      if (!s.ok()) return s;
    }
    if (res_->sftp && res_->client->connected()) return res_->sftp.get();
    res_->sftp.reset();
    if (res_->client->connected()) {
      Result<std::unique_ptr<SftpSession>> sftp = SftpSession::Open(*res_->client);
      if (sftp.ok()) {
        res_->sftp = std::move(*sftp);
        return res_->sftp.get();
      }
      if (attempt > 0 || res_->client->connected()) return sftp.status();
    } else if (attempt > 0) {
      return Status::Unavailable(res_->client->Describe() + ": the ssh connection is gone");
    }
    res_->client.reset();
  }
}

}  // namespace runbook
