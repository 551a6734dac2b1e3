// kube.run_job: create a Job, wait until it completes or fails, return its
// status and the tail of its logs. Seed 004 ran its backup and restore so.
#include "bindings/kube/kube_manifest.h"
#include "bindings/kube/kube_objects.h"
#include "bindings/kube/kube_primitive.h"

namespace runbook::kube {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kDefaultTimeout{600000};
constexpr milliseconds kPollInterval{500};
constexpr char kRunAnnotation[] = "runbook/run-id";
constexpr char kStepAnnotation[] = "runbook/step-id";

// "succeeded", "failed" or "" (still running), from the Job's conditions.
std::string JobOutcome(const Value& job, std::string* reason) {
  Value conditions = AtPointer(job, "/status/conditions");
  if (conditions.is_array()) {
    for (const auto& c : conditions) {
      if (!c.is_object() || Str(c, "status") != "True") continue;
      std::string type = Str(c, "type");
      if (type == "Complete") return "succeeded";
      if (type == "Failed") {
        *reason = Str(c, "reason") + (c.contains("message") ? ": " + Str(c, "message")
                                                                 : "");
        return "failed";
      }
    }
  }
  return "";
}

bool CreatedBy(const Value& job, StepContext& ctx) {
  // Not AtPointer: the keys hold a '/', which a JSON pointer reads as a step.
  Value annotations = AtPointer(job, "/metadata/annotations");
  if (!annotations.is_object()) return false;
  return annotations.value(kRunAnnotation, "") == ctx.run_id() &&
         annotations.value(kStepAnnotation, "") == ctx.step_id();
}

Result<Value> JobFromArgs(const Value& args) {
  Result<Manifest> m = LoadManifest(args);
  if (!m.ok()) return m.status();
  if (m->objects.size() != 1 || Str(m->objects[0], "kind") != "Job") {
    return Status::Invalid("the manifest must hold exactly one object of kind Job");
  }
  return m->objects[0];
}

std::string JobName(const Value& args) {
  Result<Value> job = JobFromArgs(args);
  if (!job.ok()) return "<job>";
  Value name = AtPointer(*job, "/metadata/name");
  return name.is_string() ? name.get<std::string>() : "<job>";
}

class RunJobPrimitive : public NamedPrimitive {
 public:
  RunJobPrimitive()
      : NamedPrimitive(
            "kube.run_job",
            Schema{"Run a Job to its end: create it, wait until it completes or fails, return "
                   "its status and last log lines. A failed job fails the step.",
                   WithConnArgs({
                       Arg("manifest", ArgType::kAny, false, "the Job: a map or YAML text"),
                       WithForm(Arg("file", ArgType::kString, false, "a file holding the Job"),
                                ArgForm::kNotOption),
                       Arg("timeout", ArgType::kDuration, false, "how long it may run (10m)"),
                   }),
                   {{"manifest", "file"}},
                   ""},
            MapResult({
                Field("job", FieldType::kString, "the Job's name"),
                Field("status", FieldType::kString,
                      "succeeded (a failed job fails the step); UNKNOWN in a rehearsal"),
                Field("succeeded", FieldType::kInt,
                      "the Job's status.succeeded; UNKNOWN in a rehearsal"),
                Field("failed", FieldType::kInt, "the Job's status.failed; UNKNOWN in a rehearsal"),
                Field("logs", FieldType::kString, "its last 50 log lines; UNKNOWN in a rehearsal"),
            })) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  // A re-run finds the job this step created (by its annotations) and waits
  // for it instead of starting another.
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    std::string job = JobName(args);
    milliseconds t = DurationArgOr(args, "timeout", kDefaultTimeout);
    return {PlanArgv(args, {"apply", "-f", "<job " + job + ">"}) +
                "   # then waits until it completes or fails (up to " + KubectlDuration(t) +
                ") and reads its logs",
            UndoKind::kUndoes,
            PlanArgv(args, {"delete", "job", job, "--ignore-not-found"}) +
                "   # what the job did is not undone"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override;

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("name")) return NothingToUndo(ctx);
    Value undo_args = args;
    if (!Str(state, "namespace").empty()) undo_args["namespace"] = state["namespace"];
    KubeStep step(ctx, name(), undo_args);
    if (!step.ok()) return step.status();
    std::string job = Str(state, "name");
    Result<KubectlOutput> r = step.Change({{"delete", "job", job, "--ignore-not-found"}});
    if (!r.ok()) return step.Fail(step.Subject("job", job), r.status().Prefixed("undo"));
    return Status::Ok();
  }

