// The run lock: a second run on the same target exits 4
// naming the holder; the lock dies with its holder (kill -9), never wedged.
// With the state store in PostgreSQL (RUNBOOK_STATE=postgresql://...) the
// binary journals, locks (a lease), reports status and resumes there.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/engine/state_test_util.h"
#include "tests/fixtures/kube_fixture.h"

namespace runbook::e2e {
namespace {

using std::chrono::milliseconds;

// Holds the lock for 30 s in a command (not idempotent), then leaves a mark.
const char* kHolder = R"(format: 1
name: holder
lock: shared-target
params:
  w: {type: string}
steps:
  - id: hold
    exec: {argv: [sleep, "30"]}
  - id: after
    exec: {argv: [touch, "${{ params.w }}/holder-done"], creates: "${{ params.w }}/holder-done"}
)";

// Another runbook on the same target.
const char* kOther = R"(format: 1
name: other
lock: shared-target
params:
  w: {type: string}
steps:
  - id: mark
    exec: {argv: [touch, "${{ params.w }}/other-ran"]}
)";

std::string HostName() {
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// Waits until the background run printed its run line and started `step`
// (a descendant process exists); returns the run id.
std::string WaitStarted(Background& bg) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < end) {
    bg.Drain(milliseconds(10));
    if (!bg.Running()) break;
    if (bg.out().rfind("run ", 0) == 0 && !Descendants(bg.pid()).empty()) {
      std::string line = bg.out().substr(0, bg.out().find('\n'));
      return line.substr(4, line.find(' ', 4) - 4);
    }
  }
  FAIL("the holder did not start: " << bg.out() << bg.err());
  return "";
}

// What a run printed, without whitespace (the terminal wraps long lines).
std::string Unwrapped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (!isspace(static_cast<unsigned char>(c))) out += c;
  }
  return out;
}

TEST_CASE("a second run with the same lock exits 4 naming the holder; after kill -9 the lock is "
          "free and the killed run resumes",
          "[e2e][lock]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("holder.yaml", kHolder);
  t.Write("other.yaml", kOther);

  auto holder = std::make_unique<Background>(t.Spec({"run", "holder.yaml", "-p", "w=" + w}));
  std::string holder_id = WaitStarted(*holder);
  pid_t holder_pid = holder->pid();

  // Another runbook on the same target is refused while the holder lives.
  CliResult second = t.Run({"run", "other.yaml", "-p", "w=" + w});
  INFO(second.All());
  CHECK(second.code == 4);
  CHECK(second.err.find("lock 'shared-target' is held by run " + holder_id + " (pid " +
                        std::to_string(holder_pid) + ")") != std::string::npos);
  CHECK_FALSE(Exists(w + "/other-ran"));
  // So is the same runbook again.
  CliResult again = t.Run({"run", "holder.yaml", "-p", "w=" + w});
  CHECK(again.code == 4);
  // The refused runs left no run behind.
  CHECK(t.Runs().size() == 1);

  // kill -9 of the holder (and its command): the lock is released.
  holder->KillHard();
  CHECK_FALSE(PidAlive(holder_pid));
  CliResult third = t.Run({"run", "other.yaml", "-p", "w=" + w});
  INFO(third.All());
  CHECK(third.code == 0);
  CHECK(Exists(w + "/other-ran"));

  // The killed run resumes: the lock is free; its command was running and is
  // not idempotent, so resume asks; a human says it took effect.
  CliResult resume = t.Run({"resume", holder_id});
  INFO(resume.All());
  CHECK(resume.code == 1);
  CHECK(resume.All().find("runbook resume " + holder_id + " --retry-step hold") !=
        std::string::npos);
  CHECK(resume.All().find("--mark-done hold") != std::string::npos);
  CHECK_FALSE(Exists(w + "/holder-done"));
  CliResult done = t.Run({"resume", holder_id, "--mark-done", "hold"});
  INFO(done.All());
  CHECK(done.code == 0);
  CHECK(Exists(w + "/holder-done"));
  Value st = t.RunStatus(holder_id);
  CHECK(st["status"] == "succeeded");
  CHECK(IntegrityCheck(t.state()) == "ok");
}

