// kube.scale against the simulator: apply, rehearsal, undo, check, resume,
// and each injected fault (500 and 409 retried, a permanent 500, a slow
// API hitting the step's deadline, a dropped connection, NotFound).
#include "tests/bindings/kube_test_util.h"

namespace runbook::testing {
namespace {

Value ScaleWeb(int replicas) {
  return Value{{"conn", "sim"}, {"deployment", "web"}, {"replicas", replicas},
               {"timeout", "20s"}};
}

int64_t Hits(const KubeSim& sim) {
  int64_t hits = 0;
  for (const auto& f : sim.Faults()) hits += f.value("hits", 0);
  return hits;
}

}  // namespace

TEST_CASE("kube.scale records the replica count, scales, waits, and undo restores it",
          "[kube][kube.scale]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.WaitReady("deployment", "web", 2);
  std::string rv = c.SettledRv();

  // Rehearsal: the server checks the scale (dryRun=All) and keeps nothing.
  Result<Value> r = c.Rehearse("kube.scale", ScaleWeb(0));
  REQUIRE_OK(r);
  CHECK((*r)["previous_replicas"] == 2);
  CHECK(IsUnknown((*r)["ready"]));
  CHECK(c.SettledRv() == rv);
  CHECK(c.ctx.undo_records.empty());
  CHECK_THAT(c.sim.Log(), Catch::Contains("/deployments/web/scale?dryRun=All"));

  r = c.Apply("kube.scale", ScaleWeb(0));
  REQUIRE_OK(r);
  CHECK((*r)["previous_replicas"] == 2);
  CHECK((*r)["replicas"] == 0);
  CHECK((*r)["ready"] == 0);
  CHECK(c.ctx.changed == true);
  REQUIRE(c.ctx.undo_records.size() == 1);
  CHECK(c.ctx.LastUndo()["previous_replicas"] == 2);
  Value d = c.Get("deployment", "web");
  CHECK(d["spec"]["replicas"] == 0);
  CHECK(d["status"].value("replicas", 0) == 0);  // waited until the pods were gone
  CHECK(c.Check("kube.scale", ScaleWeb(0)) == CheckOutcome::kDone);

  // A retry (or resume) sees 0 now but keeps the count found first.
  c.ctx.previous_undo = c.ctx.LastUndo();
  r = c.Apply("kube.scale", ScaleWeb(0));
  REQUIRE_OK(r);
  CHECK(c.ctx.LastUndo()["previous_replicas"] == 2);
  CHECK(c.ctx.changed == false);

  REQUIRE_OK(c.Undo("kube.scale", ScaleWeb(0)));
  d = c.Get("deployment", "web");
  CHECK(d["spec"]["replicas"] == 2);
  CHECK(d["status"]["readyReplicas"] == 2);  // undo waits too
  CHECK(c.Check("kube.scale", ScaleWeb(0)) == CheckOutcome::kNotDone);
  REQUIRE_OK(c.Undo("kube.scale", ScaleWeb(0)));  // twice is fine
}

TEST_CASE("kube.scale scales a statefulset and waits for its pods", "[kube][kube.scale]") {
  KubeCase c;
  c.sim.ApplyYaml(R"(apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: postgres, image: "postgres:15"}
)");
  c.WaitReady("statefulset", "db", 1);
  Value args{{"conn", "sim"}, {"statefulset", "db"}, {"replicas", 3}, {"timeout", "20s"}};
  Result<Value> r = c.Apply("kube.scale", args);
  REQUIRE_OK(r);
  CHECK((*r)["ready"] == 3);
  CHECK(c.Exists("pod", "db-2"));
  REQUIRE_OK(c.Undo("kube.scale", args));
  CHECK(c.Get("statefulset", "db")["spec"]["replicas"] == 1);
  CHECK_FALSE(c.Exists("pod", "db-2"));
}

TEST_CASE("kube.scale records its undo before it scales", "[kube][kube.scale]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.WaitReady("deployment", "web", 2);
  c.sim.AddFault(Value{{"match", {{"method", "PATCH"}, {"path_regex", "/deployments/web/scale"}}},
                       {"status", 403}, {"count", 0}, {"reason", "Forbidden"},
                       {"message", "deployments.apps \"web\" is forbidden: nope"}});
  Result<Value> r = c.Apply("kube.scale", ScaleWeb(0));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.scale: deployment 'web' in namespace 'default' (context "
                               "'sim'): forbidden"));
  CHECK(Hits(c.sim) == 1);  // not retried
  REQUIRE(c.ctx.undo_records.size() == 1);
  CHECK(c.ctx.LastUndo()["previous_replicas"] == 2);
}

