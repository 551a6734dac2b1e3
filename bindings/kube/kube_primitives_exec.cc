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
  if (args.contains("deployment")) return "deployment/" + StrArg(args, "deployment");
  return StrArg(args, "pod");
}

std::vector<std::string> ExecArgs(const Value& args) {
  std::vector<std::string> out{"exec", ExecTarget(args)};
  if (args.contains("container")) out.insert(out.end(), {"-c", StrArg(args, "container")});
  if (args.contains("stdin")) out.push_back("-i");
  out.push_back("--");
  if (args.contains("argv") && args["argv"].is_array()) {
    for (const auto& a : args["argv"]) out.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  return out;
}

class ExecPrimitive : public NamedPrimitive {
 public:
  ExecPrimitive()
      : NamedPrimitive(
            "kube.exec",
            Schema{"Run a command in a pod (kubectl exec; argv, no shell). A non-zero exit fails "
                   "the step unless listed in ok_codes.",
                   WithConnArgs({
                       WithForm(Arg("pod", ArgType::kString, false, "pod name (or TYPE/NAME)"),
                                ArgForm::kKubeObject),
                       WithForm(Arg("deployment", ArgType::kString, false,
                                    "a deployment: kubectl picks one of its pods"),
                                ArgForm::kKubeName),
                       WithForm(Arg("container", ArgType::kString, false, "container name"),
                                ArgForm::kKubeName),
                       Arg("argv", ArgType::kList, true, "program and arguments"),
                       Arg("stdin", ArgType::kString, false, "text fed to standard input"),
                       Arg("probe", ArgType::kBool, false,
                           "the command only reads: run it in rehearsals too"),
                       Arg("ok_codes", ArgType::kList, false,
                           "exit codes that count as success (default [0])"),
                   }),
                   {{"pod", "deployment"}},
                   ""},
            MapResult({
                Field("exit_code", FieldType::kInt, "the command's exit code (one of ok_codes)"),
                Field("stdout", FieldType::kString, "its standard output"),
                Field("stderr", FieldType::kString, "its standard error"),
            })) {}

  Rehearsal rehearsal(const Value& args) const override {
    return BoolArg(args, "probe", false) ? Rehearsal::kProbe : Rehearsal::kSkip;
  }
  std::string skip_reason(const Value&) const override {
    return "a command in a pod cannot be rehearsed unless marked probe: true (read-only)";
  }
  bool idempotent(const Value& args) const override { return BoolArg(args, "probe", false); }

  PlanEffect Plan(const Value& args) const override {
    std::string text = PlanArgv(args, ExecArgs(args));
    if (args.contains("stdin")) {
      text += "   # with " + std::to_string(StrArg(args, "stdin").size()) + " bytes on stdin";
    }
    if (BoolArg(args, "probe", false)) return ChangesNothing(text);
    return Irreversible(text, "irreversible unless the step has a rollback: action");
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
    if (args.contains("stdin")) call.stdin_data = StrArg(args, "stdin");
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
    ctx.SetChanged(!BoolArg(args, "probe", false));
    return Value{{"exit_code", r->exit_code}, {"stdout", r->out}, {"stderr", r->err}};
  }
};

std::string ForwardTarget(const Value& args) {
  if (args.contains("service")) return "svc/" + StrArg(args, "service");
  std::string pod = StrArg(args, "pod");
  return pod.find('/') == std::string::npos ? "pod/" + pod : pod;
}

class PortForwardPrimitive : public NamedPrimitive {
 public:
  PortForwardPrimitive()
      : NamedPrimitive(
            "kube.port_forward",
            Schema{"Forward a local port (127.0.0.1) to a pod or service for the rest of the "
                   "run (kubectl port-forward, stopped when the run ends).",
                   WithConnArgs({
                       WithForm(Arg("pod", ArgType::kString, false, "pod name (or TYPE/NAME)"),
                                ArgForm::kKubeObject),
                       WithForm(Arg("service", ArgType::kString, false, "service name"),
                                ArgForm::kKubeName),
                       Arg("remote_port", ArgType::kInt, true, "port of the pod or service"),
                       Arg("local_port", ArgType::kInt, false,
                           "local port (default: a free one kubectl picks)"),
                   }),
                   {{"pod", "service"}},
                   ""},
            MapResult({
                Field("local_port", FieldType::kInt, "the local port to connect to"),
                Field("host", FieldType::kString, "127.0.0.1"),
                Field("target", FieldType::kString,
                      "what is forwarded to: pod/NAME, svc/NAME, ..."),
                Field("remote_port", FieldType::kInt, "the remote_port argument"),
            })) {}

  // A forward changes nothing on the cluster.
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    std::string local = args.contains("local_port") ? StrArg(args, "local_port") : "";
    return ChangesNothing(
        PlanArgv(args, {"port-forward", "--address", "127.0.0.1", ForwardTarget(args),
                        local + ":" + StrArg(args, "remote_port")}) +
        "   # kept open until the run ends");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    std::optional<int64_t> remote = IntArg(args, "remote_port");
    std::optional<int64_t> local = IntArg(args, "local_port");
    std::string target = ForwardTarget(args);
    Result<int> port = EnsureKubePortForward(
        ctx, StrArg(args, "conn"), target, static_cast<int>(remote.value_or(0)),
        static_cast<int>(local.value_or(0)), StrArg(args, "namespace"));
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
