// KubectlClient: runs kubectl for one target (connection), never through a
// shell, and turns what it prints into values and Statuses.
//
// Each call runs `kubectl <global flags> <args>` through the step's
// ProcessRunner. The step's deadline bounds everything: each attempt's
// process, and each API request (--request-timeout, capped so that a hung
// server leaves time for a retry). Transient failures (409, 5xx, timeouts,
// refused or dropped connections) are retried a few times with backoff while
// time remains; the final error names its class and carries kubectl's words.
// Lua-free. Not thread-safe (one per step call; cheap to make).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bindings/kube/kube_target.h"
#include "bindings/kube/kubectl_errors.h"
#include "engine/core/clock.h"
#include "engine/core/process.h"
#include "engine/core/redact.h"

namespace runbook::kube {

struct KubectlCall {
  std::vector<std::string> args;          // after the global flags: {"get", "pods", ...}
  std::optional<std::string> stdin_data;  // nullopt: /dev/null
  // Pass --request-timeout: not for commands that stream (wait, rollout
  // status, exec, logs), which take their own --timeout.
  bool request_timeout = true;
  // Retry after a timeout or a dropped connection, where the request may
  // already have taken effect (safe for idempotent requests only).
  bool retry_unsafe = true;
  int max_attempts = 4;
  // kubectl exec: a non-zero exit that is not kubectl's own error (the
  // remote command's exit code) is returned as output, not as an error.
  bool remote_exit_code = false;
};

struct KubectlOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
  int attempts = 1;
};

class KubectlClient {
 public:
  // `deadline`: the step's (SteadyTime::max() for none).
  KubectlClient(KubeTarget target, ProcessRunner& runner, Clock& clock, SteadyTime deadline);

  const KubeTarget& target() const { return target_; }
  SteadyTime deadline() const { return deadline_; }
  // A client like this one whose calls end by `deadline` (or earlier).
  KubectlClient WithDeadline(SteadyTime deadline) const;

  // The argv of a call, as run (minus --request-timeout, which depends on
  // the time left).
  std::vector<std::string> Argv(const std::vector<std::string>& args) const;

  // Runs kubectl (with retries); the output if it exited 0, else the
  // classified error (see KubeErrorStatus).
  Result<KubectlOutput> Run(const KubectlCall& call);
  // Run, then parse stdout as JSON.
  Result<Value> RunJson(const KubectlCall& call);
  // `get KIND NAME -o json`; kNotFound with the message "not found" when the
  // object does not exist.
  Result<Value> Get(const std::string& kind, const std::string& name);
  // `get KIND -l SELECTOR -o json`: the items.
  Result<Value> List(const std::string& kind, const std::string& selector);

  // Every kubectl argv run so far (for logs and tests).
  const std::vector<std::vector<std::string>>& history() const { return history_; }
  // The values of every Secret kubectl prints from now on are registered
  // with `r` (kube_secrets.h), so nothing the run writes can show them.
  void NoteSecretsTo(Redactor* r) { secrets_ = r; }

 private:
  Result<ProcessResult> RunOnce(const KubectlCall& call);

  KubeTarget target_;
  ProcessRunner* runner_;
  Clock* clock_;
  SteadyTime deadline_;
  std::vector<std::vector<std::string>> history_;
  Redactor* secrets_ = nullptr;
};

// "kubectl --context prod -n dsm scale deployment/x --replicas=0", quoted
// for reading (never run through a shell).
std::string FormatArgv(const std::vector<std::string>& argv);

}  // namespace runbook::kube
