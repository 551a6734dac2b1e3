// Pieces shared by the kube.* primitives (the rest is engine/core/primitive_kit.h):
// connection arguments, plan text, and KubeStep (one call's client and error wording).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings/kube/kubectl_client.h"
#include "engine/core/primitive_kit.h"
#include "engine/core/registry.h"

namespace runbook {
class RehearsalPlan;
}

namespace runbook::kube {

// `conn` (a kube connection) and `namespace` (overrides the connection's).
std::vector<ArgSpec> ConnArgs();
// ConnArgs() followed by `more`.
std::vector<ArgSpec> WithConnArgs(std::vector<ArgSpec> more);

// "300s" for kubectl's --timeout flags.
std::string KubectlDuration(std::chrono::milliseconds d);

// "kubectl <conn> [-n NS] ARGS": the argv a step runs, with the connection's
// flags (--kubeconfig, --context, -n; listed by `plan` with the connection)
// shown as <conn>, since plan does not read connections.
std::string PlanArgv(const Value& args, const std::vector<std::string>& kubectl_args);

// One call of a primitive against its connection:
//   KubeStep step(ctx, name(), args);
//   if (!step.ok()) return step.status();
class KubeStep {
 public:
  // Resolves args.conn (+ args.namespace) into a client bound to the step's
  // deadline. On failure status() names the primitive and the connection.
  KubeStep(StepContext& ctx, std::string primitive, const Value& args);

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  StepContext& ctx() { return *ctx_; }
  KubectlClient& client() { return *client_; }
  const KubeTarget& target() const { return client_->target(); }
  bool dry_run() const { return ctx_->dry_run(); }

  // "deployment 'web' in namespace 'dsm' (context 'prod')". The object is
  // also what a later Fail with kNotFound is about (see Fail).
  std::string Subject(const std::string& kind, const std::string& name) const;
  // The status with the message "kube.scale: <subject>: <message>". In a
  // rehearsal, a kNotFound for an object an earlier rehearsed kube.apply
  // would create (the one kubectl names, else the last Subject) becomes
  // Status::NotYet naming that step.
  Status Fail(const std::string& subject, const Status& s) const;
  Status Fail(const std::string& subject, const std::string& message) const {
    return Fail(subject, Status::Failed(message));
  }
  // client().Get, as a real run would find the object by now: in a
  // rehearsal, an object an earlier rehearsed kube.delete would delete is
  // kNotFound ("would not exist by now"), and one a later kube.apply would
  // create again is Status::NotYet (the one there now is not it).
  Result<Value> Get(const std::string& kind, const std::string& name);
  // In a rehearsal, whether object kind/name is as a real run would find
  // it by now: Ok (as it is, or not known to the plan), kNotFound (an
  // earlier rehearsed step deletes it) or NotYet (one creates it again). For
  // commands that wait on an object (kube.wait, rollout status) rather than
  // read it with Get.
  Status AsPlanned(const std::string& kind, const std::string& name);
  // The keys of the rehearsal plan an object as kubectl printed it may be
  // noted under.
  std::vector<std::string> PlannedKeys(const Value& live, const std::string& name) const;
  // `args` with --dry-run=server in a rehearsal.
  std::vector<std::string> Mutating(std::vector<std::string> args) const;
  // Runs a command that changes something (or simulates it), logging its
  // exact argv first.
  Result<KubectlOutput> Change(const KubectlCall& call);
  // Waits between polls (the step's clock).
  void Sleep(std::chrono::milliseconds d) { ctx_->clock().Sleep(d); }
  SteadyTime Now() { return ctx_->clock().Steady(); }

 private:
  Status Planned(const RehearsalPlan& plan, const Value& live, const std::string& kind,
                 const std::string& name) const;

  StepContext* ctx_;
  std::string primitive_;
  mutable std::string subject_kind_, subject_name_;  // the last Subject's object
  Status status_;
  std::optional<KubectlClient> client_;
};

// Registration of each family (one file each).
void AddKubeReadPrimitives(Registry* r);    // kube.get, kube.wait, kube.rollout_status
void AddKubeScalePrimitives(Registry* r);   // kube.scale
void AddKubePatchPrimitives(Registry* r);   // kube.patch, kube.switch_selector
void AddKubeApplyPrimitives(Registry* r);   // kube.apply, kube.delete
void AddKubeJobPrimitives(Registry* r);     // kube.run_job
void AddKubeExecPrimitives(Registry* r);    // kube.exec, kube.port_forward

}  // namespace runbook::kube
