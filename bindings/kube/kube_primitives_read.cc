// kube.get, kube.wait, kube.rollout_status: read-only probes.
#include "bindings/kube/kube_objects.h"
#include "bindings/kube/kube_primitive.h"

namespace runbook::kube {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kDefaultWait{300000};

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// The --timeout of a waiting command: the asked timeout, cut to what is left
// of the step; and a client whose process ends shortly after it.
struct WaitBudget {
  milliseconds timeout;
  KubectlClient client;
};

WaitBudget Budget(KubeStep& step, const Value& args) {
  milliseconds timeout = DurationArgOr(args, "timeout", kDefaultWait);
  SteadyTime now = step.Now();
  SteadyTime deadline = step.client().deadline();
  if (deadline != SteadyTime::max()) {
    timeout = std::min(timeout, std::chrono::duration_cast<milliseconds>(deadline - now));
  }
  timeout = std::max(timeout, milliseconds(1000));
  return {timeout, step.client().WithDeadline(now + timeout + std::chrono::seconds(15))};
}

// By name: the object as kubectl prints it, whose keys are the API's (null
// when missing and missing_ok); by selector: {items, count, names}.
FieldSpec GetResult() {
  FieldSpec r = MapResult(
      {
          Optional(Field("apiVersion", FieldType::kString, "by name: the object's API version")),
          Optional(Field("kind", FieldType::kString, "by name: the object's kind")),
          Optional(
              MapField("metadata", "by name: the object's name, namespace, labels, ...", {}, true)),
          Optional(ListOfMaps("items", "by selector: the matching objects", {}, true)),
          Optional(Field("count", FieldType::kInt, "by selector: how many match")),
          Optional(ListField("names", FieldType::kString, "by selector: their names")),
      },
      true);
  r.help =
      "by name: the object (kubectl get -o json), null when missing with missing_ok; by "
      "selector: {items, count, names}";
  return Optional(r);
}

class GetPrimitive : public NamedPrimitive {
 public:
  GetPrimitive()
      : NamedPrimitive(
            "kube.get",
            Schema{"Read one object (by name) or a list (by label selector) as JSON.",
                   WithConnArgs({
                       WithForm(Arg("kind", ArgType::kString, true,
                                    "resource type: deployment, service, pods, job, ..."),
                                ArgForm::kKubeKind),
                       WithForm(Arg("name", ArgType::kString, false, "object name"),
                                ArgForm::kKubeName),
                       Arg("selector", ArgType::kAny, false,
                           "label selector: a map {app: web} or text app=web"),
                       Arg("missing_ok", ArgType::kBool, false,
                           "a missing object gives null instead of failing"),
                   }),
                   {{"name", "selector"}},
                   ""},
            GetResult()) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    return ChangesNothing(PlanArgv(args, KubectlArgs(args)));
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string kind = StrArg(args, "kind");
    if (args.contains("name")) {
      std::string obj = StrArg(args, "name");
      Result<Value> r = step.Get(kind, obj);
      if (!r.ok() && r.status().code() == Status::Code::kNotFound &&
          BoolArg(args, "missing_ok", false)) {
        // Missing in a rehearsal because kube.apply only simulated: not
        // "missing" (a `when` would take the branch a real run would not).
        Status planned = step.Fail(step.Subject(kind, obj), r.status());
        if (planned.code() == Status::Code::kNotYet) return planned;
        return Value(nullptr);
      }
      if (!r.ok()) return step.Fail(step.Subject(kind, obj), r.status());
      return *r;
    }
    std::string selector = SelectorText(args["selector"]);
    Result<Value> items = step.client().List(kind, selector);
    if (!items.ok()) {
      return step.Fail(kind + " with labels " + selector + " in " + step.target().Where(),
                       items.status());
    }
    Value names = Value::array();
    for (const auto& i : *items) names.push_back(AtPointer(i, "/metadata/name"));
    return Value{{"items", *items}, {"count", items->size()}, {"names", names}};
  }

 private:
  static std::vector<std::string> KubectlArgs(const Value& args) {
    std::vector<std::string> out{"get", StrArg(args, "kind")};
    if (args.contains("name")) {
      out.push_back(StrArg(args, "name"));
    } else {
      out.insert(out.end(), {"-l", SelectorText(args.value("selector", Value()))});
    }
    out.insert(out.end(), {"-o", "json"});
    return out;
  }
};

