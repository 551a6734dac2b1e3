#include "bindings/kube/kube_primitive.h"

#include "engine/core/duration.h"

namespace runbook::kube {

ArgSpec KArg(std::string name, ArgType type, bool required, std::string help,
             std::vector<std::string> choices) {
  ArgSpec a;
  a.name = std::move(name);
  a.type = type;
  a.required = required;
  a.help = std::move(help);
  a.choices = std::move(choices);
  return a;
}

std::vector<ArgSpec> ConnArgs() {
  ArgSpec conn = KArg("conn", ArgType::kConnection, true, "the kube connection");
  conn.conn_type = "kube";
  return {conn, WithForm(KArg("namespace", ArgType::kString, false,
                     "namespace (default: the connection's)"), ArgForm::kKubeName)};
}

std::vector<ArgSpec> WithConnArgs(std::vector<ArgSpec> more) {
  std::vector<ArgSpec> out = ConnArgs();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::string ArgStr(const Value& args, const char* key, const std::string& fallback) {
  if (!args.is_object() || !args.contains(key) || args[key].is_null()) return fallback;
  const Value& v = args[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

bool ArgBool(const Value& args, const char* key, bool fallback) {
  if (!args.is_object() || !args.contains(key) || !args[key].is_boolean()) return fallback;
  return args[key].get<bool>();
}

std::optional<int64_t> ArgInt(const Value& args, const char* key) {
  if (!args.is_object() || !args.contains(key)) return std::nullopt;
  const Value& v = args[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string& s = v.get<std::string>();
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 10) {
      return std::stoll(s);
    }
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> ArgDuration(const Value& args, const char* key) {
  if (!args.is_object() || !args.contains(key)) return std::nullopt;
  const Value& v = args[key];
  if (v.is_number()) {
    return std::chrono::milliseconds(static_cast<int64_t>(v.get<double>() * 1000));
  }
  if (v.is_string()) return ParseDuration(v.get<std::string>());
  return std::nullopt;
}

std::string KubectlDuration(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

std::string PlanArgv(const Value& args, const std::vector<std::string>& kubectl_args) {
  std::vector<std::string> argv{"kubectl", "<" + ArgStr(args, "conn", "conn") + ">"};
  std::string ns = ArgStr(args, "namespace");
  if (!ns.empty()) argv.insert(argv.end(), {"-n", ns});
  argv.insert(argv.end(), kubectl_args.begin(), kubectl_args.end());
  std::string text = FormatArgv(argv);
  // The placeholder is not a shell word: show it unquoted.
  std::string quoted = "'<" + ArgStr(args, "conn", "conn") + ">'";
  if (size_t at = text.find(quoted); at != std::string::npos) {
    text.replace(at, quoted.size(), quoted.substr(1, quoted.size() - 2));
  }
  return text;
}

KubeStep::KubeStep(StepContext& ctx, std::string primitive, const Value& args)
    : ctx_(&ctx), primitive_(std::move(primitive)) {
  Result<KubeTarget> target = ResolveKubeTarget(ctx, ArgStr(args, "conn"),
                                                ArgStr(args, "namespace"));
  if (!target.ok()) {
    status_ = target.status().Prefixed(primitive_);
    return;
  }
  client_.emplace(std::move(*target), ctx.processes(), ctx.clock(), ctx.deadline());
  client_->NoteSecretsTo(&ctx.redactor());
}

std::string KubeStep::Subject(const std::string& kind, const std::string& name) const {
  return kind + " '" + name + "' in " + target().Where();
}

Status KubeStep::Fail(const std::string& subject, const Status& s) const {
  Status base = s.ok() ? Status::Failed("failed") : s;
  return base.Prefixed(primitive_ + ": " + subject);
}

std::vector<std::string> KubeStep::Mutating(std::vector<std::string> args) const {
  if (dry_run()) args.push_back("--dry-run=server");
  return args;
}

Result<KubectlOutput> KubeStep::Change(const KubectlCall& call) {
  ctx_->Log(LogLevel::kInfo, FormatArgv(client_->Argv(call.args)));
  return client_->Run(call);
}

}  // namespace runbook::kube