TEST_CASE("resuming a run while another run holds its lock exits 4", "[e2e][lock]") {
  E2e t;
  std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("other.yaml", R"(format: 1
name: other
lock: shared-target
on_failure: stop
params:
  w: {type: string}
steps:
  - id: need
    exec: {argv: [test, -e, "${{ params.w }}/input"]}
  - id: mark
    exec: {argv: [touch, "${{ params.w }}/other-ran"]}
)");
  t.Write("holder.yaml", kHolder);
  CliResult failed = t.Run({"run", "other.yaml", "-p", "w=" + w});
  REQUIRE(failed.code == 1);
  std::string other_id = t.LastRunId();
  t.Write("w/input", "");

  Background holder(t.Spec({"run", "holder.yaml", "-p", "w=" + w}));
  std::string holder_id = WaitStarted(holder);
  CliResult r = t.Run({"resume", other_id});
  INFO(r.All());
  CHECK(r.code == 4);
  CHECK(r.err.find("held by run " + holder_id) != std::string::npos);
  CHECK_FALSE(Exists(w + "/other-ran"));
  CHECK(t.RunStatus(other_id)["status"] == "stopped");
  holder.KillHard();
  r = t.Run({"resume", other_id});
  CHECK(r.code == 0);
  CHECK(Exists(w + "/other-ran"));
}

}  // namespace
TEST_CASE(
    "with the state in PostgreSQL, runs are journaled there, the run lock is a lease "
    "naming its holder, and a run killed with -9 resumes at once on this host",
    "[e2e][postgres][lock]") {
  testing::PgTestDb db(testing::BlueServer(), "state");
  const std::string uri = testing::PostgresUri(db);
  const std::string password = db.server().password;
  E2e t(uri);
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("holder.yaml", kHolder);
  t.Write("other.yaml", kOther);
  std::string seen;  // everything the binary printed

  Background holder(t.Spec({"run", "holder.yaml", "-p", "w=" + w}));
  const std::string id = WaitStarted(holder);

  CliResult second = t.Run({"run", "other.yaml", "-p", "w=" + w});
  seen += second.All();
  INFO(second.All());
  CHECK(second.code == 4);
  CHECK(second.err.find("lock 'shared-target' is held by run " + id + " (" + HostName() + " " +
                        std::to_string(holder.pid()) + ";") != std::string::npos);
  CHECK_FALSE(Exists(w + "/other-ran"));
  CHECK(t.RunStatus(id)["status"] == "running");

  holder.KillHard();
  seen += holder.out() + holder.err();
  CHECK(t.RunStatus(id)["status"] == "interrupted");
  CliResult resume = t.Run({"resume", id, "--mark-done", "hold"});
  seen += resume.All();
  INFO(resume.All());
  CHECK(resume.code == 0);
  CHECK(Exists(w + "/holder-done"));
  CHECK(t.RunStatus(id)["status"] == "succeeded");
  CliResult other = t.Run({"run", "other.yaml", "-p", "w=" + w});
  seen += other.All();
  CHECK(other.code == 0);
  CliResult report = t.Run({"report", id});
  seen += report.All();
  CHECK(report.code == 0);

  // The journal is in PostgreSQL, nothing went to a file, no lease is left,
  // and the password of the URI was never printed.
  CHECK(db.Value("SELECT status FROM runbook.runs WHERE id = '" + id + "'") == "succeeded");
  CHECK(db.Value("SELECT count(*) FROM runbook.runs") == "2");
  CHECK(db.Value("SELECT count(*) FROM runbook.leases") == "0");
  CHECK_FALSE(Exists(t.P("state")));
  CHECK(seen.find(password) == std::string::npos);
  CHECK(seen.find(uri) == std::string::npos);
}

TEST_CASE(
    "with the state in PostgreSQL, an engine presumed dead (stopped past its lease) whose "
    "run was taken over stops at its next transition: the step after acts once",
    "[e2e][postgres][lock]") {
  testing::PgTestDb db(testing::BlueServer(), "state");
  E2e t(testing::PostgresUri(db));
  const std::map<std::string, std::string> env{{"RUNBOOK_LEASE_SECONDS", "3"}};
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  // `act` is not idempotent: mkdir fails if the directory exists.
  t.Write("once.yaml", R"(format: 1
name: once
lock: shared-target
params:
  w: {type: string}
steps:
  - id: hold
    exec: {argv: [sleep, "4"]}
  - id: act
    exec: {argv: [mkdir, "${{ params.w }}/acted"]}
)");
  Background a(t.Spec({"run", "once.yaml", "-p", "w=" + w}, env));
  const std::string id = WaitStarted(a);
  // The engine (not its command) stops: no renewal, its lease runs out.
  REQUIRE(kill(a.pid(), SIGSTOP) == 0);
  CliResult b;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       std::chrono::steady_clock::now() < end;) {
    b = t.Run({"resume", id, "--mark-done", "hold"}, env);
    if (b.code != 4) break;
    CHECK(b.err.find("its lease ends in") != std::string::npos);
    std::this_thread::sleep_for(milliseconds(300));
  }
  INFO(b.All());
  CHECK(b.code == 0);
  CHECK(Exists(w + "/acted"));
  CHECK(t.RunStatus(id)["status"] == "succeeded");

  // The first engine wakes up: its command has finished; journaling that is
  // its next transition, refused: it stops there, acting no more.
  REQUIRE(kill(a.pid(), SIGCONT) == 0);
  REQUIRE(a.WaitExit(std::chrono::seconds(30)));
  a.Drain();
  INFO(a.out() << a.err());
  // (The lease is gone by now: the second engine finished and released it.
  // The terminal wraps long lines.)
  // Its journal write's fence or its lock watch finds it first (exit 6 or
  // 4); whichever, the message is the same in substance.
  const std::string said = Unwrapped(a.out() + a.err());
  CHECK((said.find("lock'shared-target':thisengine'sleasewastakenover") != std::string::npos ||
         said.find("lock'shared-target':theleasecouldnotberenewed") != std::string::npos));
  CHECK(said.find("theenginethatholdstheleasenowcarriestherunon") != std::string::npos);
  CHECK((said.find("(exit6)") != std::string::npos || said.find("(exit4)") != std::string::npos));
  CHECK(t.RunStatus(id)["status"] == "succeeded");
  CHECK(
      db.Value("SELECT count(*) FROM runbook.events WHERE kind = 'step.ok' AND step_id = 'act'") ==
      "1");
  CHECK(db.Value("SELECT status FROM runbook.steps WHERE step_id = 'act'") == "succeeded");
}

}  // namespace runbook::e2e

