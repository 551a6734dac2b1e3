// The kube binding: connection type, plans, kubectl error classification,
// the read-only probes (kube.get, kube.wait, kube.rollout_status), and how
// kubectl finds its cluster. Real kubectl against tests/kube_sim.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "bindings/kube/kube_manifest.h"
#include "bindings/kube/kube_target.h"
#include "bindings/kube/kubectl_errors.h"
#include "engine/core/rehearsal_plan.h"
#include "tests/bindings/fake_step_context.h"
#include "tests/bindings/kube_test_util.h"

namespace runbook::testing {

using kube::ClassifyKubectlError;
using kube::KubeErrorKind;

TEST_CASE("the kube connection type describes context, namespace and kubeconfig", "[kube]") {
  Registry r;
  RegisterKube(&r);
  const ConnectionType* t = r.FindConnectionType("kube");
  REQUIRE(t != nullptr);
  CHECK(t->schema().scalar_arg == "context");
  CHECK(t->Describe(Value{{"context", "prod"}, {"namespace", "dsm"}, {"kubeconfig", "/k"}}) ==
        "context=prod namespace=dsm kubeconfig=/k");
  CHECK(t->Describe(Value::object()) == "current context of the default kubeconfig");
  auto target = kube::KubeTargetFromConfig("cluster", Value{{"context", "prod"},
                                                            {"namespace", "dsm"}});
  REQUIRE_OK(target);
  CHECK(target->GlobalFlags() == std::vector<std::string>{"--context", "prod", "-n", "dsm"});
  CHECK(target->Where() == "namespace 'dsm' (context 'prod')");
  auto other = kube::KubeTargetFromConfig("c", Value::object(), "other");
  CHECK(other->GlobalFlags() == std::vector<std::string>{"-n", "other"});
  CHECK(other->Where() == "namespace 'other' (current context)");
}

TEST_CASE("every kube primitive declares a rehearsal mode and plans its kubectl argv", "[kube]") {
  Registry r;
  RegisterKube(&r);
  for (const char* name : {"kube.get", "kube.wait", "kube.rollout_status", "kube.scale",
                           "kube.patch", "kube.switch_selector", "kube.apply", "kube.delete",
                           "kube.run_job", "kube.exec", "kube.port_forward"}) {
    INFO(name);
    REQUIRE(r.Find(name) != nullptr);
    CHECK(r.Find(name)->rehearsal(Value{{"conn", "c"}}) != Rehearsal::kUndeclared);
  }
  Value scale{{"conn", "cluster"}, {"deployment", "chronicle-service"}, {"replicas", 0}};
  PlanEffect p = r.Find("kube.scale")->Plan(scale);
  CHECK(p.text == "kubectl <cluster> scale deployment/chronicle-service --replicas=0   # then "
                  "waits until 0 replicas are ready (up to 300s)");
  CHECK(p.reversible());
  CHECK(p.undo == "kubectl <cluster> scale deployment/chronicle-service "
                  "'--replicas=<the count before, recorded before scaling>'");
  Value sw{{"conn", "cluster"}, {"service", "chronicle-db"},
           {"selector", {{"app", "chronicle-db-v17"}}}};
  CHECK(r.Find("kube.switch_selector")->Plan(sw).text ==
        "kubectl <cluster> patch service chronicle-db --type json -p "
        "'[{\"op\":\"replace\",\"path\":\"/spec/selector\",\"value\":{\"app\":\"chronicle-db-v17\"}}]'"
        "   # only if a ready pod matches app=chronicle-db-v17; selector <current> -> "
        "app=chronicle-db-v17");
  Value del{{"conn", "cluster"}, {"kind", "pvc"}, {"name", "data"}, {"save", false}};
  CHECK_FALSE(r.Find("kube.delete")->Plan(del).reversible());
  CHECK(r.Find("kube.wait")->Plan(Value{{"conn", "c"}, {"namespace", "dsm"},
                                        {"resource", "job/backup-job"},
                                        {"for", "condition=complete"}, {"timeout", "300s"}})
            .text == "kubectl <c> -n dsm wait job/backup-job --for=condition=complete "
                     "--timeout=300s");
  CHECK(r.Find("kube.exec")->rehearsal(Value{{"argv", {"ls"}}}) == Rehearsal::kSkip);
  CHECK(r.Find("kube.exec")->rehearsal(Value{{"probe", true}}) == Rehearsal::kProbe);
  CHECK(r.Find("kube.port_forward")->rehearsal(Value()) == Rehearsal::kProbe);
}

TEST_CASE("a rehearsal matches what kubectl names with what kube.apply would create, by group",
          "[rehearsal]") {
  using kube::PlannedKindsOf;
  using V = std::vector<std::string>;
  // Built-in types by short name, kind, plural and plural.group.
  for (const char* t : {"deploy", "deployment", "Deployment", "deployments", "deployments.apps"}) {
    INFO(t);
    CHECK(PlannedKindsOf(t) == V{"apps/deployment"});
  }
  CHECK(PlannedKindsOf("svc") == V{"/service"});
  CHECK(PlannedKindsOf("services") == V{"/service"});
  CHECK(PlannedKindsOf("endpoints") == V{"/endpoints"});
  CHECK(PlannedKindsOf("ingresses.networking.k8s.io") == V{"networking.k8s.io/ingress"});
  CHECK(PlannedKindsOf("hpa") == V{"autoscaling/horizontalpodautoscaler"});
  // A Knative Service is not a Service, nor an Istio Gateway a Gateway API one.
  CHECK(PlannedKindsOf("services.serving.knative.dev") == V{"serving.knative.dev/services",
                                                            "serving.knative.dev/servic",
                                                            "serving.knative.dev/service"});
  // A custom resource's plural: one of the candidates is its kind.
  const V prometheus = PlannedKindsOf("prometheuses.monitoring.coreos.com");
  CHECK(std::find(prometheus.begin(), prometheus.end(), "monitoring.coreos.com/prometheus") !=
        prometheus.end());
  const V policies = PlannedKindsOf("networkpolicies.networking.k8s.io");
  CHECK(policies == V{"networking.k8s.io/networkpolicy"});
  // Without a group, an unknown type names nothing (its group is unknown).
  CHECK(PlannedKindsOf("prometheus").empty());
  CHECK(PlannedKindsOf("gateways").empty());
}

TEST_CASE("a rehearsal finds a custom object kube.apply would create by its kind alone",
          "[rehearsal][kube]") {
  FakeStepContext ctx;
  ctx.dry_run_ = true;
  RehearsalPlan* plan = PlanOf(ctx);
  REQUIRE(plan != nullptr);
  kube::KubeTarget t;
  t.ns = "dsm";
  plan->Note(kube::PlannedObjectKey(t, "monitoring.coreos.com/v1", "Prometheus", "dsm", "main"),
             "apply");
  // As a runbook names it (kube.wait {kind: prometheus}): any group will do.
  for (const char* type : {"prometheus/main", "prometheuses/main", "Prometheus/main",
                           "prometheuses.monitoring.coreos.com/main"}) {
    INFO(type);
    CHECK(kube::PlannedCreatorOf(ctx, t, type) == "apply");
  }
  // Not another name, namespace, kind or group.
  CHECK(kube::PlannedCreatorOf(ctx, t, "prometheus/other").empty());
  CHECK(kube::PlannedCreatorOf(ctx, t, "alertmanager/main").empty());
  CHECK(kube::PlannedCreatorOf(ctx, t, "prometheuses.example.com/main").empty());
  kube::KubeTarget elsewhere = t;
  elsewhere.ns = "other";
  CHECK(kube::PlannedCreatorOf(ctx, elsewhere, "prometheus/main").empty());
}

TEST_CASE("kubectl errors are classified from what kubectl prints", "[kube]") {
  auto kind = [](const std::string& err) { return ClassifyKubectlError(err).kind; };
  CHECK(kind("Error from server (NotFound): deployments.apps \"x\" not found\n") ==
        KubeErrorKind::kNotFound);
  CHECK(kind("error: no objects passed to scale statefulsets.apps \"x\" not found") ==
        KubeErrorKind::kNotFound);
  CHECK(kind("Error from server (Forbidden): pods is forbidden: User \"u\" cannot list") ==
        KubeErrorKind::kForbidden);
  CHECK(kind("Error from server (AlreadyExists): jobs.batch \"j\" already exists") ==
        KubeErrorKind::kAlreadyExists);
  CHECK(kind("Error from server (Conflict): Operation cannot be fulfilled on deployments.apps "
             "\"web\": the object has been modified") == KubeErrorKind::kConflict);
  CHECK(kind("Error from server (InternalError): Internal error occurred: injected fault") ==
        KubeErrorKind::kServerError);
  CHECK(kind("Error from server (ServiceUnavailable): maintenance") ==
        KubeErrorKind::kServerError);
  CHECK(kind("Unable to connect to the server: context deadline exceeded") ==
        KubeErrorKind::kTimeout);
  CHECK(kind("E1121 15:44:20.808019   17335 memcache.go:265] \"Unhandled Error\" err=\"x\"\n"
             "The connection to the server 127.0.0.1:1 was refused - did you specify the right "
             "host or port?\n") == KubeErrorKind::kUnreachable);
  CHECK(kube::KubectlErrorLine("E1121 15:44:20.808019   17335 memcache.go:265] x\nlast words\n") ==
        "last words");
  CHECK(kind("Unable to connect to the server: EOF") == KubeErrorKind::kDropped);
  CHECK(kind("error: timed out waiting for the condition on jobs/backup") ==
        KubeErrorKind::kWaitTimeout);
  CHECK(kind("The Deployment \"x\" is invalid: spec.selector: Required value") ==
        KubeErrorKind::kInvalid);
  CHECK(kind("error: context \"nope\" does not exist") == KubeErrorKind::kConfig);
  CHECK(kube::IsTransient(KubeErrorKind::kConflict, false));
  CHECK(kube::IsTransient(KubeErrorKind::kDropped, true));
  CHECK_FALSE(kube::IsTransient(KubeErrorKind::kDropped, false));
  CHECK_FALSE(kube::IsTransient(KubeErrorKind::kNotFound, true));
}

TEST_CASE("manifests parse as YAML documents, typed as kubectl reads them", "[kube]") {
  auto docs = kube::ParseYamlDocuments("a: 1\nb: \"2\"\nc: true\nd: ~\n---\n---\ne: [x]\n");
  REQUIRE_OK(docs);
  REQUIRE(docs->size() == 2);
  CHECK((*docs)[0] == Value{{"a", 1}, {"b", "2"}, {"c", true}, {"d", nullptr}});
}

TEST_CASE("kube.get reads an object or a list, and names what is missing", "[kube]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  Result<Value> r = c.Apply("kube.get", Value{{"conn", "sim"}, {"kind", "service"},
                                              {"name", "web"}});
  REQUIRE_OK(r);
  CHECK((*r)["spec"]["selector"]["app"] == "web");
  c.WaitReady("deployment", "web", 2);
  r = c.Apply("kube.get", Value{{"conn", "sim"}, {"kind", "pods"},
                                {"selector", {{"app", "web"}}}});
  REQUIRE_OK(r);
  CHECK((*r)["count"] == 2);
  r = c.Apply("kube.get", Value{{"conn", "sim"}, {"kind", "deployment"}, {"name", "nope"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kNotFound);
  CHECK(r.status().message() ==
        "kube.get: deployment 'nope' in namespace 'default' (context 'sim'): not found");
  r = c.Apply("kube.get", Value{{"conn", "sim"}, {"kind", "deployment"}, {"name", "nope"},
                                {"missing_ok", true}});
  REQUIRE_OK(r);
  CHECK(r->is_null());
  r = c.Apply("kube.get", Value{{"conn", "sim"}, {"namespace", "nowhere"}, {"kind", "deployment"},
                                {"name", "web"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("namespace 'nowhere' (context 'sim')") &&
                                       Catch::Contains("namespaces \"nowhere\" not found"));
}

TEST_CASE("kube.wait and kube.rollout_status wait for real and time out clearly", "[kube]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.sim.ApplyYaml(DeploymentYaml("stuck", 1, /*ready=*/false));
  Result<Value> r = c.Apply("kube.rollout_status", Value{{"conn", "sim"}, {"deployment", "web"},
                                                         {"timeout", "20s"}});
  REQUIRE_OK(r);
  CHECK_THAT((*r)["message"].get<std::string>(), Catch::Contains("successfully rolled out"));
  r = c.Apply("kube.wait", Value{{"conn", "sim"}, {"resource", "deployment/web"},
                                 {"for", "condition=available"}, {"timeout", "20s"}});
  REQUIRE_OK(r);
  CHECK((*r)["met"][0] == "deployment.apps/web condition met");
  auto start = std::chrono::steady_clock::now();
  r = c.Apply("kube.rollout_status", Value{{"conn", "sim"}, {"deployment", "stuck"},
                                           {"timeout", "2s"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.rollout_status: deployment 'stuck' in namespace 'default' "
                               "(context 'sim'): timed out waiting"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  r = c.Apply("kube.wait", Value{{"conn", "sim"}, {"resource", "pods"},
                                 {"selector", {{"app", "stuck"}}}, {"for", "condition=Ready"},
                                 {"timeout", "1s"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  // The step's deadline cuts a longer --timeout short.
  c.Deadline(1500);
  start = std::chrono::steady_clock::now();
  r = c.Apply("kube.wait", Value{{"conn", "sim"}, {"resource", "deployment/stuck"},
                                 {"for", "condition=available"}, {"timeout", "60s"}});
  REQUIRE_FALSE(r.ok());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(8));
}

TEST_CASE("kubectl inherits KUBECONFIG unless the connection names a kubeconfig", "[kube]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.ctx.AddConnection("env", "kube", Value{{"context", "sim"}});
  const char* before = std::getenv("KUBECONFIG");
  std::string saved = before ? before : "";
  setenv("KUBECONFIG", c.sim.kubeconfig.c_str(), 1);
  Result<Value> r = c.Apply("kube.get", Value{{"conn", "env"}, {"kind", "service"},
                                              {"name", "web"}});
  if (before) setenv("KUBECONFIG", saved.c_str(), 1); else unsetenv("KUBECONFIG");
  REQUIRE_OK(r);
  CHECK((*r)["metadata"]["namespace"] == "default");
  // A context that does not exist is a configuration error, not retried.
  c.ctx.AddConnection("bad", "kube", Value{{"context", "nope"}, {"kubeconfig", c.sim.kubeconfig}});
  r = c.Apply("kube.get", Value{{"conn", "bad"}, {"kind", "service"}, {"name", "web"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kInvalid);
  CHECK_THAT(r.status().message(), Catch::Contains("(context 'nope')") &&
                                       Catch::Contains("bad kubeconfig or context") && Catch::Contains("nope"));
}

TEST_CASE("an unreachable API server is retried, then reported with the context", "[kube]") {
  KubeCase c;
  std::string path = c.sim.dir + "/dead-kubeconfig";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster: "
                         "{server: \"http://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {}\n"
                         "contexts:\n- name: dead\n  context: {cluster: dead, user: u}\n"
                         "current-context: dead\n";
  c.ctx.AddConnection("dead", "kube", Value{{"context", "dead"}, {"namespace", "dsm"},
                                            {"kubeconfig", path}});
  Result<Value> r = c.Apply("kube.scale", Value{{"conn", "dead"},
                                                {"deployment", "chronicle-service"},
                                                {"replicas", 0}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kUnavailable);
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.scale: deployment 'chronicle-service' in namespace 'dsm' "
                               "(context 'dead'): API server unreachable, still after 4 attempts") &&
                 Catch::Contains("refused"));
  CHECK(c.ctx.undo_records.empty());
}

}  // namespace runbook::testing
