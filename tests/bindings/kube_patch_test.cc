// kube.patch (merge, json, strategic; undo restores exactly the touched
// fields) and kube.switch_selector (seed 004's cutover) against the simulator.
#include "tests/bindings/kube_test_util.h"

namespace runbook::testing {
namespace {

constexpr char kConfigMap[] = R"(apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, labels: {team: db}}
data: {a: "1", b: "2"}
)";

Value PatchArgs(const std::string& kind, const std::string& name, Value patch,
                const std::string& type = "merge") {
  return Value{{"conn", "sim"}, {"kind", kind}, {"name", name}, {"patch", std::move(patch)},
               {"type", type}};
}

std::string Image(KubeCase& c) {
  return c.Get("deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"];
}

}  // namespace

TEST_CASE("kube.patch (merge) records the touched fields and undo restores exactly them",
          "[kube][kube.patch]") {
  KubeCase c;
  c.sim.ApplyYaml(kConfigMap);
  Value args = PatchArgs("configmap", "cfg",
                         Value{{"data", {{"a", "10"}, {"c", "3"}}},
                               {"metadata", {{"labels", {{"team", nullptr}, {"tier", "x"}}}}}});
  std::string rv = c.SettledRv();
  Result<Value> r = c.Rehearse("kube.patch", args);
  REQUIRE_OK(r);
  CHECK(c.SettledRv() == rv);
  CHECK(c.ctx.undo_records.empty());

  r = c.Apply("kube.patch", args);
  REQUIRE_OK(r);
  CHECK(c.ctx.changed == true);
  Value restore{{"data", {{"a", "1"}, {"c", nullptr}}},
                {"metadata", {{"labels", {{"team", "db"}, {"tier", nullptr}}}}}};
  CHECK(Plain(c.ctx.LastUndo()["restore"]) == Plain(restore));
  Value cm = c.Get("configmap", "cfg");
  CHECK(Plain(cm["data"]) == Plain(Value{{"a", "10"}, {"b", "2"}, {"c", "3"}}));
  CHECK(c.Check("kube.patch", args) == CheckOutcome::kDone);
  // No undo record (killed before it kept one) while the patch is in place
  // (applied by hand meanwhile): the check says done (it once threw).
  CHECK(c.Check("kube.patch", args, Value()) == CheckOutcome::kDone);

  // A second attempt keeps what the first one saw.
  c.ctx.previous_undo = c.ctx.LastUndo();
  REQUIRE_OK(c.Apply("kube.patch", args));
  CHECK(Plain(c.ctx.LastUndo()["restore"]) == Plain(restore));

  REQUIRE_OK(c.Undo("kube.patch", args));
  cm = c.Get("configmap", "cfg");
  CHECK(Plain(cm["data"]) == Plain(Value{{"a", "1"}, {"b", "2"}}));
  CHECK(cm["metadata"]["labels"] == Value{{"team", "db"}});
  CHECK(c.Check("kube.patch", args) == CheckOutcome::kNotDone);
}

TEST_CASE("kube.patch (json) records the lists its paths go through", "[kube][kube.patch]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  Value ops = Value::array({Value{{"op", "replace"},
                                  {"path", "/spec/template/spec/containers/0/image"},
                                  {"value", "nginx:1.28"}},
                            Value{{"op", "add"}, {"path", "/metadata/annotations/owner"},
                                  {"value", "sre"}}});
  Value args = PatchArgs("deployment", "web", ops, "json");
  CHECK_FALSE(c.P("kube.patch").idempotent(args));
  Result<Value> r = c.Apply("kube.patch", args);
  REQUIRE_OK(r);
  CHECK(Image(c) == "nginx:1.28");
  Value restore = c.ctx.LastUndo()["restore"];
  CHECK(restore["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27");
  CHECK(restore["metadata"]["annotations"]["owner"].is_null());
  CHECK(c.Check("kube.patch", args) == CheckOutcome::kCannotTell);
  REQUIRE_OK(c.Undo("kube.patch", args));
  CHECK(Image(c) == "nginx:1.27");
  CHECK_FALSE(c.Get("deployment", "web")["metadata"]["annotations"].contains("owner"));
}

TEST_CASE("kube.patch (strategic) and a patch that changes nothing", "[kube][kube.patch]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  Value patch{{"spec", {{"template", {{"spec", {{"containers", Value::array({Value{
                                                    {"name", "web"}, {"image", "nginx:1.28"}}})}}}}}}}};
  Value args = PatchArgs("deployment", "web", patch, "strategic");
  std::string rv = c.SettledRv();
  REQUIRE_OK(c.Rehearse("kube.patch", args));
  CHECK(c.SettledRv() == rv);
  REQUIRE_OK(c.Apply("kube.patch", args));
  CHECK(Image(c) == "nginx:1.28");
  CHECK(c.Get("deployment", "web")["spec"]["template"]["spec"]["containers"][0]["ports"][0]
            ["containerPort"] == 8080);  // merged by name, not replaced
  REQUIRE_OK(c.Undo("kube.patch", args));
  CHECK(Image(c) == "nginx:1.27");

  Value same = PatchArgs("deployment", "web", Value{{"metadata", {{"labels", {{"app", "web"}}}}}});
  Result<Value> r = c.Apply("kube.patch", same);
  REQUIRE_OK(r);
  CHECK(c.ctx.changed == false);  // rollback skips it
}

