// kube.apply (undo deletes what it created, re-applies what it changed) and
// kube.delete (saved first unless save: false) against the simulator.
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/bindings/kube_test_util.h"

namespace runbook::testing {
namespace {

// The backup Secrets (kube_secrets.h) in the namespace.
std::string Backups(KubeCase& c) {
  std::string out;
  const Value list = c.sim.KubectlJson({"-n", "default", "get", "secrets"});
  for (const auto& s : list["items"]) {
    std::string name = s["metadata"]["name"].get<std::string>();
    if (name.rfind("runbook-backup-", 0) == 0) out += name + " ";
  }
  return out;
}

Value ConfigMap(const std::string& name, const std::string& a) {
  return Value{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}},
               {"data", {{"a", a}}}};
}

}  // namespace

TEST_CASE("kube.apply records what existed, and undo deletes what it created and restores "
          "what it changed", "[kube][kube.apply]") {
  KubeCase c;
  Value first{{"conn", "sim"},
              {"manifest", Value::array({ConfigMap("cfg", "1"), ConfigMap("keep", "k")})}};
  std::string rv = c.SettledRv();
  Result<Value> r = c.Rehearse("kube.apply", first);
  REQUIRE_OK(r);
  CHECK((*r)["created"] == 2);
  CHECK(c.SettledRv() == rv);
  CHECK_FALSE(c.Exists("configmap", "cfg"));
  CHECK_THAT(c.sim.Log(), Catch::Contains("dryRun=All"));

  r = c.Apply("kube.apply", first);
  REQUIRE_OK(r);
  CHECK((*r)["created"] == 2);
  Value first_undo = c.ctx.LastUndo();
  REQUIRE(first_undo["objects"].size() == 2);
  CHECK(first_undo["objects"][0]["previous"].is_null());
  CHECK(first_undo["objects"][0]["namespace"] == "default");

  // Second step, YAML text: changes cfg, leaves keep alone, creates a service.
  Value second{{"conn", "sim"}, {"manifest", R"(apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: "2"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keep}
data: {a: k}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: db}
  ports: [{port: 5432}]
)"}};
  r = c.Apply("kube.apply", second);
  REQUIRE_OK(r);
  CHECK((*r)["objects"][0]["action"] == "configured");
  CHECK((*r)["objects"][1]["action"] == "unchanged");
  CHECK((*r)["objects"][2]["action"] == "created");
  Value undo = c.ctx.LastUndo();
  CHECK(undo["objects"][0]["previous"]["data"]["a"] == "1");
  CHECK_FALSE(undo["objects"][0]["previous"]["metadata"].contains("resourceVersion"));
  CHECK(undo["objects"][2]["previous"].is_null());
  CHECK(c.Get("configmap", "cfg")["data"]["a"] == "2");

  REQUIRE_OK(c.Undo("kube.apply", second));
  CHECK(c.Get("configmap", "cfg")["data"]["a"] == "1");
  CHECK(c.Exists("configmap", "keep"));
  CHECK_FALSE(c.Exists("service", "db"));
  REQUIRE_OK(c.Undo("kube.apply", second));  // twice is fine

  REQUIRE_OK(c.P("kube.apply").Undo(c.ctx, first, first_undo));
  CHECK_FALSE(c.Exists("configmap", "cfg"));
  CHECK_FALSE(c.Exists("configmap", "keep"));
}