namespace runbook::e2e {
namespace {

// Holds the lock on a PostgreSQL target for 30 s, then marks the target.
const char* kOnTarget = R"RB(format: 1
name: on-target
lock: shared-db
params:
  dsn: {type: string}
  pw: {type: string, secret: true, env: E2E_TARGET_PW}
  hold: {type: string, default: "30"}
connections:
  db: {postgres: {dsn: "${{ params.dsn }}", password: "${{ params.pw }}"}}
steps:
  - id: hold
    exec: {argv: [sleep, "${{ params.hold }}"]}
  - id: mark
    pg.exec: {conn: db, sql: "INSERT INTO marks VALUES (1)"}
)RB";

}  // namespace

TEST_CASE(
    "two engines with different state stores: the second is kept out by the lock taken in "
    "the target server, until the first dies; a rehearsal is not",
    "[e2e][postgres][lock]") {
  testing::PgTestDb db(testing::BlueServer(), "target");
  db.Exec("CREATE TABLE marks (n int)");
  const std::map<std::string, std::string> env{{"E2E_TARGET_PW", db.server().password}};
  const std::string dsn = "dsn=" + db.Conninfo();
  E2e laptop, ci;  // each its own SQLite store
  laptop.Write("rb.yaml", kOnTarget);
  ci.Write("rb.yaml", kOnTarget);

  Background first(laptop.Spec({"run", "rb.yaml", "-p", dsn}, env));
  const std::string first_id = WaitStarted(first);
  CliResult second = ci.Run({"run", "rb.yaml", "-p", dsn, "-p", "hold=0"}, env);
  INFO(second.All());
  CHECK(second.code == 4);
  CHECK_THAT(second.err, Catch::Contains("run lock 'shared-db' is held on connection 'db'"));
  CHECK_THAT(second.err,
             Catch::Contains("by runbook " + first_id + " " + std::to_string(first.pid()) + " "));
  CHECK_THAT(second.err, Catch::Contains("another state store"));
  CHECK(second.All().find(db.server().password) == std::string::npos);
  CHECK(ci.Runs().size() == 0);  // refused before a run was recorded
  CHECK(db.Value("SELECT count(*) FROM marks") == "0");
  // A rehearsal acts on nothing: it takes no lock in the target.
  CliResult rehearsal = ci.Run({"run", "rb.yaml", "--dry-run", "-p", dsn, "-p", "hold=0"}, env);
  INFO(rehearsal.All());
  CHECK(rehearsal.code == 0);

  // kill -9: the server ends the engine's session, and the lock with it.
  first.KillHard();
  CliResult third = ci.Run({"run", "rb.yaml", "-p", dsn, "-p", "hold=0"}, env);
  INFO(third.All());
  CHECK(third.code == 0);
  CHECK(db.Value("SELECT count(*) FROM marks") == "1");
  // The killed run resumes with its own store; a human says `hold` is done.
  CliResult resumed = laptop.Run({"resume", first_id, "--mark-done", "hold"}, env);
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  CHECK(db.Value("SELECT count(*) FROM marks") == "2");
  // Nothing of it stays on the server (a session ends a moment after its
  // engine).
  std::string left;
  for (int i = 0; i < 100; ++i) {
    left = db.Value(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = "
        "1380076619");
    if (left == "0") break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  CHECK(left == "0");
}

TEST_CASE(
    "with the state in PostgreSQL, the lock in the target does not stop the engine that takes "
    "over a run presumed dead; the first acts no more",
    "[e2e][postgres][lock]") {
  testing::PgTestDb state(testing::BlueServer(), "state");
  testing::PgTestDb db(testing::BlueServer(), "target");
  db.Exec("CREATE TABLE marks (n int)");
  const std::map<std::string, std::string> env{{"E2E_TARGET_PW", db.server().password},
                                               {"RUNBOOK_LEASE_SECONDS", "3"}};
  E2e t(testing::PostgresUri(state));
  t.Write("rb.yaml", kOnTarget);
  Background first(t.Spec({"run", "rb.yaml", "-p", "dsn=" + db.Conninfo(), "-p", "hold=4"}, env));
  const std::string id = WaitStarted(first);
  // Stopped, the engine keeps its session on the target's server open (as
  // a partitioned node would for a while) but stops renewing its lease.
  REQUIRE(kill(first.pid(), SIGSTOP) == 0);
  CliResult taken;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       std::chrono::steady_clock::now() < end;) {
    taken = t.Run({"resume", id, "--mark-done", "hold"}, env);
    if (taken.code != 4 || taken.err.find("its lease ends in") == std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(300));
  }
  INFO(taken.All());
  CHECK(taken.code == 0);
  CHECK(db.Value("SELECT count(*) FROM marks") == "1");
  REQUIRE(kill(first.pid(), SIGCONT) == 0);
  REQUIRE(first.WaitExit(std::chrono::seconds(30)));
  first.Drain();
  INFO(first.out() << first.err());
  CHECK(db.Value("SELECT count(*) FROM marks") == "1");
  CHECK(t.RunStatus(id)["status"] == "succeeded");
}

