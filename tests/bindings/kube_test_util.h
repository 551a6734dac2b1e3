// Shared setup of the kube.* primitive tests: the simulator (reset), a
// registry with the kube binding, a FakeStepContext with connection "sim",
// and manifests the tests start from.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "bindings/kube/register.h"
#include "tests/bindings/fake_step_context.h"
#include "tests/fixtures/kube_fixture.h"

namespace runbook::testing {

// Deployment web (2 replicas, pods app=web tier=frontend) and Service web
// (selector app=web, tier=frontend).
inline constexpr char kWebYaml[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: frontend}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27", ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web, tier: frontend}
  ports: [{port: 80, targetPort: 8080}]
)";

// A deployment NAME (pods app=NAME) with `replicas`; `ready` false gives
// pods that run but never become Ready.
inline std::string DeploymentYaml(const std::string& name, int replicas, bool ready = true) {
  std::string annotations = ready ? "{}" : "{sim.runbook/ready: \"false\"}";
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name +
         "}\nspec:\n  replicas: " + std::to_string(replicas) +
         "\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n    metadata: "
         "{labels: {app: " + name + "}, annotations: " + annotations +
         "}\n    spec:\n      containers:\n      - {name: main, image: \"postgres:17\"}\n";
}

// A value as plain JSON, so that comparisons ignore the order of keys (the
// server's order is not ours).
inline nlohmann::json Plain(const Value& v) { return nlohmann::json::parse(v.dump()); }

// Why a call failed, for test output.
inline std::string Why(const Status& s) { return s.message(); }
template <typename T>
std::string Why(const Result<T>& r) {
  return r.status().message();
}
// REQUIRE(x.ok()) that shows the error message when it fails.
#define REQUIRE_OK(expr)           \
  do {                             \
    auto&& require_ok_ = (expr);   \
    INFO(Why(require_ok_));        \
    REQUIRE(require_ok_.ok());     \
  } while (0)

class KubeCase {
 public:
  KubeCase() : sim(TheKubeSim()) {
    RegisterKube(&registry_);
    sim.Reset();
    ctx.AddConnection("sim", "kube",
                      Value{{"context", "sim"}, {"namespace", "default"},
                            {"kubeconfig", sim.kubeconfig}});
  }

  const KubeSim& sim;
  FakeStepContext ctx;

  Primitive& P(const std::string& name) {
    Primitive* p = registry_.Find(name);
    REQUIRE(p != nullptr);
    return *p;
  }
  // Checks args against the primitive's schema, then applies it.
  Result<Value> Apply(const std::string& name, const Value& args) {
    Primitive& p = P(name);
    for (const auto& e : CheckArgs(p.schema(), args)) FAIL_CHECK(name << ": " << e.message);
    ctx.changed.reset();  // what this call reports, not an earlier one
    Result<Value> r = p.Apply(ctx, args);
    // Every result matches what the primitive declares (docs/primitives.md).
    if (r.ok()) {
      if (Status d = CheckDeclaredResult(p, *r); !d.ok()) FAIL_CHECK(d.message());
    }
    return r;
  }
  // The same in a rehearsal, as the executor calls it (simulate and probe
  // run Apply with dry_run; skip does not run it).
  Result<Value> Rehearse(const std::string& name, const Value& args) {
    REQUIRE(P(name).rehearsal(args) != Rehearsal::kUndeclared);
    REQUIRE(P(name).rehearsal(args) != Rehearsal::kSkip);
    ctx.dry_run_ = true;
    Result<Value> r = Apply(name, args);
    ctx.dry_run_ = false;
    return r;
  }
  Status Undo(const std::string& name, const Value& args) {
    return P(name).Undo(ctx, args, ctx.LastUndo());
  }
  // What a resume would decide, from the last undo record (or `state`); a
  // "done" result must match the declared shape as Apply's does.
  CheckOutcome Check(const std::string& name, const Value& args) {
    return Check(name, args, ctx.LastUndo());
  }
  CheckOutcome Check(const std::string& name, const Value& args, const Value& state) {
    CheckResult r = P(name).Check(ctx, args, state);
    if (r.outcome == CheckOutcome::kDone) {
      if (Status d = CheckDeclaredResult(P(name), r.result); !d.ok()) FAIL_CHECK(d.message());
    }
    return r.outcome;
  }
  // The step's deadline, `ms` from now.
  void Deadline(int ms) {
    ctx.deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  }

  // The simulator's global resourceVersion once the controller is idle:
  // equal before and after means nothing was persisted.
  std::string SettledRv() {
    std::string last;
    for (int i = 0; i < 50; ++i) {
      std::string rv = sim.State()["resourceVersion"].get<std::string>();
      if (rv == last) return rv;
      last = rv;
      usleep(300000);
    }
    return last;
  }
  Value Get(const std::string& kind, const std::string& name) {
    return sim.KubectlJson({"get", kind, name});
  }
  bool Exists(const std::string& kind, const std::string& name) {
    return !sim.Kubectl({"get", kind, name, "--ignore-not-found", "-o", "name"}).empty();
  }
  // Waits until deployment `name` has `ready` ready replicas.
  void WaitReady(const std::string& kind, const std::string& name, int ready) {
    for (int i = 0; i < 100; ++i) {
      Value d = Get(kind, name);
      if (d["status"].value("readyReplicas", 0) == ready &&
          d["status"].value("replicas", 0) == ready) {
        return;
      }
      usleep(100000);
    }
    FAIL(kind << " " << name << " never got " << ready << " ready replicas");
  }

 private:
  Registry registry_;
};

}  // namespace runbook::testing
