// kube.port_forward to a local TCP server, and a `postgres:` connection
// `via:` a kube connection reaching a real PostgreSQL through kubectl
// port-forward (the simulator maps the pod's port to a local address).
#include "bindings/postgres/register.h"
#include "tests/bindings/kube_test_util.h"
#include "tests/fixtures/pg_fixture.h"

namespace runbook::testing {
namespace {

// A statefulset db (pod db-0) whose port 5432 forwards to 127.0.0.1:port.
std::string ForwardedDb(int port) {
  return "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: "
         "db\n  replicas: 1\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata:\n"
         "      labels: {app: db}\n      annotations: {sim.runbook/forward-to: \"5432=127.0.0.1:" +
         std::to_string(port) + "\"}\n    spec:\n      containers:\n      - {name: postgres, "
         "image: \"postgres:17\", ports: [{containerPort: 5432}]}\n---\napiVersion: v1\nkind: "
         "Service\nmetadata: {name: db}\nspec:\n  selector: {app: db}\n  ports: [{port: 5432}]\n";
}

}  // namespace

TEST_CASE("kube.port_forward gives a local port that reaches the pod, held until the run ends",
          "[kube][kube.port_forward]") {
  KubeCase c;
  EchoServer echo;
  c.sim.ApplyYaml(ForwardedDb(echo.port()));
  c.WaitReady("statefulset", "db", 1);
  Value args{{"conn", "sim"}, {"pod", "db-0"}, {"remote_port", 5432}};
  CHECK(c.P("kube.port_forward").Plan(args).text ==
        "kubectl <sim> port-forward --address 127.0.0.1 pod/db-0 :5432   # kept open until the "
        "run ends");
  Result<Value> r = c.Rehearse("kube.port_forward", args);  // a probe: it really forwards
  REQUIRE_OK(r);
  int port = (*r)["local_port"].get<int>();
  CHECK((*r)["host"] == "127.0.0.1");
  CHECK(EchoRoundTrip(port, "ping through kubectl") == "ping through kubectl");
  std::string big(300000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  CHECK(EchoRoundTrip(port, big) == big);

  // The same forward is reused by later steps.
  r = c.Apply("kube.port_forward", args);
  REQUIRE_OK(r);
  CHECK((*r)["local_port"] == port);
  // Through the service too (kubectl picks a pod).
  r = c.Apply("kube.port_forward", Value{{"conn", "sim"}, {"service", "db"},
                                         {"remote_port", 5432}});
  REQUIRE_OK(r);
  CHECK((*r)["local_port"] != port);
  CHECK(EchoRoundTrip((*r)["local_port"].get<int>(), "via svc") == "via svc");

  // The end of the run kills kubectl: the port closes.
  c.ctx.resources().Clear();
  CHECK(EchoRoundTrip(port, "gone", 2000) == "");
}

TEST_CASE("kube.port_forward to a missing pod fails with kubectl's reason", "[kube][kube.port_forward]") {
  KubeCase c;
  Result<Value> r = c.Apply("kube.port_forward", Value{{"conn", "sim"}, {"pod", "nope"},
                                                       {"remote_port", 5432}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::StartsWith("kube.port_forward: port-forward to pod/nope port 5432 in namespace "
                               "'default' (context 'sim'): kubectl port-forward exited: not found"));
}

TEST_CASE("a postgres connection via a kube connection reaches PostgreSQL through port-forward",
          "[kube][kube.port_forward][postgres]") {
  const PgServer& server = BlueServer();
  PgTestDb db(server);
  db.Exec("CREATE TABLE chronicle_notes (id int); INSERT INTO chronicle_notes "
          "SELECT generate_series(1, 971)");
  KubeCase c;
  Registry pg;
  RegisterPostgres(&pg);
  RegisterKube(&pg);
  c.sim.ApplyYaml(ForwardedDb(server.port));
  c.WaitReady("statefulset", "db", 1);
  c.ctx.AddConnection("green", "postgres",
                      Value{{"via", "sim"}, {"pod", "db-0"}, {"port", 5432}, {"dbname", db.name()},
                            {"user", server.superuser}, {"password", server.password}});
  Result<Value> r = pg.Find("pg.query")->Apply(
      c.ctx, Value{{"conn", "green"}, {"sql", "select count(*) AS n from chronicle_notes"}});
  REQUIRE_OK(r);
  CHECK((*r)[0]["n"] == 971);
  CHECK_THAT(c.ctx.AllLogs(), Catch::Contains("port-forward --address 127.0.0.1 pod/db-0 :5432"));
  // The connection and its forward are reused by the next step.
  r = pg.Find("pg.query")->Apply(c.ctx, Value{{"conn", "green"}, {"sql", "select 40 + 2 AS x"}});
  REQUIRE_OK(r);
  CHECK((*r)[0]["x"] == 42);

  c.ctx.AddConnection("nopod", "postgres", Value{{"via", "sim"}, {"dbname", db.name()}});
  r = pg.Find("pg.query")->Apply(c.ctx, Value{{"conn", "nopod"}, {"sql", "select 1"}});
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("connection 'nopod' via kube 'sim': needs pod:"));
  c.ctx.resources().Clear();
}

}  // namespace runbook::testing