TEST_CASE(
    "with the state in PostgreSQL, an engine whose lease is taken over while a step acts stops "
    "that step at once: its statement is cancelled on the server, nothing after it acts",
    "[e2e][postgres][lock]") {
  testing::PgTestDb state(testing::BlueServer(), "state");
  testing::PgTestDb db(testing::BlueServer(), "target");
  db.Exec("CREATE TABLE marks (n int)");
  const std::map<std::string, std::string> env{{"E2E_TARGET_PW", db.server().password},
                                               {"RUNBOOK_LEASE_SECONDS", "3"}};
  E2e t(testing::PostgresUri(state));
  t.Write("rb.yaml", R"RB(format: 1
name: long-statement
lock: shared-db
params:
  dsn: {type: string}
  pw: {type: string, secret: true, env: E2E_TARGET_PW}
connections:
  db: {postgres: {dsn: "${{ params.dsn }}", password: "${{ params.pw }}"}}
steps:
  - id: long
    pg.exec: {conn: db, sql: "SELECT pg_sleep(300)"}
  - id: mark
    pg.exec: {conn: db, sql: "INSERT INTO marks VALUES (1)"}
)RB");
  Background a(t.Spec({"run", "rb.yaml", "-p", "dsn=" + db.Conninfo()}, env));
  const std::string running =
      "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' AND state = "
      "'active' AND pid <> pg_backend_pid()";
  bool started = false;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       !started && std::chrono::steady_clock::now() < end && a.Running();) {
    a.Drain(milliseconds(100));
    started = db.Value(running) == "1";
  }
  INFO(a.out() << a.err());
  REQUIRE(started);
  // Another engine takes the lease over, as one does once it ran out.
  state.Exec(
      "UPDATE runbook.leases SET token = nextval('runbook.lease_tokens'), run_id = 'run-thief', "
      "holder = 'thief'");
  // Stopped within seconds (the lease is renewed every second, the locks
  // watched every second), not after the statement's 300.
  REQUIRE(a.WaitExit(std::chrono::seconds(60)));
  a.Drain();
  INFO(a.out() << a.err());
  const std::string said = Unwrapped(a.out() + a.err());
  CHECK(said.find("stoppedwhileacting(lock'shared-db':thisengine'sleasewastakenoverbyrunrun-"
                  "thief(thief)") != std::string::npos);
  CHECK(said.find("theenginethatholdstheleasenowcarriestherunon") != std::string::npos);
  CHECK(said.find("(exit4)") != std::string::npos);
  CHECK(db.Value(running) == "0");  // cancelled on the server, not left to run
  CHECK(db.Value("SELECT count(*) FROM marks") == "0");
  // The journal says what it said before the lease was lost: `long` started.
  CHECK(state.Value("SELECT status FROM runbook.steps WHERE step_id = 'long'") == "running");
}

}  // namespace runbook::e2e