TEST_CASE("kube.patch retries a 409 and a dropped connection", "[kube][kube.patch][faults]") {
  KubeCase c;
  c.sim.ApplyYaml(kConfigMap);
  c.sim.AddFault(Value{{"match", {{"method", "PATCH"}, {"path_regex", "/configmaps/cfg"}}},
                       {"status", 409}, {"count", 2}});
  Value args = PatchArgs("configmap", "cfg", Value{{"data", {{"a", "9"}}}});
  Result<Value> r = c.Apply("kube.patch", args);
  REQUIRE_OK(r);
  CHECK(c.sim.Faults()[0]["hits"] == 2);
  CHECK(c.Get("configmap", "cfg")["data"]["a"] == "9");
  c.sim.Request("DELETE", "/_sim/faults");
  c.sim.AddFault(Value{{"match", {{"method", "PATCH"}, {"path_regex", "/configmaps/cfg"}}},
                       {"drop", true}, {"count", 1}});
  args = PatchArgs("configmap", "cfg", Value{{"data", {{"a", "8"}}}});
  REQUIRE_OK(c.Apply("kube.patch", args));
  CHECK(c.Get("configmap", "cfg")["data"]["a"] == "8");
  // A json patch is not sent again after a dropped connection: it may have applied.
  c.sim.AddFault(Value{{"match", {{"method", "PATCH"}, {"path_regex", "/configmaps/cfg"}}},
                       {"drop", true}, {"count", 1}});
  r = c.Apply("kube.patch", PatchArgs("configmap", "cfg",
                                      Value::array({Value{{"op", "add"}, {"path", "/data/z"},
                                                          {"value", "1"}}}),
                                      "json"));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection to the API server dropped"));
}

TEST_CASE("kube.switch_selector replaces the selector, reports old -> new, and undo restores it",
          "[kube][kube.switch_selector]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.sim.ApplyYaml(DeploymentYaml("web-v2", 1));
  c.WaitReady("deployment", "web-v2", 1);
  Value args{{"conn", "sim"}, {"service", "web"}, {"selector", {{"app", "web-v2"}}}};
  std::string rv = c.SettledRv();
  Result<Value> r = c.Rehearse("kube.switch_selector", args);
  REQUIRE_OK(r);
  CHECK(c.SettledRv() == rv);
  CHECK_THAT(c.sim.Log(), Catch::Contains("/services/web?dryRun=All"));

  r = c.Apply("kube.switch_selector", args);
  REQUIRE_OK(r);
  CHECK(Plain((*r)["old"]) == Plain(Value{{"app", "web"}, {"tier", "frontend"}}));
  CHECK((*r)["new"] == Value{{"app", "web-v2"}});
  CHECK((*r)["change"] == "app=web,tier=frontend -> app=web-v2");
  CHECK((*r)["ready_pods"].size() == 1);
  CHECK(Plain(c.ctx.LastUndo()["old_selector"]) ==
        Plain(Value{{"app", "web"}, {"tier", "frontend"}}));
  // Replaced, not merged: tier is gone.
  CHECK(c.Get("service", "web")["spec"]["selector"] == Value{{"app", "web-v2"}});
  CHECK(c.Check("kube.switch_selector", args) == CheckOutcome::kDone);

  REQUIRE_OK(c.Undo("kube.switch_selector", args));
  CHECK(Plain(c.Get("service", "web")["spec"]["selector"]) ==
        Plain(Value{{"app", "web"}, {"tier", "frontend"}}));
  CHECK(c.Check("kube.switch_selector", args) == CheckOutcome::kNotDone);
  REQUIRE_OK(c.Undo("kube.switch_selector", args));  // twice is fine
}

TEST_CASE("kube.switch_selector refuses when no ready pod matches, and changes nothing",
          "[kube][kube.switch_selector]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.sim.ApplyYaml(DeploymentYaml("web-v2", 2, /*ready=*/false));
  std::string rv = c.SettledRv();
  Value args{{"conn", "sim"}, {"service", "web"}, {"selector", {{"app", "web-v2"}}}};
  Result<Value> r = c.Apply("kube.switch_selector", args);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "kube.switch_selector: service 'web' in namespace 'default' (context 'sim'): refusing to "
        "switch the selector app=web,tier=frontend -> app=web-v2: no ready pod matches app=web-v2 "
        "(2 match, none ready); nothing changed");
  CHECK(c.SettledRv() == rv);
  CHECK(c.ctx.undo_records.empty());
  // A rehearsal checks the pods for real and refuses the same way.
  r = c.Rehearse("kube.switch_selector", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("no ready pod matches"));
  r = c.Apply("kube.switch_selector",
              Value{{"conn", "sim"}, {"service", "web"}, {"selector", {{"app", "typo"}}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("(0 match, none ready)"));
  r = c.Apply("kube.switch_selector",
              Value{{"conn", "sim"}, {"service", "nope"}, {"selector", {{"app", "web"}}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "kube.switch_selector: service 'nope' in namespace 'default' "
                                "(context 'sim'): not found");
  CHECK(c.SettledRv() == rv);
}

}  // namespace runbook::testing
