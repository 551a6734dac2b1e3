// Every kube primitive that talks to the API server, against injected
// faults: one 500 is retried and the step succeeds; a permanent 500 fails
// the step cleanly, naming the resource and the context, with nothing
// changed. (kube.scale and kube.patch have their own, finer fault tests.)
#include "tests/bindings/kube_test_util.h"

namespace runbook::testing {
namespace {

struct FaultCase {
  const char* primitive;
  const char* path_regex;  // the requests of the resource the step works on
  Value args;
  // What must hold after a step that failed: nothing changed.
  std::function<void(KubeCase&)> unchanged;
};

std::vector<FaultCase> Cases() {
  Value job = Value{{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", {{"name", "j"}}},
                    {"spec", {{"backoffLimit", 0}, {"template", {{"spec", {
                        {"restartPolicy", "Never"},
                        {"containers", Value::array({Value{{"name", "c"}, {"image", "busybox"}}})}}}}}}}};
  Value cm = Value{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "cm"}}},
                   {"data", {{"a", "1"}}}};
  return {
      {"kube.get", "/deployments/web(\\?|$)",
       Value{{"conn", "sim"}, {"kind", "deployment"}, {"name", "web"}}, [](KubeCase&) {}},
      {"kube.rollout_status", "/deployments/web(\\?|$)",
       Value{{"conn", "sim"}, {"deployment", "web"}, {"timeout", "20s"}}, [](KubeCase&) {}},
      {"kube.switch_selector", "/services/web(\\?|$)",
       Value{{"conn", "sim"}, {"service", "web"}, {"selector", {{"app", "web"}}}},
       [](KubeCase& c) {
         CHECK(Plain(c.Get("service", "web")["spec"]["selector"]) ==
               nlohmann::json{{"app", "web"}, {"tier", "frontend"}});
       }},
      {"kube.apply", "/configmaps/cm(\\?|$)", Value{{"conn", "sim"}, {"manifest", cm}},
       [](KubeCase& c) { CHECK_FALSE(c.Exists("configmap", "cm")); }},
      {"kube.delete", "/services/web(\\?|$)",
       Value{{"conn", "sim"}, {"kind", "service"}, {"name", "web"}},
       [](KubeCase& c) { CHECK(c.Exists("service", "web")); }},
      {"kube.run_job", "/jobs/j(\\?|$)", Value{{"conn", "sim"}, {"manifest", job}, {"timeout", "30s"}},
       [](KubeCase& c) { CHECK_FALSE(c.Exists("job", "j")); }},
  };
}

TEST_CASE("every kube primitive retries one 500 and fails cleanly on a permanent one",
          "[kube][faults]") {
  for (const FaultCase& fc : Cases()) {
    SECTION(fc.primitive) {
      KubeCase c;
      c.sim.ApplyYaml(kWebYaml);
      c.WaitReady("deployment", "web", 2);
      c.sim.AddFault(Value{{"match", {{"path_regex", fc.path_regex}}}, {"status", 500},
                           {"count", 1}});
      Result<Value> r = c.Apply(fc.primitive, fc.args);
      INFO(fc.primitive << ": " << (r.ok() ? r->dump() : r.status().message()));
      CHECK(r.ok());
      CHECK(c.sim.Faults()[0]["hits"] == 1);

      c.sim.Reset();
      c.sim.ApplyYaml(kWebYaml);
      c.WaitReady("deployment", "web", 2);
      c.sim.AddFault(Value{{"match", {{"path_regex", fc.path_regex}}}, {"status", 500},
                           {"count", 0}});
      c.ctx.undo_records.clear();
      r = c.Apply(fc.primitive, fc.args);
      REQUIRE_FALSE(r.ok());
      INFO(r.status().message());
      CHECK(r.status().code() == Status::Code::kUnavailable);
      CHECK_THAT(r.status().message(), Catch::StartsWith(std::string(fc.primitive) + ": ") &&
                                           Catch::Contains("(context 'sim')") &&
                                           Catch::Contains("injected fault"));
      c.sim.Request("DELETE", "/_sim/faults");
      fc.unchanged(c);
    }
  }
}

}  // namespace
}  // namespace runbook::testing
