// kube.scale: records the replica count it found, scales, waits until the
// new count is ready; undo scales back to the recorded count.
#include <algorithm>

#include "bindings/kube/kube_objects.h"
#include "bindings/kube/kube_primitive.h"

namespace runbook::kube {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kDefaultWait{300000};
// The first polls come quickly (a scale-down in a cutover is part of the write
// freeze), then back off: each poll is a kubectl process.
constexpr milliseconds kFirstPoll{100};
constexpr milliseconds kMaxPoll{1000};

std::pair<std::string, std::string> Workload(const Value& args) {
  if (args.contains("statefulset")) return {"statefulset", StrArg(args, "statefulset")};
  return {"deployment", StrArg(args, "deployment")};
}

// The controller has caught up and `want` replicas exist and are ready.
bool Settled(const Value& live, int64_t want) {
  return IntAt(live, "/spec/replicas", -1) == want &&
         IntAt(live, "/status/observedGeneration", 0) >= IntAt(live, "/metadata/generation", 0) &&
         IntAt(live, "/status/replicas", 0) == want &&
         IntAt(live, "/status/readyReplicas", 0) == want;
}

// Polls the workload until Settled or the wait's deadline; the ready count.
Result<int64_t> WaitForReplicas(KubeStep& step, const std::string& kind, const std::string& obj,
                                int64_t want, milliseconds timeout) {
  SteadyTime deadline = std::min(step.client().deadline(), step.Now() + timeout);
  KubectlClient client = step.client().WithDeadline(deadline);
  int64_t ready = 0, running = 0;
  milliseconds interval = kFirstPoll;
  auto ended = [&] {
    return Status::Timeout("scaled to " + std::to_string(want) + ", but " + std::to_string(ready) +
                           " of " + std::to_string(want) + " replicas ready (" +
                           std::to_string(running) + " running) when the wait ended");
  };
  for (;;) {
    Result<Value> live = client.Get(kind, obj);
    if (!live.ok()) {
      // A poll cut off by the wait's own end (not the step's) is the wait ending.
      bool wait_ended = live.status().code() == Status::Code::kTimeout && step.Now() >= deadline &&
                        deadline < step.client().deadline();
      return wait_ended ? ended() : live.status();
    }
    ready = IntAt(*live, "/status/readyReplicas", 0);
    running = IntAt(*live, "/status/replicas");
    if (Settled(*live, want)) return ready;
    if (step.Now() + interval >= deadline) return ended();
    step.Sleep(interval);
    interval = std::min(interval * 2, kMaxPoll);
  }
}

class ScalePrimitive : public NamedPrimitive {
 public:
  ScalePrimitive()
      : NamedPrimitive(
            "kube.scale",
            Schema{"Scale a deployment or statefulset; undo restores the replica count it found.",
                   WithConnArgs({
                       WithForm(Arg("deployment", ArgType::kString, false, "deployment name"),
                                ArgForm::kKubeName),
                       WithForm(Arg("statefulset", ArgType::kString, false, "statefulset name"),
                                ArgForm::kKubeName),
                       Arg("replicas", ArgType::kInt, true, "the new replica count"),
                       Arg("wait", ArgType::kBool, false,
                           "wait until that many replicas are ready (default true)"),
                       Arg("timeout", ArgType::kDuration, false, "how long to wait (5m)"),
                   }),
                   {{"deployment", "statefulset"}},
                   ""},
            MapResult({
                Field("kind", FieldType::kString, "deployment or statefulset"),
                Field("name", FieldType::kString, "its name"),
                Optional(Field("previous_replicas", FieldType::kInt,
                               "the replica count before the first attempt (undo restores it); "
                               "absent when resumed without a record")),
                Field("replicas", FieldType::kInt, "the new replica count"),
                Field("ready", FieldType::kInt,
                      "ready replicas (with wait: false, as read before scaling); "
                      "UNKNOWN in a rehearsal"),
            })) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    auto [kind, obj] = Workload(args);
    std::string replicas = StrArg(args, "replicas");
    std::string text = PlanArgv(args, {"scale", kind + "/" + obj, "--replicas=" + replicas});
    if (BoolArg(args, "wait", true)) {
      text += "   # then waits until " + replicas + " replicas are ready (up to " +
              KubectlDuration(DurationArgOr(args, "timeout", kDefaultWait)) + ")";
    }
    return {text, UndoKind::kUndoes,
            PlanArgv(args, {"scale", kind + "/" + obj,
                            "--replicas=<the count before, recorded before scaling>"})};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    auto [kind, obj] = Workload(args);
    std::string subject = step.Subject(kind, obj);
    std::optional<int64_t> want = IntArg(args, "replicas");
    if (!want || *want < 0) return step.Fail(subject, Status::Invalid("replicas must be >= 0"));
    Result<Value> live = step.Get(kind, obj);
    if (!live.ok()) return step.Fail(subject, live.status());
    int64_t current = IntAt(*live, "/spec/replicas", 1);
    int64_t previous = current;
    if (!step.dry_run()) {
      // A retry or a resume keeps the count found before the first attempt.
      Value earlier = ctx.PreviousUndo();
      if (earlier.is_object() && Str(earlier, "name") == obj &&
          earlier.contains("previous_replicas") && earlier["previous_replicas"].is_number()) {
        previous = earlier["previous_replicas"].get<int64_t>();
      }
      Status s = ctx.RecordUndo(Value{{"kind", kind},
                                      {"name", obj},
                                      {"namespace", step.target().ns},
                                      {"previous_replicas", previous}});
      if (!s.ok()) return step.Fail(subject, s);
    }
    std::vector<std::string> cmd{"scale", kind + "/" + obj, "--replicas=" + std::to_string(*want)};
    Result<KubectlOutput> r = step.Change({step.Mutating(cmd)});
    if (!r.ok()) return step.Fail(subject, r.status());
    Value result{
        {"kind", kind}, {"name", obj}, {"previous_replicas", previous}, {"replicas", *want}};
    ctx.SetChanged(current != *want);
    if (step.dry_run()) {
      result["ready"] = MakeUnknown("a rehearsal does not scale");
      return result;
    }
    int64_t ready = IntAt(*live, "/status/readyReplicas", 0);
    if (BoolArg(args, "wait", true)) {
      Result<int64_t> w =
          WaitForReplicas(step, kind, obj, *want, DurationArgOr(args, "timeout", kDefaultWait));
      if (!w.ok()) return step.Fail(subject, w.status());
      ready = *w;
    }
    result["ready"] = ready;
    ctx.Log(LogLevel::kInfo, kind + " " + obj + ": replicas " + std::to_string(previous) + " -> " +
                                 std::to_string(*want));
    return result;
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("previous_replicas")) return NothingToUndo(ctx);
    Value undo_args = args;
    undo_args["replicas"] = state["previous_replicas"];
    if (!Str(state, "namespace").empty()) undo_args["namespace"] = state["namespace"];
    KubeStep step(ctx, name(), undo_args);
    if (!step.ok()) return step.status();
    auto [kind, obj] = Workload(args);
    int64_t want = state["previous_replicas"].get<int64_t>();
    std::string subject = step.Subject(kind, obj);
    Result<KubectlOutput> r =
        step.Change({{"scale", kind + "/" + obj, "--replicas=" + std::to_string(want)}});
    if (!r.ok()) return step.Fail(subject, r.status().Prefixed("undo"));
    if (BoolArg(args, "wait", true)) {
      Result<int64_t> w =
          WaitForReplicas(step, kind, obj, want, DurationArgOr(args, "timeout", kDefaultWait));
      if (!w.ok()) return step.Fail(subject, w.status().Prefixed("undo"));
    }
    return Status::Ok();
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value& state) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return {};
    auto [kind, obj] = Workload(args);
    Result<Value> live = step.Get(kind, obj);
    std::optional<int64_t> want = IntArg(args, "replicas");
    if (!live.ok() || !want) return {};
    if (IntAt(*live, "/spec/replicas", 1) != *want) return {CheckOutcome::kNotDone, nullptr};
    Value result{{"kind", kind},
                 {"name", obj},
                 {"replicas", *want},
                 {"ready", IntAt(*live, "/status/readyReplicas", 0)}};
    if (state.is_object() && state.contains("previous_replicas")) {
      result["previous_replicas"] = state["previous_replicas"];
    }
    return {CheckOutcome::kDone, result};
  }
};

}  // namespace

void AddKubeScalePrimitives(Registry* r) { r->Add(std::make_unique<ScalePrimitive>()); }

}  // namespace runbook::kube