class WaitPrimitive : public NamedPrimitive {
 public:
  WaitPrimitive()
      : NamedPrimitive(
            "kube.wait",
            Schema{"Wait for a condition (kubectl wait): --for=condition=complete, delete, "
                   "jsonpath=...",
                   WithConnArgs({
                       WithForm(Arg("resource", ArgType::kString, true,
                                    "what to wait for: job/backup-job, deployment/web, or a type "
                                    "with a selector"),
                                ArgForm::kKubeObject),
                       Arg("for", ArgType::kString, true,
                           "condition=complete, condition=Ready, delete, jsonpath='{..}'=v"),
                       Arg("selector", ArgType::kAny, false, "label selector (map or text)"),
                       Arg("timeout", ArgType::kDuration, false, "how long to wait (5m)"),
                   }),
                   {},
                   ""},
            MapResult({
                Field("resource", FieldType::kString, "the resource argument"),
                Field("for", FieldType::kString, "the for argument"),
                ListField("met", FieldType::kString,
                          "kubectl's lines, one per object: job.batch/x condition met"),
            })) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    milliseconds t = DurationArgOr(args, "timeout", kDefaultWait);
    return ChangesNothing(PlanArgv(args, KubectlArgs(args, t)));
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string subject = StrArg(args, "resource") + " in " + step.target().Where();
    // In a rehearsal, an object an earlier step deletes is not waited on as
    // it is now.
    const std::string resource = StrArg(args, "resource");
    if (const size_t slash = resource.find('/');
        step.dry_run() && slash != std::string::npos && !args.contains("selector")) {
      Status planned = step.AsPlanned(resource.substr(0, slash), resource.substr(slash + 1));
      if (planned.code() == Status::Code::kNotFound && StrArg(args, "for") == "delete") {
        return Value{
            {"resource", resource},
            {"for", StrArg(args, "for")},
            {"met", Value::array({resource + " deleted (by an earlier step of the run)"})}};
      }
      if (!planned.ok()) return step.Fail(subject, planned);
    }
    WaitBudget budget = Budget(step, args);
    KubectlCall call{KubectlArgs(args, budget.timeout)};
    call.request_timeout = false;
    Result<KubectlOutput> r = budget.client.Run(call);
    if (!r.ok()) return step.Fail(subject, r.status());
    Value lines = Value::array();
    for (size_t s = 0, nl; s < r->out.size(); s = nl + 1) {
      nl = r->out.find('\n', s);
      if (nl == std::string::npos) nl = r->out.size();
      if (nl > s) lines.push_back(r->out.substr(s, nl - s));
    }
    return Value{
        {"resource", StrArg(args, "resource")}, {"for", StrArg(args, "for")}, {"met", lines}};
  }

 private:
  static std::vector<std::string> KubectlArgs(const Value& args, milliseconds timeout) {
    std::vector<std::string> out{"wait", StrArg(args, "resource")};
    if (args.contains("selector")) out.insert(out.end(), {"-l", SelectorText(args["selector"])});
    out.push_back("--for=" + StrArg(args, "for"));
    out.push_back("--timeout=" + KubectlDuration(timeout));
    return out;
  }
};

class RolloutStatusPrimitive : public NamedPrimitive {
 public:
  RolloutStatusPrimitive()
      : NamedPrimitive(
            "kube.rollout_status",
            Schema{"Wait until a rollout is complete (kubectl rollout status).",
                   WithConnArgs({
                       WithForm(Arg("deployment", ArgType::kString, false, "deployment name"),
                                ArgForm::kKubeName),
                       WithForm(Arg("statefulset", ArgType::kString, false, "statefulset name"),
                                ArgForm::kKubeName),
                       Arg("timeout", ArgType::kDuration, false, "how long to wait (5m)"),
                   }),
                   {{"deployment", "statefulset"}},
                   ""},
            MapResult({
                Field("kind", FieldType::kString, "deployment or statefulset"),
                Field("name", FieldType::kString, "its name"),
                Field("message", FieldType::kString,
                      "kubectl's last line: ... successfully rolled out"),
            })) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }
  PlanEffect Plan(const Value& args) const override {
    milliseconds t = DurationArgOr(args, "timeout", kDefaultWait);
    return ChangesNothing(PlanArgv(args, KubectlArgs(args, t)));
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    auto [kind, obj] = Target(args);
    if (Status planned = step.AsPlanned(kind, obj); !planned.ok()) {
      return step.Fail(step.Subject(kind, obj), planned);
    }
    WaitBudget budget = Budget(step, args);
    KubectlCall call{KubectlArgs(args, budget.timeout)};
    call.request_timeout = false;
    Result<KubectlOutput> r = budget.client.Run(call);
    if (!r.ok()) return step.Fail(step.Subject(kind, obj), r.status());
    return Value{{"kind", kind}, {"name", obj}, {"message", LastLine(r->out)}};
  }

 private:
  static std::pair<std::string, std::string> Target(const Value& args) {
    if (args.contains("statefulset")) return {"statefulset", StrArg(args, "statefulset")};
    return {"deployment", StrArg(args, "deployment")};
  }
  static std::vector<std::string> KubectlArgs(const Value& args, milliseconds timeout) {
    auto [kind, obj] = Target(args);
    return {"rollout", "status", kind + "/" + obj, "--timeout=" + KubectlDuration(timeout)};
  }
};

}  // namespace

void AddKubeReadPrimitives(Registry* r) {
  r->Add(std::make_unique<GetPrimitive>());
  r->Add(std::make_unique<WaitPrimitive>());
  r->Add(std::make_unique<RolloutStatusPrimitive>());
}

}  // namespace runbook::kube
