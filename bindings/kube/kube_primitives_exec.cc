// kube.exec (a command in a pod: stdout, stderr, exit code) and
// kube.port_forward (a local port later steps use, held for the run).
#include "bindings/kube/kube_primitive.h"
#include "bindings/kube/port_forward.h"

namespace runbook::kube {
namespace {

std::string Tail(const std::string& s, size_t n) {
  std::string t = s.size() > n ? "..." + s.substr(s.size() - n) : s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

// pod: a pod name or TYPE/NAME; deployment: the deployment's pod kubectl picks.
std::string ExecTarget(const Value& args) {
  if (args.contains("deployment")) return "deployment/" + ArgStr(args, "deployment");
  return ArgStr(args, "pod");
}

std::vector<std::string> ExecArgs(const Value& args) {
  std::vector<std::string> out{"exec", ExecTarget(args)};
  if (args.contains("container")) out.insert(out.end(), {"-c", ArgStr(args, "container")});
  if (args.contains("stdin")) out.push_back("-i");
  out.push_back("--");
  if (args.contains("argv") && args["argv"].is_array()) {
    for (const auto& a : args["argv"]) out.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  return out;
}

class ExecPrimitive : public KubePrimitive {
 public:
  ExecPrimitive()
      : KubePrimitive(
            "kube.exec",
            Schema{"Run a command in a pod (kubectl exec; argv, no shell). A non-zero exit fails "
                   "the step unless listed in ok_codes.",
                   WithConnArgs({
                       WithForm(KArg("pod", ArgType::kString, false, "pod name (or TYPE/NAME)"), ArgForm::kKubeObject),
                       WithForm(KArg("deployment", ArgType::kString, false,
                            "a deployment: kubectl picks one of its pods"), ArgForm::kKubeName),
                       WithForm(KArg("container", ArgType::kString, false, "container name"), ArgForm::kKubeName),
                       KArg("argv", ArgType::kList, true, "program and arguments"),
                       KArg("stdin", ArgType::kString, false, "text fed to standard input"),
                       KArg("probe", ArgType::kBool, false,
                            "the command only reads: run it in rehearsals too"),
                       KArg("ok_codes", ArgType::kList, false,
                            "exit codes that count as success (default [0])"),
                   }),
                   {{"pod", "deployment"}},
                   ""}) {}

  Rehearsal rehearsal(const Value& args) const override {
    return ArgBool(args, "probe", false) ? Rehearsal::kProbe : Rehearsal::kSkip;
  }
  std::string skip_reason(const Value&) const override {
    return "a command in a pod cannot be rehearsed unless marked probe: true (read-only)";
  }
  bool idempotent(const Value& args) const override { return ArgBool(args, "probe", false); }

  PlanEffect Plan(const Value& args) const override {
    std::string text = PlanArgv(args, ExecArgs(args));
    if (args.contains("stdin")) {
      text += "   # with " + std::to_string(ArgStr(args, "stdin").size()) + " bytes on stdin";
    }
    if (ArgBool(args, "probe", false)) return {text, true, kNothingToUndo};
    return {text, false, "irreversible unless the step has a rollback: action"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string target = ExecTarget(args);
    std::string subject = (target.find('/') == std::string::npos ? "pod '" + target + "'"
                                                                 : "'" + target + "'") +
                          " in " + step.target().Where();
    std::vector<std::string> cmd = ExecArgs(args);
    if (cmd.back() == "--") return step.Fail(subject, Status::Invalid("argv is empty"));
    KubectlCall call{cmd};
    if (args.contains("stdin")) call.stdin_data = ArgStr(args, "stdin");
    call.request_timeout = false;  // the command may run long; the deadline bounds it
    call.retry_unsafe = false;     // it may have run
    call.remote_exit_code = true;
    Result<KubectlOutput> r = step.Change(call);
    if (!r.ok()) return step.Fail(subject, r.status());
    std::vector<int> ok_codes{0};
    if (args.contains("ok_codes") && args["ok_codes"].is_array()) {
      ok_codes.clear();
      for (const auto& c : args["ok_codes"]) {
        if (c.is_number_integer()) ok_codes.push_back(c.get<int>());
      }
    }
    if (std::find(ok_codes.begin(), ok_codes.end(), r->exit_code) == ok_codes.end()) {
      std::string why = Tail(r->err.empty() ? r->out : r->err, 400);
      return step.Fail(subject, "'" + cmd[cmd.size() - args["argv"].size()] + "' exited with " +
                                    std::to_string(r->exit_code) + (why.empty() ? "" : ": " + why));
    }
    return Value{{"exit_code", r->exit_code}, {"stdout", r->out}, {"stderr", r->err},
                 {"changed", !ArgBool(args, "probe", false)}};
  }
};

std::string ForwardTarget(const Value& args) {
  if (args.contains("service")) return "svc/" + ArgStr(args, "service");
  std::string pod = ArgStr(args, "pod");
  return pod.find('/') == std::string::npos ? "pod/" + pod : pod;
}

class PortForwardPrimitive : public KubePrimitive {
 public:
  PortForwardPrimitive()
      : KubePrimitive(
            "kube.port_forward",
            Schema{"Forward a local port (127.0.0.1) to a pod or service for the rest of the "
                   "run (kubectl port-forward, stopped when the run ends).",
                   WithConnArgs({
                       WithForm(KArg("pod", ArgType::kString, false, "pod name (or TYPE/NAME)"), ArgForm::kKubeObject),
                       WithForm(KArg("service", ArgType::kString, false, "service name"), ArgForm::kKubeName),
                       KArg("remote_port", ArgType::kInt, true, "port of the pod or service"),
                       KArg("local_port", ArgType::kInt, false,
                            "local port (default: a free one kubectl picks)"),
                   }),
                   {{"pod", "service"}},
                   ""}) {}

  // A forward changes nothing on the cluster.
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    std::string local = args.contains("local_port") ? ArgStr(args, "local_port") : "";
    return {PlanArgv(args, {"port-forward", "--address", "127.0.0.1", ForwardTarget(args),
                            local + ":" + ArgStr(args, "remote_port")}) +
                "   # kept open until the run ends",
            true, kNothingToUndo};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    std::optional<int64_t> remote = ArgInt(args, "remote_port");
    std::optional<int64_t> local = ArgInt(args, "local_port");
    std::string target = ForwardTarget(args);
    Result<int> port = EnsureKubePortForward(ctx, ArgStr(args, "conn"), target,
                                             static_cast<int>(remote.value_or(0)),
                                             static_cast<int>(local.value_or(0)),
                                             ArgStr(args, "namespace"));
    if (!port.ok()) return port.status().Prefixed(name());
    return Value{{"local_port", *port}, {"host", "127.0.0.1"}, {"target", target},
                 {"remote_port", remote.value_or(0)}};
  }
};

}  // namespace

void AddKubeExecPrimitives(Registry* r) {
  r->Add(std::make_unique<ExecPrimitive>());
  r->Add(std::make_unique<PortForwardPrimitive>());
}

}  // namespace runbook::kube
