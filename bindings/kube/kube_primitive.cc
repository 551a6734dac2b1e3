#include "bindings/kube/kube_primitive.h"

#include "bindings/kube/kube_objects.h"
#include "bindings/kube/kube_target.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook::kube {

std::vector<ArgSpec> ConnArgs() {
  ArgSpec conn = ConnArg("conn", "kube", "the kube connection");
  return {conn, WithForm(Arg("namespace", ArgType::kString, false,
                             "namespace (default: the connection's)"),
                         ArgForm::kKubeName)};
}

std::vector<ArgSpec> WithConnArgs(std::vector<ArgSpec> more) {
  std::vector<ArgSpec> out = ConnArgs();
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

std::string KubectlDuration(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

std::string PlanArgv(const Value& args, const std::vector<std::string>& kubectl_args) {
  std::vector<std::string> argv{"kubectl", "<" + StrArg(args, "conn", "conn") + ">"};
  std::string ns = StrArg(args, "namespace");
  if (!ns.empty()) argv.insert(argv.end(), {"-n", ns});
  argv.insert(argv.end(), kubectl_args.begin(), kubectl_args.end());
  std::string text = FormatArgv(argv);
  // The placeholder is not a shell word: show it unquoted.
  std::string quoted = "'<" + StrArg(args, "conn", "conn") + ">'";
  if (size_t at = text.find(quoted); at != std::string::npos) {
    text.replace(at, quoted.size(), quoted.substr(1, quoted.size() - 2));
  }
  return text;
}

KubeStep::KubeStep(StepContext& ctx, std::string primitive, const Value& args)
    : ctx_(&ctx), primitive_(std::move(primitive)) {
  Result<KubeTarget> target =
      ResolveKubeTarget(ctx, StrArg(args, "conn"), StrArg(args, "namespace"));
  if (!target.ok()) {
    status_ = target.status().Prefixed(primitive_);
    return;
  }
  client_.emplace(std::move(*target), ctx.processes(), ctx.clock(), ctx.deadline());
  client_->NoteSecretsTo(&ctx.redactor());
}

std::string KubeStep::Subject(const std::string& kind, const std::string& name) const {
  subject_kind_ = kind;
  subject_name_ = name;
  return kind + " '" + name + "' in " + target().Where();
}

Status KubeStep::Fail(const std::string& subject, const Status& s) const {
  Status base = s.ok() ? Status::Failed("failed") : s;
  // A rehearsal: the object is missing because the kube.apply that would
  // create it only simulated.
  if (dry_run() && s.code() == Status::Code::kNotFound && client_) {
    bool named = false;
    std::string by = PlannedCreator(*ctx_, target(), s.message(), &named);
    if (!named && !subject_kind_.empty()) {  // kubectl's words were not kept: the subject
      by = PlannedCreatorOf(*ctx_, target(), subject_kind_ + "/" + subject_name_);
    }
    if (!by.empty()) {
      return Status::NotYet(primitive_ + ": " + subject + ": does not exist yet: step '" + by +
                            "' would create it");
    }
  }
  return base.Prefixed(primitive_ + ": " + subject);
}

std::vector<std::string> KubeStep::PlannedKeys(const Value& live, const std::string& name) const {
  // kube.apply keys an object by the namespace its manifest names, else the
  // connection's ("" being the context's): either may be this one's.
  std::vector<std::string> keys{
      PlannedObjectKey(target(), Str(live, "apiVersion"), Str(live, "kind"), target().ns, name)};
  const std::string ns = live.contains("metadata") ? Str(live["metadata"], "namespace") : "";
  if (!ns.empty() && ns != target().ns) {
    keys.push_back(
        PlannedObjectKey(target(), Str(live, "apiVersion"), Str(live, "kind"), ns, name));
  }
  return keys;
}

Result<Value> KubeStep::Get(const std::string& kind, const std::string& name) {
  Result<Value> live = client().Get(kind, name);
  RehearsalPlan* plan = live.ok() && dry_run() ? PlanOf(*ctx_) : nullptr;
  if (!plan || plan->empty() || !live->is_object()) return live;
  if (Status s = Planned(*plan, *live, kind, name); !s.ok()) return s;
  return live;
}

Status KubeStep::Planned(const RehearsalPlan& plan, const Value& live, const std::string& kind,
                         const std::string& name) const {
  // Made again under either key (after a delete noted under both): a new
  // one; else deleted under either: gone.
  const std::vector<std::string> keys = PlannedKeys(live, name);
  for (const std::string& key : keys) {
    if (const std::string by = plan.StepFor(key); !by.empty()) {
      return Status::NotYet(kind + " '" + name + "' would be a new one by now: step '" + by +
                            "' creates it again after an earlier step deletes it");
    }
  }
  for (const std::string& key : keys) {
    if (const std::string by = plan.GoneBy(key); !by.empty()) {
      return Status::NotFound(kind + " '" + name + "' would not exist by now: step '" + by +
                              "' deletes it earlier in this run (a real run would stop here)");
    }
  }
  return Status::Ok();
}

Status KubeStep::AsPlanned(const std::string& kind, const std::string& name) {
  RehearsalPlan* plan = dry_run() ? PlanOf(*ctx_) : nullptr;
  if (!plan || plan->empty() || name.empty()) return Status::Ok();
  Result<Value> live = client().Get(kind, name);
  if (!live.ok() || !live->is_object()) return Status::Ok();  // the command meets it itself
  return Planned(*plan, *live, kind, name);
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