namespace runbook::e2e {

TEST_CASE(
    "engines started together on one state store all open it (none fails 'database is "
    "locked')",
    "[e2e][lock]") {
  E2e t;
  t.Write("rb.yaml", R"(format: 1
name: together
lock: "k:${{ params.n }}"
params:
  n: {type: string}
steps:
  - id: a
    log: one
  - id: b
    log: two
)");
  REQUIRE(t.Run({"run", "rb.yaml", "-p", "n=first"}).code == 0);  // the store exists
  int started = 0;
  std::string failures;
  for (int round = 0; round < 8; ++round) {
    std::vector<std::unique_ptr<Background>> runs;
    for (int i = 0; i < 12; ++i) {
      runs.push_back(std::make_unique<Background>(
          t.Spec({"run", "rb.yaml", "-p", "n=" + std::to_string(round * 100 + i)})));
      ++started;
    }
    for (auto& r : runs) {
      REQUIRE(r->WaitExit(std::chrono::seconds(60)));
      if (!r->err().empty()) failures += r->err();
    }
  }
  INFO(failures);
  CHECK(failures.empty());
  CHECK(t.Runs().size() == static_cast<size_t>(started + 1));
  for (const Value& r : t.Runs()) CHECK(r["status"] == "succeeded");
  CHECK(IntegrityCheck(t.state()) == "ok");
}

TEST_CASE(
    "with the state in PostgreSQL a run waiting for an approval LISTENs for it, and goes on "
    "when another process approves",
    "[e2e][postgres][approve]") {
  testing::PgTestDb state(testing::BlueServer(), "state");
  E2e t(testing::PostgresUri(state));
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  t.Write("gated.yaml", R"(format: 1
name: gated
params:
  w: {type: string}
steps:
  - id: gate
    approve: "go on?"
    exec: {argv: [touch, "${{ params.w }}/acted"]}
)");
  Background run(t.Spec({"run", "gated.yaml", "-p", "w=" + w, "--wait-for-approval", "2m"}));
  std::string id;
  bool waiting = false;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       !waiting && std::chrono::steady_clock::now() < end && run.Running();) {
    run.Drain(milliseconds(50));
    if (id.empty() && run.out().find('\n') != std::string::npos) id = RunIdFrom(run.out());
    if (!id.empty()) waiting = t.Steps(id)["gate"]["status"] == "waiting";
  }
  INFO(run.out() << run.err());
  REQUIRE(waiting);
  // The wait is a LISTEN on a session of its own, not a poll.
  std::string listening;
  for (int i = 0; i < 100 && listening != "1"; ++i) {
    listening = state.Value(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND query = 'LISTEN runbook_approval'");
    if (listening != "1") std::this_thread::sleep_for(milliseconds(50));
  }
  CHECK(listening == "1");
  CliResult ok = t.Run({"approve", id, "gate", "--by", "erin"});
  INFO(ok.All());
  CHECK(ok.code == 0);
  REQUIRE(run.WaitExit(std::chrono::seconds(30)));
  run.Drain();
  CHECK_THAT(run.out(), Catch::Contains("approved by erin: go on?"));
  CHECK(Exists(w + "/acted"));
  CHECK(t.RunStatus(id)["status"] == "succeeded");
}

}  // namespace runbook::e2e

namespace runbook::e2e {
namespace {

// Holds lock `shared-ns` on a Kubernetes namespace for `hold` seconds, then
// acts once (mkdir fails if it already did).
const char* kOnNamespace = R"RB(format: 1
name: on-namespace
lock: shared-ns
params:
  kubeconfig: {type: string}
  w: {type: string}
  hold: {type: string, default: "30"}
connections:
  k8s: {kube: {context: sim, namespace: default, kubeconfig: "${{ params.kubeconfig }}"}}
steps:
  - id: hold
    exec: {argv: [sleep, "${{ params.hold }}"]}
  - id: mark
    exec: {argv: [mkdir, "${{ params.w }}/marked"]}
)RB";

Value NamespaceLease(const testing::KubeSim& sim) {
  for (const Value& l : sim.Objects("coordination.k8s.io/leases")) {
    if (l["metadata"]["annotations"].value("runbook.dev/lock-key", "") == "shared-ns") return l;
  }
  return nullptr;
}

// Writes the namespace's Lease as another engine would: held by `holder`
// from now on ("": released).
void SetNamespaceHolder(const testing::KubeSim& sim, const std::string& holder) {
  Value lease = NamespaceLease(sim);
  REQUIRE(lease.is_object());
  if (holder.empty()) {
    lease["spec"].erase("holderIdentity");
  } else {
    lease["spec"]["holderIdentity"] = holder;
  }
  lease["metadata"].erase("managedFields");
  sim.Kubectl({"replace", "-n", "default", "-f", "-"}, lease.dump());
}

}  // namespace