TEST_CASE("kube.scale retries a 500 and a dropped connection, then succeeds",
          "[kube][kube.scale][faults]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.WaitReady("deployment", "web", 2);
  c.sim.AddFault(Value{{"match", {{"method", "PATCH"}, {"path_regex", "/deployments/web/scale"}}},
                       {"status", 500}, {"count", 1}});
  Result<Value> r = c.Apply("kube.scale", ScaleWeb(1));
  REQUIRE_OK(r);
  CHECK(Hits(c.sim) == 1);
  CHECK(c.Get("deployment", "web")["spec"]["replicas"] == 1);
  c.sim.Reset();
  c.sim.ApplyYaml(kWebYaml);
  c.WaitReady("deployment", "web", 2);
  c.sim.AddFault(Value{{"match", {{"method", "PATCH"}, {"path_regex", "/deployments/web/scale"}}},
                       {"drop", true}, {"count", 1}});
  r = c.Apply("kube.scale", ScaleWeb(3));
  REQUIRE_OK(r);
  CHECK(Hits(c.sim) == 1);
  CHECK(c.Get("deployment", "web")["spec"]["replicas"] == 3);
}

TEST_CASE("kube.scale fails cleanly on a permanent 500, naming the deployment and context",
          "[kube][kube.scale][faults]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.WaitReady("deployment", "web", 2);
  c.sim.AddFault(Value{{"match", {{"method", "GET"}, {"path_regex", "/deployments/web(\\?|$)"}}},
                       {"status", 500}, {"count", 0}});
  Result<Value> r = c.Apply("kube.scale", ScaleWeb(0));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kUnavailable);
  CHECK(r.status().message() ==
        "kube.scale: deployment 'web' in namespace 'default' (context 'sim'): API server error, "
        "still after 4 attempts: Error from server (InternalError): Internal error occurred: "
        "injected fault");
  CHECK(Hits(c.sim) == 4);
  CHECK(c.ctx.undo_records.empty());  // it never got to act
  c.sim.Request("DELETE", "/_sim/faults");
  CHECK(c.Get("deployment", "web")["spec"]["replicas"] == 2);
}

TEST_CASE("kube.scale against a slow API stops at the step's deadline", "[kube][kube.scale][faults]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.WaitReady("deployment", "web", 2);
  c.sim.AddFault(Value{{"match", {{"method", "GET"}, {"path_regex", "/deployments/web(\\?|$)"}}},
                       {"delay_ms", 8000}, {"count", 0}});
  c.Deadline(2500);
  auto start = std::chrono::steady_clock::now();
  Result<Value> r = c.Apply("kube.scale", ScaleWeb(0));
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.scale: deployment 'web' in namespace 'default' (context "
                               "'sim'): ") &&
                 (Catch::Contains("timed out") || Catch::Contains("deadline")));
  CHECK(took < std::chrono::milliseconds(4500));
  CHECK(c.ctx.undo_records.empty());
}

TEST_CASE("kube.scale of a missing deployment names it and the context", "[kube][kube.scale]") {
  KubeCase c;
  Result<Value> r = c.Apply("kube.scale", Value{{"conn", "sim"}, {"deployment", "nope"},
                                                {"replicas", 1}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kNotFound);
  CHECK(r.status().message() ==
        "kube.scale: deployment 'nope' in namespace 'default' (context 'sim'): not found");
  r = c.Rehearse("kube.scale", Value{{"conn", "sim"}, {"deployment", "nope"}, {"replicas", 1}});
  REQUIRE_FALSE(r.ok());  // the rehearsal reports the missing object too
  CHECK(r.status().code() == Status::Code::kNotFound);
}

TEST_CASE("kube.scale times out when the new replicas never become ready", "[kube][kube.scale]") {
  KubeCase c;
  c.sim.ApplyYaml(DeploymentYaml("stuck", 0, /*ready=*/false));
  Value args{{"conn", "sim"}, {"deployment", "stuck"}, {"replicas", 2}, {"timeout", "2s"}};
  Result<Value> r = c.Apply("kube.scale", args);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(), Catch::Contains("scaled to 2, but 0 of 2 replicas ready"));
  CHECK(c.ctx.LastUndo()["previous_replicas"] == 0);  // rollback scales it back
  REQUIRE_OK(c.Undo("kube.scale", args));
  CHECK(c.Get("deployment", "stuck")["spec"]["replicas"] == 0);
}

}  // namespace runbook::testing