 private:
  static std::string Logs(KubeStep& step, const std::string& job) {
    Result<KubectlOutput> r = step.client().Run(
        {{"logs", "job/" + job, "--tail=50", "--all-containers=true"}});
    if (!r.ok()) return "(logs unavailable: " + r.status().message() + ")";
    return r->out;
  }
};

Result<Value> RunJobPrimitive::Apply(StepContext& ctx, const Value& args) {
  KubeStep step(ctx, name(), args);
  if (!step.ok()) return step.status();
  Result<Value> job = JobFromArgs(args);
  if (!job.ok()) return step.Fail("job in " + step.target().Where(), job.status());
  std::string job_name = AtPointer(*job, "/metadata/name").get<std::string>();
  std::string subject = step.Subject("job", job_name);
  if (!AtPointer(*job, "/metadata/annotations").is_object()) {
    (*job)["metadata"]["annotations"] = Value::object();
  }
  (*job)["metadata"]["annotations"][kRunAnnotation] = ctx.run_id();
  (*job)["metadata"]["annotations"][kStepAnnotation] = ctx.step_id();

  Result<Value> existing = step.Get("job", job_name);
  bool ours = existing.ok() && CreatedBy(*existing, ctx);
  if (existing.ok() && !ours) {
    return step.Fail(subject, "already exists and was not created by this step; delete it first "
                              "(kube.delete with save: false) or give the job another name");
  }
  if (!existing.ok() && existing.status().code() != Status::Code::kNotFound) {
    return step.Fail(subject, existing.status());
  }
  // The Job reaches kubectl on stdin: no file holds it.
  if (step.dry_run()) {
    Result<KubectlOutput> r =
        step.Change({{"apply", "--filename=-", "--dry-run=server"}, job->dump()});
    if (!r.ok()) return step.Fail(subject, r.status());
    Value unknown = MakeUnknown("a rehearsal does not run the job");
    return Value{{"job", job_name}, {"status", unknown}, {"succeeded", unknown},
                 {"failed", unknown}, {"logs", unknown}};
  }
  if (Status s = ctx.RecordUndo(Value{{"kind", "Job"}, {"name", job_name},
                                      {"namespace", step.target().ns}});
      !s.ok()) {
    return step.Fail(subject, s);
  }
  if (ours) {
    ctx.Log(LogLevel::kInfo, "job " + job_name + " was started by an earlier attempt; waiting");
  } else {
    Result<KubectlOutput> r = step.Change({{"apply", "--filename=-"}, job->dump()});
    if (!r.ok()) return step.Fail(subject, r.status());
  }
  milliseconds timeout = DurationArgOr(args, "timeout", kDefaultTimeout);
  SteadyTime deadline = std::min(step.client().deadline(), step.Now() + timeout);
  KubectlClient poller = step.client().WithDeadline(deadline);
  auto ended = [&] {
    return step.Fail(subject, Status::Timeout("still running when the wait ended (" +
                                              KubectlDuration(timeout) + "); last log lines:\n" +
                                              Logs(step, job_name)));
  };
  for (;;) {
    Result<Value> live = poller.Get("job", job_name);
    if (!live.ok()) {
      // A poll cut off by the wait's own end (not the step's) is the wait ending.
      bool wait_ended = live.status().code() == Status::Code::kTimeout &&
                        step.Now() >= deadline && deadline < step.client().deadline();
      return wait_ended ? ended() : step.Fail(subject, live.status());
    }
    std::string reason;
    std::string outcome = JobOutcome(*live, &reason);
    if (!outcome.empty()) {
      std::string logs = Logs(step, job_name);
      Value result{{"job", job_name},
                   {"status", outcome},
                   {"succeeded", IntAt(*live, "/status/succeeded")},
                   {"failed", IntAt(*live, "/status/failed")},
                   {"logs", logs}};
      ctx.SetChanged(true);
      if (outcome == "succeeded") return result;
      return step.Fail(subject, "failed" + (reason.empty() ? "" : " (" + reason + ")") +
                                    "; last log lines:\n" + logs);
    }
    if (step.Now() + kPollInterval >= deadline) return ended();
    step.Sleep(kPollInterval);
  }
}

}  // namespace

void AddKubeJobPrimitives(Registry* r) { r->Add(std::make_unique<RunJobPrimitive>()); }

}  // namespace runbook::kube
