// ssh.exec: one remote command, from an argv (quoted by quote.h) or a shell
// command string, with sudo, env, stdin and a timeout that ends the remote
// command (ssh_exec.h). Rehearsal: skip, unless `probe: true` says the
// command only reads.
#include <algorithm>

#include "bindings/ssh/quote.h"
#include "bindings/ssh/ssh_exec.h"
#include "bindings/ssh/ssh_lease.h"
#include "bindings/ssh/ssh_primitive.h"
#include "engine/core/duration.h"

namespace runbook {
namespace {

constexpr int64_t kDefaultMaxOutput = 16 << 20;

std::string Tail(const std::string& s, size_t n) {
  std::string t = s.size() > n ? "..." + s.substr(s.size() - n) : s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

std::string AsText(const Value& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// The command as the schema describes it; argv wins over command.
RemoteCommand CommandFromArgs(const Value& args) {
  RemoteCommand cmd;
  if (args.contains("argv") && args["argv"].is_array()) {
    for (const auto& a : args["argv"]) cmd.argv.push_back(AsText(a));
  } else if (args.contains("command")) {
    cmd.argv = ShellArgv(StrArg(args, "command"));
  }
  if (args.contains("env") && args["env"].is_object()) {
    for (auto it = args["env"].begin(); it != args["env"].end(); ++it) {
      cmd.env[it.key()] = AsText(it.value());
    }
  }
  cmd.sudo = BoolArg(args, "sudo", false);
  return cmd;
}

// What an SRE should check for the usual sudo failures.
std::string Hint(const RemoteCommand& cmd, const RemoteExecResult& r) {
  if (!cmd.sudo) return "";
  if (r.exit_code == 127 && r.err.find("sudo") != std::string::npos) {
    return " (sudo is not installed on the host, or not in the remote PATH)";
  }
  if (r.err.find("password is required") != std::string::npos ||
      r.err.find("a terminal is required") != std::string::npos) {
    return " (sudo -n never prompts: the remote user needs NOPASSWD for this command)";
  }
  return "";
}

class SshExec : public NamedPrimitive {
 public:
  SshExec()
      : NamedPrimitive(
            "ssh.exec",
            Schema{"Runs a command on the host: an argv (each argument quoted for the remote "
                   "shell) or a shell command. A non-zero exit fails the step (see ok_codes).",
                   {SshConnArg(),
                    Arg("argv", ArgType::kList, false, "program and arguments (no shell)"),
                    Arg("command", ArgType::kString, false, "a shell command (sh -c)"),
                    Arg("sudo", ArgType::kBool, false, "run under sudo -n (never prompts)"),
                    Arg("env", ArgType::kMap, false, "environment variables (env K=V ...)"),
                    Arg("stdin", ArgType::kString, false, "text fed to standard input"),
                    Arg("timeout", ArgType::kDuration, false,
                        "ends the remote command (its process group) when it passes"),
                    Arg("probe", ArgType::kBool, false,
                        "the command only reads: run it in rehearsals too"),
                    Arg("ok_codes", ArgType::kList, false,
                        "exit codes that count as success (default [0])"),
                    Arg("max_output", ArgType::kInt, false,
                        "bytes kept of each of stdout and stderr (default 16 MiB)")},
                   {{"argv", "command"}},
                   ""},
            MapResult(
                {Field("exit_code", FieldType::kInt, "exit status of the remote command"),
                 Field("stdout", FieldType::kString,
                       "its standard output (at most max_output bytes)"),
                 Field("stderr", FieldType::kString,
                       "its standard error (at most max_output bytes)"),
                 Field("command", FieldType::kString, "the command line run on the host"),
                 Optional(Field("stdout_truncated", FieldType::kBool,
                                "true when stdout was cut at max_output (absent otherwise)")),
                 Optional(Field("stderr_truncated", FieldType::kBool,
                                "true when stderr was cut at max_output (absent otherwise)"))})) {}

  Rehearsal rehearsal(const Value& args) const override {
    return BoolArg(args, "probe", false) ? Rehearsal::kProbe : Rehearsal::kSkip;
  }
  std::string skip_reason(const Value&) const override {
    return "a remote command cannot be rehearsed unless marked probe: true (read-only)";
  }
  bool idempotent(const Value& args) const override { return BoolArg(args, "probe", false); }

  PlanEffect Plan(const Value& args) const override {
    Result<std::string> line = BuildCommandLine(CommandFromArgs(args));
    std::string text = "ssh " + StrArg(args, "conn") + ": " +
                       (line.ok() ? *line : "(invalid: " + line.status().message() + ")");
    if (args.contains("stdin"))
      text += "\n  (with " + std::to_string(StrArg(args, "stdin").size()) + " bytes on stdin)";
    return Irreversible(text, "irreversible unless the step has a rollback: action");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    RemoteCommand cmd = CommandFromArgs(args);
    Result<std::string> line = BuildCommandLine(cmd);
    if (!line.ok()) return line.status();
    auto timeout = OptionalDurationArg(args, "timeout");
    if (!timeout.ok()) return timeout.status();
    std::vector<int> ok_codes{0};
    if (args.contains("ok_codes") && args["ok_codes"].is_array()) {
      ok_codes.clear();
      for (const auto& c : args["ok_codes"]) {
        if (!c.is_number_integer()) return Status::Invalid("ok_codes must be a list of integers");
        ok_codes.push_back(c.get<int>());
      }
    }
    RemoteExecRequest req;
    req.command_line = *line;
    req.sudo = cmd.sudo;
    req.deadline = EarlierDeadline(ctx.deadline(), *timeout);
    if (args.contains("stdin")) req.stdin_data = StrArg(args, "stdin");
    if (args.contains("max_output") && args["max_output"].is_number_integer()) {
      req.max_output = static_cast<size_t>(std::max<int64_t>(0, args["max_output"].get<int64_t>()));
    } else {
      req.max_output = kDefaultMaxOutput;
    }
    Result<SshLease> lease = LeaseSsh(ctx, StrArg(args, "conn"), req.deadline);
    if (!lease.ok()) return lease.status();
    Result<ssh_channel> ch = lease->OpenChannel();
    if (!ch.ok()) return ch.status();
    std::string where = lease->client().Describe();
    Result<RemoteExecResult> r = RunRemote(lease->client(), *ch, req);
    if (!r.ok()) return r.status();
    if (r->timed_out) {
      std::string limit = *timeout ? " of " + FormatDuration(**timeout) : "";
      return Status::Timeout(where + ": the command did not finish within its time" + limit +
                             "; " + r->kill_note +
                             (r->err.empty() ? "" : "; stderr: " + Tail(r->err, 400)));
    }
    if (r->exit_code < 0) {
      return Status::Failed(where + ": the command was killed by a signal (no exit status)" +
                            (r->err.empty() ? "" : "; stderr: " + Tail(r->err, 400)));
    }
    Value result{{"exit_code", r->exit_code}, {"stdout", r->out}, {"stderr", r->err},
                 {"command", *line}};
    if (r->out_truncated) result["stdout_truncated"] = true;
    if (r->err_truncated) result["stderr_truncated"] = true;
    if (std::find(ok_codes.begin(), ok_codes.end(), r->exit_code) == ok_codes.end()) {
      std::string why = Tail(r->err.empty() ? r->out : r->err, 400);
      return Status::Failed(where + ": the command exited with " + std::to_string(r->exit_code) +
                            Hint(cmd, *r) + (why.empty() ? "" : ": " + why));
    }
    return result;
  }
};

}  // namespace

void AddSshExecPrimitives(Registry* r) { r->Add(std::make_unique<SshExec>()); }

}  // namespace runbook
