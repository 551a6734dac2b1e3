// examples/kube-scale-and-switch.yaml run by the real `runbook` binary
// against the simulator: plan, rehearsal (nothing changes), run, rollback,
// and the refusal that rolls the run back when no v17 pod is ready.
#include <cstdio>

#include "engine/core/process.h"
#include "tests/bindings/kube_test_util.h"

#ifndef RUNBOOK_BINARY
#define RUNBOOK_BINARY "runbook"
#endif

namespace runbook::testing {
namespace {

constexpr char kExample[] = RUNBOOK_SOURCE_DIR "/examples/kube-scale-and-switch.yaml";

struct Cli {
  std::string state;
  std::string kubeconfig;

  ProcessResult Run(std::vector<std::string> args) const {
    ProcessSpec spec;
    spec.argv = {RUNBOOK_BINARY, "--no-color", "--state", state};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env["KUBECONFIG"] = kubeconfig;
    spec.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
    REQUIRE_OK(r);
    return *r;
  }
  std::string LastRun() const {
    ProcessResult r = Run({"status", "--json"});
    REQUIRE(r.exit_code == 0);
    Value runs = Value::parse(r.out);
    REQUIRE_FALSE(runs.empty());
    return runs[0]["run"];
  }
};

void SetUpChronicle(KubeCase& c, bool v17_ready) {
  c.sim.ApplyYaml(DeploymentYaml("chronicle-service", 2));
  c.sim.ApplyYaml(DeploymentYaml("chronicle-db", 1));
  c.sim.ApplyYaml(DeploymentYaml("chronicle-db-v17", 1, v17_ready));
  c.sim.ApplyYaml("apiVersion: v1\nkind: Service\nmetadata: {name: chronicle-db}\nspec:\n  "
                  "selector: {app: chronicle-db}\n  ports: [{port: 5432}]\n");
  c.WaitReady("deployment", "chronicle-service", 2);
}

std::string Selector(KubeCase& c) {
  return c.Get("service", "chronicle-db")["spec"]["selector"].dump();
}

}  // namespace

TEST_CASE("the kube example plans, rehearses, cuts over and rolls back", "[kube][e2e]") {
  KubeCase c;
  SetUpChronicle(c, true);
  Cli cli{c.sim.dir + "/state-example-" + std::to_string(getpid()) + ".db", c.sim.kubeconfig};
  std::remove(cli.state.c_str());
  std::vector<std::string> params{"-p", "context=sim", "-p", "namespace=default"};

  ProcessResult r = cli.Run({"validate", kExample});
  CHECK(r.exit_code == 0);
  r = cli.Run({"plan", kExample});
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("kubectl <cluster> scale deployment/chronicle-service "
                                    "--replicas=0"));

  std::string rv = c.SettledRv();
  std::vector<std::string> rehearse{"run", kExample, "--dry-run"};
  rehearse.insert(rehearse.end(), params.begin(), params.end());
  r = cli.Run(rehearse);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(c.SettledRv() == rv);

  std::vector<std::string> run{"run", kExample};
  run.insert(run.end(), params.begin(), params.end());
  r = cli.Run(run);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(Selector(c) == R"({"app":"chronicle-db-v17"})");
  CHECK(c.Get("deployment", "chronicle-service")["spec"]["replicas"] == 2);

  r = cli.Run({"rollback", cli.LastRun()});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(Selector(c) == R"({"app":"chronicle-db"})");
  CHECK(c.Get("deployment", "chronicle-service")["spec"]["replicas"] == 2);
}

TEST_CASE("the kube example refuses the cutover to unready pods and rolls back the scale-down",
          "[kube][e2e]") {
  KubeCase c;
  SetUpChronicle(c, false);
  Cli cli{c.sim.dir + "/state-refuse-" + std::to_string(getpid()) + ".db", c.sim.kubeconfig};
  std::remove(cli.state.c_str());
  ProcessResult r = cli.Run({"run", kExample, "-p", "context=sim", "-p", "namespace=default"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out + r.err, Catch::Contains("no ready pod matches app=chronicle-db-v17"));
  CHECK(Selector(c) == R"({"app":"chronicle-db"})");
  Value d = c.Get("deployment", "chronicle-service");
  CHECK(d["spec"]["replicas"] == 2);
}

}  // namespace runbook::testing
