// The runbook's `kube:` connection and what kubectl needs from it.
//
// Map form {context, namespace, kubeconfig, kubectl}; the scalar form names
// the context. Users keep their kubeconfig, contexts and auth plugins: a
// kubeconfig is passed only when the connection names one (--kubeconfig),
// otherwise kubectl reads KUBECONFIG / ~/.kube/config as it always does.
#pragma once

#include <string>
#include <vector>

#include "engine/core/registry.h"

namespace runbook::kube {

struct KubeTarget {
  std::string conn_name;   // the runbook's connection name
  std::string context;     // "" = the kubeconfig's current context
  std::string ns;          // "" = the context's namespace
  std::string kubeconfig;  // "" = kubectl's own lookup
  std::string kubectl = "kubectl";

  // The global flags every command gets: --kubeconfig, --context, -n.
  std::vector<std::string> GlobalFlags() const;
  // "namespace 'dsm' (context 'prod')", for error messages.
  std::string Where() const;
};

// The target of connection `conn_name`; `ns_override` (a step's
// `namespace` argument) wins over the connection's namespace.
Result<KubeTarget> KubeTargetFromConfig(const std::string& conn_name, const Value& config,
                                        const std::string& ns_override = "");

// Looks up connection `conn_name` in the run (must be of type kube).
Result<KubeTarget> ResolveKubeTarget(StepContext& ctx, const std::string& conn_name,
                                     const std::string& ns_override = "");

// Objects an earlier rehearsed kube.apply would create, in the rehearsal
// plan (engine/core/rehearsal_plan.h), keyed by cluster, namespace ("" is
// the context's), API group, kind and name.
std::string PlannedObjectKey(const KubeTarget& t, const std::string& api_version,
                             const std::string& kind, const std::string& ns,
                             const std::string& name);
// In a rehearsal, for a kubectl call that failed because an object is not
// there: the step of this rehearsal that would have created the object
// kubectl names in `error` (`deployments.apps "green" not found`), or "".
// *named: whether `error` named one at all.
std::string PlannedCreator(StepContext& ctx, const KubeTarget& t, const std::string& error,
                           bool* named);
// The same for an object given as TYPE/NAME (deploy/green, svc/db,
// deployments.apps/green). A TYPE that is not built in needs its group.
std::string PlannedCreatorOf(StepContext& ctx, const KubeTarget& t, const std::string& type_name);
// "group/kind" candidates a TYPE names, for tests: "deploy" -> {"apps/deployment"}.
std::vector<std::string> PlannedKindsOf(const std::string& type);

// The name of the Lease that holds run lock `key`: "runbook-lock-", the
// letters and digits of `shown_key` (the key with its secrets redacted; at
// most 32), then 10 hex digits of the key's SHA-256.
std::string LeaseNameOf(const std::string& key, const std::string& shown_key);

// The `kube` connection type for the registry.
class KubeConnectionType : public ConnectionType {
 public:
  KubeConnectionType();
  std::string name() const override { return "kube"; }
  const Schema& schema() const override { return schema_; }
  std::string Describe(const Value& config) const override;
  // `via:` a kube connection: a kubectl port-forward (port_forward.h) to
  // the request's pod, kept for the run.
  bool routes() const override { return true; }
  Result<int> OpenRoute(StepContext& ctx, const std::string& via,
                        const RouteRequest& to) const override;
  // The run lock in the target's namespace: a coordination.k8s.io Lease
  // (kube_lease.cc), renewed while the run lives.
  Result<std::unique_ptr<TargetLock>> LockTarget(const std::string& conn_name, const Value& config,
                                                 const TargetLockRequest& req) const override;
  // A step's `namespace:` other than the connection's: locked there too.
  Value ActsIn(const Value& config, const Value& step_args) const override;

 private:
  Schema schema_;
};

}  // namespace runbook::kube
