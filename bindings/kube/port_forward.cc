#include "bindings/kube/port_forward.h"

#include "engine/core/text.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "bindings/kube/kubectl_client.h"

namespace runbook {
namespace kube {
namespace {

using std::chrono::milliseconds;

// How long kubectl may take to say "Forwarding from ..." (it waits up to a
// minute for the pod to run).
constexpr milliseconds kStartBudget{60000};
constexpr size_t kKeepStderr = 4096;

// One running `kubectl port-forward`. A reader thread drains its stdout and
// stderr (kubectl prints a line per connection; a full pipe would stall it)
// and picks the local port out of "Forwarding from 127.0.0.1:PORT -> R".
// The destructor stops the reader, then kills kubectl's process group.
class KubePortForward : public Resource {
 public:
  KubePortForward() = default;
  ~KubePortForward() override {
    if (reader_.joinable()) {
      stop_ = true;
      uint64_t one = 1;
      (void)!::write(wake_fd_, &one, sizeof one);
      reader_.join();
    }
    std::lock_guard<std::mutex> lock(child_mu_);
    child_.Stop();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  Status Start(const ProcessSpec& spec, SteadyTime deadline) {
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) return Status::Failed("eventfd failed");
    if (Status s = child_.Start(spec); !s.ok()) return s;
    reader_ = std::thread([this] { ReadLoop(); });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, deadline, [this] { return port_ > 0 || eof_; });
    if (port_ > 0) return Status::Ok();
    KubeError e = ClassifyKubectlError(err_);
    if (e.line.empty()) e.line = "no output";
    if (!eof_) return Status::Timeout("kubectl port-forward did not start in time: " + e.line);
    return KubeErrorStatus(e, -1, 1).Prefixed("kubectl port-forward exited");
  }

  int local_port() {
    std::lock_guard<std::mutex> lock(mu_);
    return port_;
  }

  bool Alive() {
    std::lock_guard<std::mutex> lock(child_mu_);
    return child_.Running();
  }

  std::string ErrTail() {
    std::lock_guard<std::mutex> lock(mu_);
    return KubectlErrorLine(err_);
  }

 private:
  void ReadLoop() {
    int fds[2] = {child_.out_fd(), child_.err_fd()};
    std::string line_buf;
    char buf[4096];
    while (!stop_ && (fds[0] >= 0 || fds[1] >= 0)) {
      struct pollfd p[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      if (::poll(p, 3, 500) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(fds[i], buf, sizeof buf);
        if (n <= 0) {
          fds[i] = -1;  // closed (ChildProcess owns and closes the fd)
          continue;
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (i == 1) {
          err_.append(buf, n);
          if (err_.size() > kKeepStderr) err_.erase(0, err_.size() - kKeepStderr);
          continue;
        }
        line_buf.append(buf, n);
        // kubectl's "Forwarding from 127.0.0.1:PORT -> ..." line.
        const std::string kFrom = "Forwarding from 127.0.0.1:";
        if (size_t at = line_buf.find(kFrom); port_ == 0 && at != std::string::npos) {
          size_t digits = at + kFrom.size(), end = digits;
          while (end < line_buf.size() && IsAsciiDigit(line_buf[end])) ++end;
          if (end > digits && end - digits <= 5 && line_buf.compare(end, 3, " ->") == 0) {
            port_ = std::stoi(line_buf.substr(digits, end - digits));
            cv_.notify_all();
          }
        }
        if (line_buf.size() > kKeepStderr) line_buf.erase(0, line_buf.size() - kKeepStderr);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  std::mutex child_mu_;
  ChildProcess child_;  // guarded by child_mu_ after Start
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  int port_ = 0;       // guarded by mu_
  bool eof_ = false;   // guarded by mu_
  std::string err_;    // guarded by mu_
};

std::string NormalizeTarget(const std::string& target) {
  return target.find('/') == std::string::npos ? "pod/" + target : target;
}

}  // namespace
}  // namespace kube

Result<int> EnsureKubePortForward(StepContext& ctx, const std::string& kube_conn,
                                  const std::string& target_arg, int remote_port,
                                  int local_port, const std::string& ns_override) {
  using kube::KubePortForward;
  Result<kube::KubeTarget> target = kube::ResolveKubeTarget(ctx, kube_conn, ns_override);
  if (!target.ok()) return target.status();
  // The target becomes a positional word of kubectl's argv: never an option.
  if (std::string want = ArgFormError(ArgForm::kKubeObject, target_arg); !want.empty()) {
    return Status::Invalid("port-forward target '" + target_arg + "' is not " + want);
  }
  std::string target_name = kube::NormalizeTarget(target_arg);
  std::string where = "port-forward to " + target_name + " port " + std::to_string(remote_port) +
                      " in " + target->Where();
  if (remote_port <= 0 || remote_port > 65535 || local_port < 0 || local_port > 65535) {
    return Status::Invalid(where + ": ports must be between 1 and 65535");
  }
  std::string key = "kube-forward:" + kube_conn + "|" + target->ns + "|" + target_name + "|" +
                    std::to_string(remote_port) +
                    (local_port ? "|" + std::to_string(local_port) : "");
  std::vector<std::string> args{"port-forward", "--address", "127.0.0.1", target_name,
                                (local_port ? std::to_string(local_port) : "") + ":" +
                                    std::to_string(remote_port)};
  kube::KubectlClient client(*target, ctx.processes(), ctx.clock(), ctx.deadline());
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<Resource*> res = ctx.resources().GetOrCreate(
        key, [&]() -> Result<std::unique_ptr<Resource>> {
          ProcessSpec spec;
          spec.argv = client.Argv(args);
          ctx.Log(LogLevel::kInfo, kube::FormatArgv(spec.argv));
          auto fwd = std::make_unique<KubePortForward>();
          SteadyTime deadline = std::min(ctx.deadline(), ctx.clock().Steady() + kube::kStartBudget);
          if (Status s = fwd->Start(spec, deadline); !s.ok()) return s;
          return std::unique_ptr<Resource>(std::move(fwd));
        });
    if (!res.ok()) {
      // A rehearsal: what it forwards to would be created by an earlier
      // step (kube.apply) that only simulated.
      const std::string by = res.status().code() == Status::Code::kNotFound
                                 ? kube::PlannedCreatorOf(ctx, *target, target_name)
                                 : std::string();
      if (!by.empty()) {
        return Status::NotYet(where + ": " + target_name + " does not exist yet: step '" + by +
                              "' would create it");
      }
      return res.status().Prefixed(where);
    }
    auto* fwd = dynamic_cast<KubePortForward*>(*res);
    if (!fwd) return Status::Internal(where + ": resource " + key + " is not a port-forward");
    if (fwd->Alive()) return fwd->local_port();
    ctx.Log(LogLevel::kWarn, where + ": kubectl had stopped (" + fwd->ErrTail() +
                                 "); starting it again");
    ctx.resources().Drop(key);
  }
  return Status::Unavailable(where + ": kubectl port-forward keeps stopping");
}

}  // namespace runbook
