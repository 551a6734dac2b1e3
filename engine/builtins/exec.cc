// exec: run a program from an argv array (never a shell), with env, cwd,
// stdin and the step's timeout, which kills the whole process group.
#include <sys/stat.h>

#include "engine/builtins/builtins.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook {
namespace {

std::string Quote(const std::string& a) {
  if (!a.empty() && a.find_first_of(" \t\n'\"\\$`*?[]{}()<>|&;#~") == std::string::npos) return a;
  std::string out = "'";
  for (char c : a) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

bool Exists(const std::string& path) {
  struct stat st;
  return !path.empty() && stat(path.c_str(), &st) == 0;
}

std::string Tail(const std::string& s, size_t n) {
  std::string t = s.size() > n ? "..." + s.substr(s.size() - n) : s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

class ExecAction : public Primitive {
 public:
  std::string name() const override { return "exec"; }
  const Schema& schema() const override {
    static const Schema s{
        "Run a program (argv, no shell). Non-zero exit fails the step.",
        {{"argv", ArgType::kList, true, "program and arguments"},
         {"env", ArgType::kMap, false, "extra environment variables"},
         {"cwd", ArgType::kString, false, "working directory"},
         {"stdin", ArgType::kString, false, "text fed to standard input"},
         {"creates", ArgType::kString, false,
          "a path the command creates: if it exists the command is not run again (makes the "
          "step safe to resume)"},
         {"probe", ArgType::kBool, false, "the command only reads: run it in rehearsals too"},
         {"ok_codes", ArgType::kList, false, "exit codes that count as success (default [0])"}},
        {},
        "",
        MapResult(
            {Field("exit_code", FieldType::kInt, "exit status of the program (0 when skipped)"),
             Optional(
                 Field("stdout", FieldType::kString, "its standard output (absent when skipped)")),
             Optional(
                 Field("stderr", FieldType::kString, "its standard error (absent when skipped)")),
             Optional(Field("skipped", FieldType::kString,
                            "why the program was not run: the creates path exists "
                            "(absent when it ran)"))})};
    return s;
  }
  Rehearsal rehearsal(const Value& args) const override {
    return args.value("probe", false) ? Rehearsal::kProbe : Rehearsal::kSkip;
  }
  std::string skip_reason(const Value&) const override {
    return "a command cannot be rehearsed unless marked probe: true (read-only)";
  }
  // A later step may read what the command would have made (a pg.restore of
  // the archive a pg_dump command writes).
  std::vector<std::string> SkippedWouldMake(const Value& args) const override {
    if (!args.contains("creates")) return {};
    return {PlannedFileKey(args.value("creates", ""))};
  }
  bool idempotent(const Value& args) const override {
    return args.contains("creates") || args.value("probe", false);
  }
  PlanEffect Plan(const Value& args) const override {
    std::string text;
    if (args.contains("cwd")) text += "cd " + Quote(args.value("cwd", "")) + " && ";
    if (args.contains("env")) {
      for (auto it = args["env"].begin(); it != args["env"].end(); ++it) {
        text += it.key() + "=" + Quote(it.value().is_string() ? it.value().get<std::string>()
                                                               : it.value().dump()) + " ";
      }
    }
    for (const auto& a : args.value("argv", Value::array())) {
      text += Quote(a.is_string() ? a.get<std::string>() : a.dump()) + " ";
    }
    if (!text.empty()) text.pop_back();
    if (args.contains("creates")) text += "   (unless " + args.value("creates", "") + " exists)";
    return Irreversible("exec " + text, "irreversible unless the step has a rollback: action");
  }
  Result<Value> Apply(StepContext& ctx, const Value& args) override;
  CheckResult Check(StepContext&, const Value& args, const Value&) override {
    if (!args.contains("creates")) return {};
    if (Exists(args.value("creates", ""))) {
      return {CheckOutcome::kDone, Value{{"exit_code", 0}, {"skipped", "creates exists"}}};
    }
    return {CheckOutcome::kNotDone, nullptr};
  }
};

Result<Value> ExecAction::Apply(StepContext& ctx, const Value& args) {
  if (args.contains("creates") && Exists(args.value("creates", ""))) {
    ctx.SetChanged(false);
    return Value{{"exit_code", 0}, {"skipped", args.value("creates", "") + " exists"}};
  }
  ProcessSpec spec;
  for (const auto& a : args["argv"]) {
    spec.argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  if (spec.argv.empty()) return Status::Invalid("argv is empty");
  if (args.contains("env")) {
    for (auto it = args["env"].begin(); it != args["env"].end(); ++it) {
      spec.env[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    }
  }
  spec.cwd = args.value("cwd", "");
  if (args.contains("stdin")) spec.stdin_data = args.value("stdin", "");
  if (ctx.deadline() != SteadyTime::max()) spec.deadline = ctx.deadline();
  Result<ProcessResult> r = ctx.processes().Run(spec);
  if (!r.ok()) return r.status();
  ctx.SetChanged(!args.value("probe", false));  // a probe only reads
  Value result{{"exit_code", r->exit_code}, {"stdout", r->out}, {"stderr", r->err}};
  if (r->timed_out) {
    return Status::Timeout("'" + spec.argv[0] + "' timed out and its process group was killed" +
                           (r->err.empty() ? "" : "; stderr: " + Tail(r->err, 400)));
  }
  if (r->signal) {
    return Status::Failed("'" + spec.argv[0] + "' was killed by signal " +
                          std::to_string(r->signal));
  }
  std::vector<int> ok_codes{0};
  if (args.contains("ok_codes")) ok_codes = args["ok_codes"].get<std::vector<int>>();
  if (std::find(ok_codes.begin(), ok_codes.end(), r->exit_code) == ok_codes.end()) {
    std::string why = Tail(r->err.empty() ? r->out : r->err, 400);
    return Status::Failed("'" + spec.argv[0] + "' exited with " + std::to_string(r->exit_code) +
                          (why.empty() ? "" : ": " + why));
  }
  return result;
}

}  // namespace

void RegisterExec(Registry* registry) { registry->Add(std::make_unique<ExecAction>()); }

}  // namespace runbook