TEST_CASE(
    "two engines with different state stores on one Kubernetes namespace: the second is kept "
    "out by a Lease there until the first dies; a rehearsal is not; the end of a run frees it",
    "[e2e][kube][lock]") {
  const testing::KubeSim& sim = testing::TheKubeSim();
  sim.Reset();
  const std::map<std::string, std::string> env{{"RUNBOOK_LEASE_SECONDS", "3"}};
  E2e laptop, ci;  // each its own SQLite store
  laptop.Write("rb.yaml", kOnNamespace);
  ci.Write("rb.yaml", kOnNamespace);
  const std::string w = ci.P("w");
  std::filesystem::create_directories(w);
  const std::vector<std::string> params = {"-p", "kubeconfig=" + sim.kubeconfig, "-p", "w=" + w};
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& more = {}) {
    args.insert(args.end(), params.begin(), params.end());
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };

  Background first(laptop.Spec(with({"run", "rb.yaml"}), env));
  const std::string first_id = WaitStarted(first);
  CliResult second = ci.Run(with({"run", "rb.yaml"}, {"-p", "hold=0"}), env);
  INFO(second.All());
  CHECK(second.code == 4);
  CHECK_THAT(second.err, Catch::Contains("run lock 'shared-ns' is held on connection 'k8s' "
                                         "(namespace 'default' (context 'sim'), Lease "
                                         "runbook-lock-shared-ns-"));
  CHECK_THAT(second.err,
             Catch::Contains("by runbook " + first_id + " " + std::to_string(first.pid()) + " "));
  CHECK(ci.Runs().size() == 0);  // refused before a run was recorded
  CHECK_FALSE(Exists(w + "/marked"));
  CliResult rehearsal = ci.Run(with({"run", "rb.yaml", "--dry-run"}, {"-p", "hold=0"}), env);
  INFO(rehearsal.All());
  CHECK(rehearsal.code == 0);

  // kill -9 leaves the Lease to a pid that is gone: taken once it was not
  // renewed for its length (3 s) as the next engine watched.
  first.KillHard();
  CHECK(NamespaceLease(sim)["spec"].value("holderIdentity", "").find(first_id) !=
        std::string::npos);
  CliResult third = ci.Run(with({"run", "rb.yaml"}, {"-p", "hold=0"}), env);
  INFO(third.All());
  CHECK(third.code == 0);
  CHECK(Exists(w + "/marked"));
  const Value lease = NamespaceLease(sim);
  CHECK_FALSE(lease["spec"].contains("holderIdentity"));  // released when the run ended
  CHECK(lease["spec"]["leaseTransitions"] == 2);
}

TEST_CASE(
    "an engine whose Lease on a namespace another engine took stops before its next step "
    "acts; resumed once the Lease is free, the step acts once",
    "[e2e][kube][lock]") {
  const testing::KubeSim& sim = testing::TheKubeSim();
  sim.Reset();
  E2e t;
  t.Write("rb.yaml", kOnNamespace);
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  const std::map<std::string, std::string> env{{"RUNBOOK_LEASE_SECONDS", "3"}};
  Background a(t.Spec(
      {"run", "rb.yaml", "-p", "kubeconfig=" + sim.kubeconfig, "-p", "w=" + w, "-p", "hold=4"},
      env));
  const std::string id = WaitStarted(a);
  // Another engine (another store, another host) takes the Lease over, as
  // one would that presumed this one dead.
  SetNamespaceHolder(sim, "runbook other-run 7 abcdef elsewhere.example");
  REQUIRE(a.WaitExit(std::chrono::seconds(30)));
  a.Drain();
  INFO(a.out() << a.err());
  const std::string said = Unwrapped(a.out() + a.err());
  CHECK(said.find("wastakenbyrunbookother-run7abcdefelsewhere.example") != std::string::npos);
  CHECK(said.find("anotherengineactsonthistargetnow") != std::string::npos);
  CHECK(said.find("(exit4)") != std::string::npos);
  CHECK_FALSE(Exists(w + "/marked"));
  CHECK(t.Steps(id)["mark"]["status"] != "succeeded");
  CHECK(t.RunStatus(id)["status"] == "stopped");

  // The other engine is done: its Lease freed, this run resumes and acts once.
  SetNamespaceHolder(sim, "");
  CliResult resumed = t.Run({"resume", id}, env);
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  CHECK(Exists(w + "/marked"));
  CHECK(t.RunStatus(id)["status"] == "succeeded");
}

}  // namespace runbook::e2e

namespace runbook::e2e {
namespace {

// Holds lock `shared-db` on a PostgreSQL target: waits, marks it once, waits again.
const char* kMarkBetween = R"RB(format: 1
name: mark-between
lock: shared-db
params:
  dsn: {type: string}
  pw: {type: string, secret: true, env: E2E_TARGET_PW}
connections:
  db: {postgres: {dsn: "${{ params.dsn }}", password: "${{ params.pw }}"}}
steps:
  - id: hold
    exec: {argv: [sleep, "4"]}
  - id: mark
    pg.exec: {conn: db, sql: "INSERT INTO marks VALUES (1)"}
  - id: after
    exec: {argv: [sleep, "4"]}
)RB";

}  // namespace

