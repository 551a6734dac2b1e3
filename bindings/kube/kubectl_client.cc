#include "bindings/kube/kubectl_client.h"

#include "bindings/kube/kube_secrets.h"

#include <algorithm>

namespace runbook::kube {
namespace {

using std::chrono::milliseconds;

// A request may take this long at most, so that a hung API server still
// leaves time to try again within a long step deadline.
constexpr milliseconds kMaxRequestTimeout{60000};
// Without a step deadline, one kubectl run may take this long.
constexpr milliseconds kDefaultCallBudget{300000};
constexpr milliseconds kFirstBackoff{250};

std::string Quote(const std::string& a) {
  if (!a.empty() && a.find_first_of(" \t\n'\"\\$`*?[]{}()<>|&;#~!") == std::string::npos) {
    return a;
  }
  std::string out = "'";
  for (char c : a) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string Trimmed(const std::string& s) {
  std::string t = s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

// kubectl's own failures end its stderr with one of these; a remote
// command's stderr (kubectl exec) is passed through as it is.
bool LooksLikeKubectlError(const std::string& err) {
  std::string line = KubectlErrorLine(err);
  for (const char* p : {"Error from server", "error: ", "Unable to connect to the server",
                        "The connection to the server"}) {
    if (line.rfind(p, 0) == 0) return true;
  }
  return false;
}

}  // namespace

std::string FormatArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + Quote(a);
  return out;
}

KubectlClient::KubectlClient(KubeTarget target, ProcessRunner& runner, Clock& clock,
                             SteadyTime deadline)
    : target_(std::move(target)), runner_(&runner), clock_(&clock), deadline_(deadline) {}

KubectlClient KubectlClient::WithDeadline(SteadyTime deadline) const {
  KubectlClient c(target_, *runner_, *clock_, std::min(deadline, deadline_));
  c.secrets_ = secrets_;
  return c;
}

std::vector<std::string> KubectlClient::Argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{target_.kubectl};
  for (auto& f : target_.GlobalFlags()) argv.push_back(f);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Result<ProcessResult> KubectlClient::RunOnce(const KubectlCall& call) {
  SteadyTime now = clock_->Steady();
  ProcessSpec spec;
  spec.argv = Argv({});
  if (call.request_timeout) {
    milliseconds rt = kMaxRequestTimeout;
    if (deadline_ != SteadyTime::max()) {
      rt = std::min(rt, std::chrono::duration_cast<milliseconds>(deadline_ - now));
    }
    spec.argv.push_back("--request-timeout=" + std::to_string(std::max<int64_t>(rt.count(), 1)) +
                        "ms");
  }
  spec.argv.insert(spec.argv.end(), call.args.begin(), call.args.end());
  spec.stdin_data = call.stdin_data;
  if (deadline_ != SteadyTime::max()) {
    spec.deadline = deadline_;
  } else if (call.request_timeout) {
    spec.deadline = now + kDefaultCallBudget;
  }
  history_.push_back(spec.argv);
  Result<ProcessResult> r = runner_->Run(spec);
  if (!r.ok()) {
    return Status::Failed("cannot run kubectl ('" + target_.kubectl +
                          "'; is it installed and in PATH?): " + r.status().message());
  }
  return r;
}

Result<KubectlOutput> KubectlClient::Run(const KubectlCall& call) {
  for (int attempt = 1;; ++attempt) {
    if (deadline_ != SteadyTime::max() && clock_->Steady() >= deadline_) {
      return Status::Timeout("the step's deadline passed before kubectl could run" +
                             std::string(attempt > 1 ? " again" : ""));
    }
    Result<ProcessResult> r = RunOnce(call);
    if (!r.ok()) return r.status();
    if (r->timed_out) {
      std::string line = KubectlErrorLine(r->err);
      return Status::Timeout("the step's deadline passed while kubectl was running (stopped" +
                             std::string(attempt > 1 ? " on attempt " + std::to_string(attempt)
                                                     : "") +
                             ")" + (line.empty() ? "" : ": " + line));
    }
    if (r->exit_code == 0 && secrets_ && r->out.find("\"Secret\"") != std::string::npos) {
      NoteSecretValues(Value::parse(r->out, nullptr, false), *secrets_);
    }
    if (r->exit_code == 0 || (call.remote_exit_code && r->exit_code > 0 &&
                              !LooksLikeKubectlError(r->err))) {
      return KubectlOutput{r->exit_code, std::move(r->out), std::move(r->err), attempt};
    }
    KubeError e = ClassifyKubectlError(r->err);
    if (e.line.empty() && r->signal) e.line = "killed by signal " + std::to_string(r->signal);
    if (!IsTransient(e.kind, call.retry_unsafe) || attempt >= call.max_attempts) {
      return KubeErrorStatus(e, r->exit_code, attempt);
    }
    milliseconds delay = kFirstBackoff * (1 << (attempt - 1));
    // No time left for another attempt worth making: report this one.
    if (deadline_ != SteadyTime::max() &&
        clock_->Steady() + delay + milliseconds(500) >= deadline_) {
      return KubeErrorStatus(e, r->exit_code, attempt);
    }
    clock_->Sleep(delay);
  }
}

Result<Value> KubectlClient::RunJson(const KubectlCall& call) {
  Result<KubectlOutput> r = Run(call);
  if (!r.ok()) return r.status();
  Value v = Value::parse(r->out, nullptr, false);
  if (v.is_discarded()) {
    return Status::Failed("kubectl printed something that is not JSON: " +
                          Trimmed(r->out).substr(0, 200));
  }
  return v;
}

Result<Value> KubectlClient::Get(const std::string& kind, const std::string& name) {
  Result<Value> r = RunJson({{"get", kind, name, "-o", "json"}});
  if (!r.ok() && r.status().code() == Status::Code::kNotFound &&
      r.status().message().find("\"" + name + "\" not found") != std::string::npos &&
      r.status().message().find("namespaces \"") == std::string::npos) {
    return Status::NotFound("not found");
  }
  return r;
}

Result<Value> KubectlClient::List(const std::string& kind, const std::string& selector) {
  std::vector<std::string> args{"get", kind, "-o", "json"};
  if (!selector.empty()) args.insert(args.end(), {"-l", selector});
  Result<Value> r = RunJson({args});
  if (!r.ok()) return r.status();
  if (r->is_object() && r->contains("items") && (*r)["items"].is_array()) return (*r)["items"];
  return Value::array();
}

}  // namespace runbook::kube