TEST_CASE("kube.apply's undo refuses to delete a PersistentVolumeClaim it created once it is "
          "bound (its volume holds what pods wrote), and deletes other objects as before",
          "[kube][kube.apply][undo_guard]") {
  KubeCase c;
  Value claim{{"apiVersion", "v1"},
              {"kind", "PersistentVolumeClaim"},
              {"metadata", {{"name", "green-data"}}},
              {"spec", {{"accessModes", {"ReadWriteOnce"}},
                        {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}};
  Value args{{"conn", "sim"}, {"manifest", Value::array({ConfigMap("cfg", "1"), claim})}};
  REQUIRE_OK(c.Apply("kube.apply", args));
  const Value undo = c.ctx.LastUndo();
  // The simulator's controller binds the claim.
  auto phase = [&] {
    const Value pvc = c.Get("persistentvolumeclaim", "green-data");
    return pvc.contains("status") && pvc["status"].is_object()
               ? pvc["status"].value("phase", std::string())
               : std::string();
  };
  for (int i = 0; i < 100 && phase() != "Bound"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(phase() == "Bound");
  Status guard = c.P("kube.apply").CheckUndo(c.ctx, args, undo);
  CHECK_FALSE(guard.ok());
  CHECK_THAT(guard.message(), Catch::Contains("persistentvolumeclaim 'green-data'"));
  CHECK_THAT(guard.message(), Catch::Contains("could destroy that data"));
  CHECK(c.Exists("persistentvolumeclaim", "green-data"));
  // A manifest without a claim has nothing to check.
  Value only_config{{"conn", "sim"}, {"manifest", Value::array({ConfigMap("other", "1")})}};
  REQUIRE_OK(c.Apply("kube.apply", only_config));
  CHECK(c.P("kube.apply").CheckUndo(c.ctx, only_config, c.ctx.LastUndo()).ok());
  // Gone already (deleted by hand): nothing to lose.
  c.sim.Kubectl({"-n", "default", "delete", "persistentvolumeclaim", "green-data"});
  CHECK(c.P("kube.apply").CheckUndo(c.ctx, args, undo).ok());
}

TEST_CASE("kube.apply reads a file or a directory of manifests", "[kube][kube.apply]") {
  KubeCase c;
  namespace fs = std::filesystem;
  std::string dir = c.sim.dir + "/manifests-" + std::to_string(getpid());
  fs::create_directories(dir);
  std::ofstream(dir + "/1-deploy.yaml") << DeploymentYaml("chronicle-db-v17", 1);
  std::ofstream(dir + "/2-cm.yml") << "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: "
                                      "pg-conf}\ndata: {max_connections: \"100\"}\n";
  std::ofstream(dir + "/README.md") << "not a manifest";
  Value args{{"conn", "sim"}, {"file", dir}};
  CHECK_THAT(c.P("kube.apply").Plan(args).text,
             Catch::Contains("apply -f " + dir) &&
                 Catch::Contains("Deployment/chronicle-db-v17 ConfigMap/pg-conf"));
  Result<Value> r = c.Apply("kube.apply", args);
  REQUIRE_OK(r);
  CHECK((*r)["created"] == 2);
  c.WaitReady("deployment", "chronicle-db-v17", 1);
  r = c.Apply("kube.apply", Value{{"conn", "sim"}, {"file", dir + "/2-cm.yml"}});
  REQUIRE_OK(r);
  CHECK((*r)["unchanged"] == 1);
  CHECK(c.ctx.changed == false);
  r = c.Apply("kube.apply", Value{{"conn", "sim"}, {"file", dir + "/missing.yaml"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("cannot read manifest file"));
  r = c.Apply("kube.apply", Value{{"conn", "sim"},
                                  {"manifest", Value{{"kind", "ConfigMap"}, {"metadata", {{"generateName", "x-"}}}}}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("needs kind and metadata.name"));
  fs::remove_all(dir);
}

TEST_CASE("kube.apply of an invalid object fails with the server's words and keeps its undo",
          "[kube][kube.apply]") {
  KubeCase c;
  Value bad{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", {{"name", "bad"}}},
            {"spec", {{"template", {{"spec", {{"containers", Value::array()}}}}}}}};
  Result<Value> r = c.Apply("kube.apply", Value{{"conn", "sim"}, {"manifest", bad}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::StartsWith("kube.apply: manifest (inline) in namespace "
                                                     "'default' (context 'sim'): ") &&
                                       Catch::Contains("invalid"));
  r = c.Rehearse("kube.apply", Value{{"conn", "sim"}, {"manifest", bad}});
  REQUIRE_FALSE(r.ok());  // the rehearsal catches it too
}

TEST_CASE("a rehearsal follows kube.delete: gone for later steps, created again by kube.apply",
          "[kube][kube.delete][rehearsal]") {
  KubeCase c;
  c.sim.ApplyYaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: doomed}\ndata: {x: \"1\"}\n");
  const Value get{{"conn", "sim"}, {"kind", "configmap"}, {"name", "doomed"}};
  REQUIRE_OK(c.Rehearse("kube.get", get));
  REQUIRE_OK(
      c.Rehearse("kube.delete", {{"conn", "sim"}, {"kind", "configmap"}, {"name", "doomed"}}));
  CHECK(c.Exists("configmap", "doomed"));
  // A real run would not find it: neither does the rehearsal.
  Result<Value> r = c.Rehearse("kube.get", get);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("would not exist by now: step 'step-test' deletes it earlier"));
  // Waiting for it to go: it would be gone; for anything else: it would not be there.
  r = c.Rehearse(
      "kube.wait",
      {{"conn", "sim"}, {"resource", "configmap/doomed"}, {"for", "delete"}, {"timeout", "20s"}});
  REQUIRE_OK(r);
  CHECK_THAT((*r)["met"][0].get<std::string>(), Catch::Contains("deleted"));
  r = c.Rehearse("kube.wait", {{"conn", "sim"},
                               {"resource", "configmap/doomed"},
                               {"for", "jsonpath={.data.x}=1"},
                               {"timeout", "20s"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("would not exist by now"));
  Value missing_ok = get;
  missing_ok["missing_ok"] = true;
  r = c.Rehearse("kube.get", missing_ok);
  REQUIRE_OK(r);
  CHECK(r->is_null());
  // Applied again: created (not "configured"), and what is there now is not it.
  r = c.Rehearse("kube.apply",
                 {{"conn", "sim"}, {"manifest", Value::array({ConfigMap("doomed", "2")})}});
  REQUIRE_OK(r);
  CHECK((*r)["created"] == 1);
  r = c.Rehearse("kube.get", get);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kNotYet);
  CHECK_THAT(r.status().message(), Catch::Contains("would be a new one by now"));
  CHECK(c.Get("configmap", "doomed")["data"]["x"] == "1");
}

TEST_CASE("a rehearsal of kube.apply does not dry-run against the live one what it re-creates",
          "[kube][kube.delete][rehearsal]") {
  KubeCase c;
  // An immutable ConfigMap is changed by deleting it and creating it anew.
  c.sim.ApplyYaml(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\n"
      "data: {a: \"1\"}\n");
  Value frozen = ConfigMap("frozen", "2");
  frozen["immutable"] = true;
  const Value apply{{"conn", "sim"}, {"manifest", Value::array({frozen, ConfigMap("other", "o")})}};
  // Without the delete, the server refuses it, in a rehearsal as in a run.
  Result<Value> r = c.Rehearse("kube.apply", apply);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("field is immutable"));
  REQUIRE_OK(
      c.Rehearse("kube.delete", {{"conn", "sim"}, {"kind", "configmap"}, {"name", "frozen"}}));
  // The others still go to the server's dry run: an invalid one fails.
  Value bad = ConfigMap("Bad_Name", "x");
  r = c.Rehearse("kube.apply", {{"conn", "sim"}, {"manifest", Value::array({frozen, bad})}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("Bad_Name"));
  CHECK_THAT(r.status().message(), !Catch::Contains("immutable"));
  r = c.Rehearse("kube.apply", apply);
  REQUIRE_OK(r);
  CHECK((*r)["created"] == 2);
  CHECK((*r)["objects"][0]["action"] == "created");
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("ConfigMap/frozen: step 'step-test' deletes it "
                                              "earlier in this run") &&
                                  Catch::Contains("not probed"));
  CHECK(c.Get("configmap", "frozen")["data"]["a"] == "1");
  CHECK_FALSE(c.Exists("configmap", "other"));
  // A real run does what the rehearsal said.
  REQUIRE_OK(c.Apply("kube.delete", {{"conn", "sim"}, {"kind", "configmap"}, {"name", "frozen"}}));
  r = c.Apply("kube.apply", apply);
  REQUIRE_OK(r);
  CHECK((*r)["created"] == 2);
  CHECK(c.Get("configmap", "frozen")["data"]["a"] == "2");
}

TEST_CASE("kube.delete saves the object, and undo re-creates it", "[kube][kube.delete]") {
  KubeCase c;
  c.sim.ApplyYaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old-conf, labels: {a: b}}\n"
                  "data: {x: \"1\"}\n");
  Value args{{"conn", "sim"}, {"kind", "configmap"}, {"name", "old-conf"}};
  CHECK_THAT(c.P("kube.delete").Plan(args).text, Catch::Contains("saves the object first"));
  std::string rv = c.SettledRv();
  REQUIRE_OK(c.Rehearse("kube.delete", args));
  CHECK(c.SettledRv() == rv);
  CHECK(c.Exists("configmap", "old-conf"));

  Result<Value> r = c.Apply("kube.delete", args);
  REQUIRE_OK(r);
  CHECK((*r)["deleted"] == true);
  CHECK_FALSE(c.Exists("configmap", "old-conf"));
  CHECK(c.ctx.LastUndo()["object"]["data"]["x"] == "1");
  CHECK(c.Check("kube.delete", args) == CheckOutcome::kDone);
  // A retry after the delete went through: done, not "not found".
  c.ctx.previous_undo = c.ctx.LastUndo();
  r = c.Apply("kube.delete", args);
  REQUIRE_OK(r);
  c.ctx.previous_undo = nullptr;

  REQUIRE_OK(c.Undo("kube.delete", args));
  Value cm = c.Get("configmap", "old-conf");
  CHECK(cm["data"]["x"] == "1");
  CHECK(cm["metadata"]["labels"]["a"] == "b");
  REQUIRE_OK(c.Undo("kube.delete", args));  // already there: fine
  CHECK(c.Check("kube.delete", args) == CheckOutcome::kNotDone);
}

TEST_CASE("kube.delete without save is irreversible, and a missing object is named",
          "[kube][kube.delete]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  Value args{{"conn", "sim"}, {"kind", "service"}, {"name", "web"}, {"save", false}};
  PlanEffect p = c.P("kube.delete").Plan(args);
  CHECK_FALSE(p.reversible());
  CHECK(p.undo == "irreversible: deleted without saving it (save: false)");
  REQUIRE_OK(c.Apply("kube.delete", args));
  CHECK(c.ctx.undo_records.empty());
  CHECK_FALSE(c.Exists("service", "web"));
  Result<Value> r = c.Apply("kube.delete", args);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "kube.delete: service 'web' in namespace 'default' (context 'sim'): not found");
  args["missing_ok"] = true;
  r = c.Apply("kube.delete", args);
  REQUIRE_OK(r);
  CHECK((*r)["deleted"] == false);
  CHECK(c.ctx.changed == false);
}

TEST_CASE("kube.delete re-creates a service without its old cluster IP", "[kube][kube.delete]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  Value args{{"conn", "sim"}, {"kind", "service"}, {"name", "web"}};
  REQUIRE_OK(c.Apply("kube.delete", args));
  CHECK_FALSE(c.ctx.LastUndo()["object"]["spec"].contains("clusterIP"));
  REQUIRE_OK(c.Undo("kube.delete", args));
  CHECK(c.Get("service", "web")["spec"]["selector"]["app"] == "web");
}

TEST_CASE("a Secret's data reaches no undo record, result, log or file; undo restores it from "
          "a backup kept in the cluster",
          "[kube][kube.apply][kube.delete][secrets]") {
  KubeCase c;
  // Manifests go to kubectl on stdin: nothing is written under TMPDIR.
  char tmpl[] = "/tmp/kube-tmpdir-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  setenv("TMPDIR", tmpl, 1);
  auto secret = [](const std::string& pw) {
    return Value{{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", "db-creds"}}},
                 {"stringData", {{"password", pw}}}};
  };
  REQUIRE_OK(c.Apply("kube.apply", Value{{"conn", "sim"}, {"manifest", secret("FirstPw111aaa")}}));
  Result<Value> r =
      c.Apply("kube.apply", Value{{"conn", "sim"}, {"manifest", secret("SecondPw222bbb")}});
  REQUIRE_OK(r);
  const Value undo = c.ctx.LastUndo();
  // What would be stored (the engine stores records and results through the redactor).
  const std::string stored =
      c.ctx.redactor().Redact(undo.dump() + r->dump() + c.ctx.AllLogs());
  for (const char* pw : {"FirstPw111aaa", "SecondPw222bbb", "Rmlyc3RQdzExMWFhYQ",
                         "U2Vjb25kUHcyMjJiYmI"}) {
    INFO(pw);
    CHECK(stored.find(pw) == std::string::npos);
    CHECK(undo.dump().find(pw) == std::string::npos);  // not even before redaction
  }
  CHECK(undo["objects"][0].contains("previous_secret"));
  CHECK_FALSE(Backups(c).empty());  // kept in the cluster until the undo or a decommission
  CHECK(std::filesystem::is_empty(tmpl));
  // kube.get of it: the values are registered, so its stored result hides them.
  Result<Value> got = c.Apply("kube.get", Value{{"conn", "sim"}, {"kind", "secret"},
                                                {"name", "db-creds"}});
  REQUIRE_OK(got);
  CHECK(c.ctx.redactor().Redact(got->dump()).find("U2Vjb25kUHcyMjJiYmI") == std::string::npos);

  // Undo: the first version is back, from the backup, and the backup is gone.
  REQUIRE_OK(c.Undo("kube.apply", Value{{"conn", "sim"}, {"manifest", secret("SecondPw222bbb")}}));
  Value live = c.sim.KubectlJson({"-n", "default", "get", "secret", "db-creds"});
  CHECK(live["data"]["password"] == "Rmlyc3RQdzExMWFhYQ==");
  CHECK(Backups(c).empty());

  // kube.delete of a Secret: the same, through a backup.
  REQUIRE_OK(c.Apply("kube.delete", Value{{"conn", "sim"}, {"kind", "secret"},
                                          {"name", "db-creds"}}));
  CHECK(c.ctx.LastUndo().dump().find("Rmlyc3RQdzExMWFhYQ") == std::string::npos);
  CHECK_FALSE(c.Exists("secret", "db-creds"));
  REQUIRE_OK(c.Undo("kube.delete", Value{{"conn", "sim"}, {"kind", "secret"},
                                         {"name", "db-creds"}}));
  CHECK(c.sim.KubectlJson({"-n", "default", "get", "secret", "db-creds"})["data"]["password"] ==
        "Rmlyc3RQdzExMWFhYQ==");
  CHECK(Backups(c).empty());
  unsetenv("TMPDIR");
  std::filesystem::remove_all(tmpl);
}

TEST_CASE("a kube name, kind or object from a runbook can never become a kubectl option",
          "[kube][argv]") {
  KubeCase c;
  const std::string rv = c.SettledRv();
  struct Case {
    const char* primitive;
    Value args;
  };
  const Case cases[] = {
      {"kube.delete", Value{{"conn", "sim"}, {"kind", "deployment"}, {"name", "--selector=app"}}},
      {"kube.delete", Value{{"conn", "sim"}, {"kind", "--all"}, {"name", "x"}}},
      {"kube.get", Value{{"conn", "sim"}, {"kind", "pods"}, {"name", "--server=http://evil"}}},
      {"kube.scale", Value{{"conn", "sim"}, {"deployment", "-x"}, {"replicas", 0}}},
      {"kube.patch", Value{{"conn", "sim"}, {"kind", "service"}, {"name", "-ojson"},
                           {"patch", {{"a", 1}}}}},
      {"kube.rollout_status", Value{{"conn", "sim"}, {"deployment", "--watch=false"}}},
      {"kube.exec", Value{{"conn", "sim"}, {"pod", "--as=admin"}, {"argv", {"true"}}}},
      {"kube.wait", Value{{"conn", "sim"}, {"resource", "job/--all"}, {"for", "condition=x"}}},
      {"kube.switch_selector", Value{{"conn", "sim"}, {"service", "-A"},
                                     {"selector", {{"app", "x"}}}}},
      {"kube.get", Value{{"conn", "sim"}, {"kind", "pods"}, {"name", "x"},
                         {"namespace", "--all-namespaces"}}},
  };
  for (const Case& k : cases) {
    INFO(k.primitive << " " << k.args.dump());
    std::vector<ArgError> errors = CheckArgs(c.P(k.primitive).schema(), k.args);
    REQUIRE_FALSE(errors.empty());
    CHECK_THAT(errors[0].message, Catch::Contains("is not a Kubernetes"));
  }
  // Called anyway (as from Lua after expansion): refused by the engine's own check.
  CHECK(ArgFormError(ArgForm::kKubeName, "--selector=app=x") != "");
  CHECK(ArgFormError(ArgForm::kKubeName, "chronicle-db-v17") == "");
  CHECK(ArgFormError(ArgForm::kKubeObject, "deployment/chronicle-db") == "");
  CHECK(ArgFormError(ArgForm::kKubeObject, "deployment/-x") != "");
  CHECK(ArgFormError(ArgForm::kKubeKind, "deployments.apps") == "");
  CHECK(c.SettledRv() == rv);  // nothing happened
}

}  // namespace runbook::testing