TEST_CASE(
    "a run whose lock session in the target server ended takes the lock again at its next "
    "step; if another engine took it meanwhile, the run stops before that step acts",
    "[e2e][postgres][lock]") {
  testing::PgTestDb db(testing::BlueServer(), "target");
  db.Exec("CREATE TABLE marks (n int)");
  std::map<std::string, std::string> env = testing::BlueServer().ClientEnv();
  env["E2E_TARGET_PW"] = db.server().password;
  const std::string dsn = "dsn=" + db.Conninfo();
  E2e t;
  t.Write("rb.yaml", kMarkBetween);
  const testing::PgServer& server = db.server();
  auto lock_session = [&](const std::string& run_id) {
    // The engine's session that holds an advisory lock (0: none).
    return server.AdminValue(
        "SELECT coalesce(max(a.pid), 0) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = "
        "a.pid AND l.locktype = 'advisory' AND l.granted WHERE a.application_name LIKE "
        "'runbook " +
        run_id + " %'");
  };

  // Ended, and nobody took it: taken again at the next step, the run goes on.
  {
    Background a(t.Spec({"run", "rb.yaml", "-p", dsn}, env));
    const std::string id = WaitStarted(a);
    const std::string pid = lock_session(id);
    REQUIRE(pid != "0");
    server.AdminValue("SELECT pg_terminate_backend(" + pid + ")");
    std::string again = "0";
    for (int i = 0; i < 100 && (again == "0" || again == pid); ++i) {
      std::this_thread::sleep_for(milliseconds(100));
      again = lock_session(id);
    }
    CHECK(again != "0");
    CHECK(again != pid);
    REQUIRE(a.WaitExit(std::chrono::seconds(30)));
    a.Drain();
    INFO(a.out() << a.err());
    CHECK(t.RunStatus(id)["status"] == "succeeded");
    CHECK(db.Value("SELECT count(*) FROM marks") == "1");
  }

  // Ended, and another engine (another store) took the lock meanwhile: this
  // run stops before `mark` acts; resumed once the other is done, it acts once.
  Background a(t.Spec({"run", "rb.yaml", "-p", dsn}, env));
  const std::string id = WaitStarted(a);
  const std::string pid = lock_session(id);
  REQUIRE(pid != "0");
  const std::string ids = server.AdminValue(
      "SELECT classid::int || ', ' || objid::int FROM pg_locks WHERE locktype = 'advisory' "
      "AND pid = " +
      pid);
  ProcessSpec psql;
  psql.argv = {"psql", "-X",
               "-q",   server.Conninfo("postgres"),
               "-c",   "SELECT pg_advisory_lock(" + ids + "), pg_sleep(60)"};
  psql.env = env;
  psql.env["PGAPPNAME"] = "runbook other-run 7 abcdef elsewhere.example";
  Background other(psql);
  // It waits in the lock's queue before the session ends, so that it gets
  // the lock first (the engine watches its lock twice a second and would
  // take it again).
  std::string waits = "0";
  for (int i = 0; i < 200 && waits == "0"; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    waits = server.AdminValue(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT "
        "l.granted AND l.locktype = 'advisory' AND a.application_name LIKE 'runbook other-run %'");
  }
  REQUIRE(waits == "1");
  server.AdminValue("SELECT pg_terminate_backend(" + pid + ")");
  std::string holds = "0";
  for (int i = 0; i < 100 && holds == "0"; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    holds = server.AdminValue(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.granted "
        "AND l.locktype = 'advisory' AND a.application_name LIKE 'runbook other-run %'");
  }
  REQUIRE(holds == "1");
  REQUIRE(a.WaitExit(std::chrono::seconds(30)));
  a.Drain();
  INFO(a.out() << a.err());
  const std::string said = Unwrapped(a.out() + a.err());
  CHECK(said.find("theserverendedthesessionthatheldtherunlockonconnection'db'") !=
        std::string::npos);
  CHECK(said.find("byrunbookother-run7abcdefelsewhere.example") != std::string::npos);
  CHECK(said.find("anotherengineactsonthistargetnow") != std::string::npos);
  CHECK(said.find("(exit4)") != std::string::npos);
  CHECK(db.Value("SELECT count(*) FROM marks") == "1");
  CHECK(t.RunStatus(id)["status"] == "stopped");
  CHECK(said.find(db.server().password) == std::string::npos);

  // (Its server session ends with it: a sleeping backend would not notice psql go.)
  server.AdminValue(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
      "application_name LIKE 'runbook other-run %'");
  REQUIRE(other.WaitExit(std::chrono::seconds(10)));
  CliResult resumed = t.Run({"resume", id}, env);
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  CHECK(db.Value("SELECT count(*) FROM marks") == "2");
}

// Whether a ConfigMap `name` is in namespace `ns` of the simulator.
bool HasConfigMap(const testing::KubeSim& sim, const std::string& ns, const std::string& name) {
  for (const Value& o : sim.Objects("/configmaps")) {
    if (o["metadata"].value("namespace", "") == ns && o["metadata"].value("name", "") == name) {
      return true;
    }
  }
  return false;
}

