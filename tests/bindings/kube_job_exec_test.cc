// kube.run_job and kube.exec against the simulator (its toy job controller;
// exec runs the command as a local process).
#include "tests/bindings/kube_test_util.h"

namespace runbook::testing {
namespace {

// A Job named `name`; `annotations` go on its pod template.
Value Job(const std::string& name, Value annotations = Value::object()) {
  return Value{
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"backoffLimit", 0},
        {"template",
         {{"metadata", {{"annotations", annotations}}},
          {"spec",
           {{"restartPolicy", "Never"},
            {"containers", Value::array({Value{{"name", "dump"}, {"image", "postgres:13"},
                                               {"command", {"pg_dump", "-Fc"}}}})}}}}}}}};
}

Value JobArgs(Value job, const std::string& timeout = "30s") {
  return Value{{"conn", "sim"}, {"manifest", std::move(job)}, {"timeout", timeout}};
}

}  // namespace

TEST_CASE("kube.run_job runs a job to completion and returns its logs; undo deletes it",
          "[kube][kube.run_job]") {
  KubeCase c;
  Value args = JobArgs(Job("backup-job", Value{{"sim.runbook/logs", "dumped 971 rows\ndone\n"}}));
  std::string rv = c.SettledRv();
  Result<Value> r = c.Rehearse("kube.run_job", args);
  REQUIRE_OK(r);
  CHECK((*r)["job"] == "backup-job");
  CHECK(IsUnknown((*r)["status"]));
  CHECK(c.SettledRv() == rv);
  CHECK_FALSE(c.Exists("job", "backup-job"));

  r = c.Apply("kube.run_job", args);
  REQUIRE_OK(r);
  CHECK((*r)["status"] == "succeeded");
  CHECK((*r)["succeeded"] == 1);
  CHECK_THAT((*r)["logs"].get<std::string>(), Catch::Contains("dumped 971 rows"));
  CHECK(c.ctx.LastUndo()["name"] == "backup-job");
  Value job = c.Get("job", "backup-job");
  CHECK(job["metadata"]["annotations"]["runbook/run-id"] == "run-test");

  // Run again by the same step (a resume): waits for the job it made.
  r = c.Apply("kube.run_job", args);
  REQUIRE_OK(r);
  CHECK(c.Get("job", "backup-job")["metadata"]["uid"] == job["metadata"]["uid"]);

  REQUIRE_OK(c.Undo("kube.run_job", args));
  CHECK_FALSE(c.Exists("job", "backup-job"));
  REQUIRE_OK(c.Undo("kube.run_job", args));
}

TEST_CASE("kube.run_job fails the step with the logs of a failed job", "[kube][kube.run_job]") {
  KubeCase c;
  Value args = JobArgs(Job("restore-job", Value{{"sim.runbook/job-result", "fail"},
                                                {"sim.runbook/logs", "pg_restore: error: "
                                                                     "could not connect\n"}}));
  Result<Value> r = c.Apply("kube.run_job", args);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.run_job: job 'restore-job' in namespace 'default' (context "
                               "'sim'): failed (BackoffLimitExceeded") &&
                 Catch::Contains("pg_restore: error: could not connect"));
  CHECK(c.ctx.LastUndo()["name"] == "restore-job");  // rollback deletes it
}

TEST_CASE("kube.run_job stops waiting at its timeout, and refuses a job it did not create",
          "[kube][kube.run_job]") {
  KubeCase c;
  Value slow = JobArgs(Job("slow", Value{{"sim.runbook/job-duration-ms", "20000"}}), "2s");
  auto start = std::chrono::steady_clock::now();
  Result<Value> r = c.Apply("kube.run_job", slow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kTimeout);
  CHECK_THAT(r.status().message(), Catch::Contains("still running when the wait ended (2s)"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(8));
  // Another run's step finds it there.
  c.ctx.run_id_ = "run-other";
  r = c.Apply("kube.run_job", slow);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("already exists and was not created by this "
                                                   "step"));
  r = c.Apply("kube.run_job", Value{{"conn", "sim"}, {"manifest", "kind: ConfigMap\nmetadata: "
                                                                  "{name: x}\n"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("exactly one object of kind Job"));
}

TEST_CASE("kube.exec runs argv in a pod and returns stdout, stderr and the exit code",
          "[kube][kube.exec]") {
  KubeCase c;
  c.sim.ApplyYaml(kWebYaml);
  c.WaitReady("deployment", "web", 2);
  Value args{{"conn", "sim"}, {"deployment", "web"}, {"argv", {"echo", "hello from the pod"}}};
  CHECK(c.P("kube.exec").Plan(args).text ==
        "kubectl <sim> exec deployment/web -- echo 'hello from the pod'");
  Result<Value> r = c.Apply("kube.exec", args);
  REQUIRE_OK(r);
  CHECK((*r)["stdout"] == "hello from the pod\n");
  CHECK((*r)["exit_code"] == 0);

  std::string pod = c.sim.KubectlJson({"get", "pods", "-l", "app=web"})["items"][0]["metadata"]
                        ["name"];
  Value failing{{"conn", "sim"}, {"pod", pod}, {"container", "web"},
                {"argv", {"sh", "-c", "echo oops >&2; exit 3"}}};
  r = c.Apply("kube.exec", failing);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.exec: pod '" + pod + "' in namespace 'default' (context "
                               "'sim'): 'sh' exited with 3") &&
                 Catch::Contains("oops"));
  failing["ok_codes"] = {0, 3};
  r = c.Apply("kube.exec", failing);
  REQUIRE_OK(r);
  CHECK((*r)["exit_code"] == 3);
  CHECK_THAT((*r)["stderr"].get<std::string>(), Catch::Contains("oops"));

  r = c.Apply("kube.exec", Value{{"conn", "sim"}, {"pod", pod}, {"argv", {"cat"}},
                                 {"stdin", "piped in"}});
  REQUIRE_OK(r);
  CHECK((*r)["stdout"] == "piped in");

  Value probe{{"conn", "sim"}, {"pod", pod}, {"argv", {"true"}}, {"probe", true}};
  REQUIRE_OK(c.Rehearse("kube.exec", probe));

  r = c.Apply("kube.exec", Value{{"conn", "sim"}, {"pod", "nope"}, {"argv", {"true"}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kNotFound);
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.exec: pod 'nope' in namespace 'default' (context 'sim'): "
                               "not found"));
}

}  // namespace runbook::testing