TEST_CASE(
    "a step acting in a namespace its connection does not name takes the run lock there too: "
    "an engine holding it there stops the run before the step acts; a resume acts once it is "
    "free, and frees it at its end",
    "[e2e][kube][lock]") {
  const testing::KubeSim& sim = testing::TheKubeSim();
  sim.Reset();
  sim.Kubectl({"create", "namespace", "other"});
  const std::map<std::string, std::string> env{{"RUNBOOK_LEASE_SECONDS", "3"}};
  E2e laptop, ci;  // each its own SQLite store
  ci.Write("hold.yaml", R"RB(format: 1
name: hold-other
lock: shared-ns
params:
  kubeconfig: {type: string}
connections:
  k8s: {kube: {context: sim, namespace: other, kubeconfig: "${{ params.kubeconfig }}"}}
steps:
  - id: hold
    exec: {argv: [sleep, "60"]}
)RB");
  laptop.Write("rb.yaml", R"RB(format: 1
name: across
lock: shared-ns
params:
  kubeconfig: {type: string}
connections:
  k8s: {kube: {context: sim, namespace: default, kubeconfig: "${{ params.kubeconfig }}"}}
steps:
  - id: config
    kube.apply:
      conn: k8s
      namespace: other
      manifest: {apiVersion: v1, kind: ConfigMap, metadata: {name: across}, data: {a: "1"}}
)RB");
  const std::vector<std::string> kc = {"-p", "kubeconfig=" + sim.kubeconfig};
  Background holder(ci.Spec({"run", "hold.yaml", kc[0], kc[1]}, env));
  const std::string holder_id = WaitStarted(holder);

  CliResult r = laptop.Run({"run", "rb.yaml", kc[0], kc[1]}, env);
  INFO(r.All());
  CHECK(r.code == 4);
  const std::string said = Unwrapped(r.All());
  CHECK(said.find("notrun:") != std::string::npos);
  CHECK(said.find("runbook" + holder_id) != std::string::npos);  // names the holder
  CHECK(said.find("anotherengineactsonthistargetnow") != std::string::npos);
  CHECK_FALSE(HasConfigMap(sim, "other", "across"));
  const std::string id = RunIdFrom(r.out);
  CHECK(laptop.RunStatus(id)["status"] == "stopped");

  // The holder dies; its Lease is taken once it stayed unrenewed its length.
  holder.KillHard();
  CliResult resumed = laptop.Run({"resume", id}, env);
  INFO(resumed.All());
  CHECK(resumed.code == 0);
  CHECK(HasConfigMap(sim, "other", "across"));
  CHECK(laptop.RunStatus(id)["status"] == "succeeded");
  int held = 0;
  for (const Value& l : sim.Objects("coordination.k8s.io/leases")) {
    if (l["metadata"].value("namespace", "") == "other" && l["spec"].contains("holderIdentity")) {
      ++held;
    }
  }
  CHECK(held == 0);  // released at the end of the run
}

TEST_CASE(
    "an engine whose Lease on a namespace is taken while it rolls back stops the undo that "
    "acts and undoes nothing more; runbook rollback goes on once the Lease is free",
    "[e2e][kube][lock]") {
  const testing::KubeSim& sim = testing::TheKubeSim();
  sim.Reset();
  E2e t;
  t.Write("rb.yaml", R"RB(format: 1
name: undo-on-namespace
lock: shared-ns
params:
  kubeconfig: {type: string}
  w: {type: string}
connections:
  k8s: {kube: {context: sim, namespace: default, kubeconfig: "${{ params.kubeconfig }}"}}
steps:
  - id: made
    exec: {argv: [mkdir, "${{ params.w }}/made"]}
    rollback: {exec: {argv: [rmdir, "${{ params.w }}/made"]}}
  - id: slow-undo
    exec: {argv: ["true"]}
    rollback:
      exec:
        argv: [bash, -c, "[ -e \"$0/undoing\" ] || { touch \"$0/undoing\"; sleep 60; }",
               "${{ params.w }}"]
  - id: fails
    exec: {argv: ["false"]}
)RB");
  const std::string w = t.P("w");
  std::filesystem::create_directories(w);
  const std::map<std::string, std::string> env{{"RUNBOOK_LEASE_SECONDS", "3"}};
  Background a(
      t.Spec({"run", "rb.yaml", "-p", "kubeconfig=" + sim.kubeconfig, "-p", "w=" + w}, env));
  const std::string id = WaitStarted(a);
  for (int i = 0; i < 200 && !Exists(w + "/undoing"); ++i)
    std::this_thread::sleep_for(milliseconds(50));
  REQUIRE(Exists(w + "/undoing"));  // slow-undo's undo acts
  SetNamespaceHolder(sim, "runbook other-run 7 abcdef elsewhere.example");
  REQUIRE(a.WaitExit(std::chrono::seconds(30)));
  a.Drain();
  INFO(a.out() << a.err());
  const std::string said = Unwrapped(a.out() + a.err());
  CHECK(said.find("wastakenbyrunbookother-run7") != std::string::npos);
  CHECK(said.find("stoppedwhileundoing(therunlock'shared-ns'") != std::string::npos);
  CHECK(said.find("runbookrollback" + id + "goeson") != std::string::npos);
  CHECK(said.find("(exit4)") != std::string::npos);
  CHECK(Exists(w + "/made"));                                  // not undone by this engine
  CHECK(t.RunStatus(id)["status"] == "interrupted_rollback");  // rolling_back, no engine

  SetNamespaceHolder(sim, "");
  CliResult back = t.Run({"rollback", id}, env);
  INFO(back.All());
  CHECK(back.code == 0);
  CHECK_FALSE(Exists(w + "/made"));
  CHECK(t.RunStatus(id)["status"] == "rolled_back");
}

}  // namespace runbook::e2e
