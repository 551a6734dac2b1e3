// The PostgreSQL state store beyond the contract both stores share
// (state_test.cc): its schema, its messages, and run locks as leases with
// fencing tokens. Against the real test server.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>
#include <vector>

#include "engine/state/pg_store.h"
#include "tests/engine/state_test_util.h"

namespace runbook {

using namespace runbook::testing;  // NOLINT

namespace {

std::unique_ptr<StateStore> OpenPg(const std::string& uri, int64_t lease_ms = 30000) {
  PgStoreOptions options;
  options.lease_ms = lease_ms;
  auto store = OpenPostgresStore(uri, options);
  INFO(store.status().message());
  REQUIRE(store.ok());
  return std::move(*store);
}

std::string Host() {
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// The pid of a process that has exited (and was reaped).
pid_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

}  // namespace

TEST_CASE("postgresql store: a schema from a newer version is refused", "[state][postgres]") {
  PostgresSite site;
  site.Open();
  site.db().Exec("UPDATE runbook.meta SET schema_version = 99");
  auto store = StateStore::Open(site.Location());
  REQUIRE(!store.ok());
  CHECK(store.status().message().find("schema version 99 is newer") != std::string::npos);
}

TEST_CASE("postgresql store: a schema \"runbook\" of something else is refused and left alone",
          "[state][postgres]") {
  PostgresSite site;
  site.db().Exec("CREATE SCHEMA runbook; CREATE TABLE runbook.runs (x int)");
  auto store = StateStore::Open(site.Location());
  REQUIRE(!store.ok());
  CHECK(store.status().message().find("belongs to something else") != std::string::npos);
  CHECK(site.db().Value("SELECT to_regclass('runbook.meta') IS NULL") == "t");
  CHECK(site.db().Value("SELECT count(*) FROM information_schema.columns"
                        " WHERE table_schema = 'runbook' AND table_name = 'runs'") == "1");
}

TEST_CASE("postgresql store: engines opening a new database at once all get one schema",
          "[state][postgres]") {
  PostgresSite site;
  std::vector<std::thread> threads;
  std::vector<std::string> errors(6);
  for (size_t i = 0; i < errors.size(); ++i) {
    threads.emplace_back([&, i] {
      auto store = StateStore::Open(site.Location());
      if (!store.ok()) errors[i] = store.status().message();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) CHECK(e == "");
  CHECK(site.db().Value("SELECT schema_version FROM runbook.meta") == "1");
  CHECK(site.db().Value("SELECT count(*) FROM runbook.meta") == "1");
}

TEST_CASE("postgresql store: no message or location shows the password", "[state][postgres]") {
  PostgresSite site;
  const std::string password = site.db().server().password;
  REQUIRE(password.size() >= 6);
  auto store = site.Open();
  CHECK(store->path().find(password) == std::string::npos);
  CHECK(store->path() == "postgresql://postgres@127.0.0.1:" +
                             std::to_string(site.db().server().port) + "/" + site.db().name());
  // A failed write names the store, not its password.
  StepRecord orphan = MakeStep("no-such-run", "copy");
  Status s = store->PutStep(&orphan);
  REQUIRE(!s.ok());
  CHECK(s.message().find(password) == std::string::npos);

  // A wrong password, and one given as a URI parameter.
  const std::string wrong = "Wr0ngPassw0rd";
  auto refused = StateStore::Open(PostgresUri(site.db(), wrong));
  REQUIRE(!refused.ok());
  CHECK(refused.status().message().find("cannot connect") != std::string::npos);
  CHECK(refused.status().message().find(wrong) == std::string::npos);
  const std::string param =
      "postgresql://postgres@127.0.0.1:" + std::to_string(site.db().server().port) + "/" +
      site.db().name() + "?password=" + wrong + "&connect_timeout=5";
  auto refused2 = StateStore::Open(param);
  REQUIRE(!refused2.ok());
  CHECK(refused2.status().message().find(wrong) == std::string::npos);
  // Not a URI libpq takes.
  auto garbage = StateStore::Open("postgresql://u:" + wrong + "@h:notaport/db");
  REQUIRE(!garbage.ok());
  CHECK(garbage.status().message().find(wrong) == std::string::npos);
}

TEST_CASE("postgresql store: a lock is a lease; a second engine is refused naming the holder",
          "[state][postgres][lock]") {
  PostgresSite site;
  auto a = site.Open();
  auto b = site.Open();
  CHECK_FALSE(b->LockHeld("db:main"));
  auto held = a->AcquireLock("db:main", "run-a");
  REQUIRE(held.ok());
  CHECK(b->LockHeld("db:main"));
  auto refused = b->AcquireLock("db:main", "run-b");
  REQUIRE(!refused.ok());
  CHECK(refused.status().code() == Status::Code::kUnavailable);
  CHECK(refused.status().message().find("lock 'db:main' is held by run run-a (" + Host() + " " +
                                        std::to_string(getpid()) + ";") != std::string::npos);
  // Other keys do not conflict.
  auto other = b->AcquireLock("db:other", "run-b");
  CHECK(other.ok());
  other->reset();
  held->reset();  // released
  CHECK_FALSE(b->LockHeld("db:main"));
  auto now = b->AcquireLock("db:main", "run-b");
  REQUIRE(now.ok());
}

TEST_CASE(
    "postgresql store: a lease is renewed while held, and taken over once it expired; "
    "the old holder's next write fails and writes nothing",
    "[state][postgres][lock]") {
  PostgresSite site;
  auto a = OpenPg(site.Location(), 1500);
  REQUIRE(a->CreateRun(MakeRun("run-a")).ok());
  auto held = a->AcquireLock("db:main", "run-a");
  REQUIRE(held.ok());
  StepRecord first = MakeStep("run-a", "first");
  REQUIRE(a->PutStep(&first).ok());
  const std::string token = site.db().Value("SELECT token FROM runbook.leases");

  // Renewed: after three lease lengths it is still held.
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));
  auto b = OpenPg(site.Location(), 1500);
  CHECK(b->LockHeld("db:main"));
  CHECK_FALSE(b->AcquireLock("db:main", "run-b").ok());

  // The holder is presumed dead (its lease ran out: a paused process, a
  // partitioned node): another engine takes the lock with a greater token.
  // (The holder's renewal may land between the two statements: try again.)
  Result<std::unique_ptr<StoreLock>> taken = Status::Unavailable("not tried");
  for (int i = 0; i < 20 && !taken.ok(); ++i) {
    site.db().Exec("UPDATE runbook.leases SET expires_at = now() - interval '1 second'");
    taken = b->AcquireLock("db:main", "run-b");
  }
  REQUIRE(taken.ok());
  CHECK(std::stoll(site.db().Value("SELECT token FROM runbook.leases")) > std::stoll(token));

  // The old holder finds out at its next transition, before acting.
  StepRecord next = MakeStep("run-a", "next");
  Status s = a->PutStep(&next, nullptr, /*durable=*/false);
  REQUIRE(!s.ok());
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("lease was taken over by run run-b") != std::string::npos);
  CHECK(a->UpdateRun("run-a", RunStatus::kFailed, "x").code() == Status::Code::kUnavailable);
  CHECK(a->AppendEvent(Event{0, "run-a", "", 1, "run.note", ""}).code() ==
        Status::Code::kUnavailable);
  CHECK(site.db().Value("SELECT count(*) FROM runbook.steps WHERE step_id = 'next'") == "0");
  CHECK(site.db().Value("SELECT status FROM runbook.runs WHERE id = 'run-a'") == "running");

  // Releasing the lost lease leaves the new holder's alone.
  held->reset();
  CHECK(site.db().Value("SELECT run_id FROM runbook.leases") == "run-b");
  CHECK(a->LockHeld("db:main"));
}

TEST_CASE(
    "postgresql store: a holder on this machine whose process is gone is not waited for; "
    "a host name alone proves nothing",
    "[state][postgres][lock]") {
  PostgresSite site;
  auto store = site.Open();
  auto seed = [&](const std::string& liveness) {
    site.db().Exec("DELETE FROM runbook.leases; INSERT INTO runbook.leases VALUES ('k', 'old', '" +
                   Host() + " 42', '" + liveness +
                   "', nextval('runbook.lease_tokens'), now() + interval '1 hour')");
  };
  // "BOOT NS" of this machine (boot id and pid namespace).
  std::string mine = ProcessLiveness(getpid());
  mine = mine.substr(0, mine.find(' ', mine.find(' ') + 1));
  auto taken_by_new = [&](const std::string& liveness) {
    seed(liveness);
    INFO(liveness);
    CHECK_FALSE(store->LockHeld("k"));
    auto taken = store->AcquireLock("k", "new");
    REQUIRE(taken.ok());
    CHECK(site.db().Value("SELECT run_id FROM runbook.leases") == "new");
  };
  taken_by_new(mine + " " + std::to_string(DeadPid()) + " 12345");  // gone
  taken_by_new(mine + " 1 999999999");  // pid 1 is another process now (pid reused)

  // A live process, one of another machine or pid namespace (the same host
  // name: a cloned machine, a pod re-created elsewhere), or one we cannot
  // read is waited for.
  for (const std::string& liveness :
       {ProcessLiveness(1), std::string("another-boot 4026531836 1 1"), std::string("garbage")}) {
    seed(liveness);
    INFO(liveness);
    CHECK(store->LockHeld("k"));
    auto refused = store->AcquireLock("k", "new");
    REQUIRE(!refused.ok());
    CHECK(refused.status().message().find("held by run old (" + Host() + " 42;") !=
          std::string::npos);
  }
}

TEST_CASE(
    "postgresql store: a schema \"runbook\" a DBA created empty is used; a long lock key "
    "is hashed",
    "[state][postgres][lock]") {
  PostgresSite site;
  site.db().Exec("CREATE SCHEMA runbook");
  auto store = site.Open();
  CHECK(site.db().Value("SELECT schema_version FROM runbook.meta") == "1");
  const std::string key(5000, 'k');
  auto held = store->AcquireLock(key, "r1");
  INFO(held.status().message());
  REQUIRE(held.ok());
  CHECK(std::stoi(site.db().Value("SELECT length(key) FROM runbook.leases")) < 200);
  auto other = site.Open();
  CHECK(other->LockHeld(key));
  CHECK_FALSE(other->LockHeld(std::string(5000, 'j')));
}

TEST_CASE("state locations: a mistyped URI is refused, libpq's keyword form is PostgreSQL",
          "[state][postgres]") {
  PostgresSite site;
  StoreDir dir;
  for (const std::string& bad : {"postgresq://u:secret@h/db", "mysql://u@h/db"}) {
    auto refused = StateStore::Open(dir.path + "/" + bad);
    REQUIRE(!refused.ok());
    CHECK(refused.status().message().find("secret") == std::string::npos);
  }
  CHECK(std::filesystem::is_empty(dir.path));
  CHECK(IsPostgresLocation("POSTGRESQL://h/db"));
  std::string upper = site.Location();
  upper.replace(0, strlen("postgresql"), "PostgreSQL");
  auto opened = StateStore::Open(upper);  // the scheme in any case, as IsPostgresLocation says
  INFO(opened.status().message());
  CHECK(opened.ok());
  CHECK(IsPostgresLocation("service=runbook"));
  CHECK_FALSE(IsPostgresLocation("/var/lib/runbook/state.db"));
  const PgServer& server = site.db().server();
  auto store = StateStore::Open("host=" + server.host + " port=" + std::to_string(server.port) +
                                " dbname=" + site.db().name() + " user=" + server.superuser +
                                " password='" + server.password + "'");
  INFO(store.status().message());
  REQUIRE(store.ok());
  CHECK((*store)->path().find(server.password) == std::string::npos);
  CHECK(PostgresPassword(site.Location()) == server.password);
  // The scheme in any case, as the store opens it: the password is still
  // found (to redact it, and to keep it from the engine's children).
  CHECK(PostgresPassword("PostgreSQL://u:Pw%40x@h/db") == "Pw@x");
  CHECK(ShownPostgresLocation("POSTGRES://u:Pw@h:5/db") == "postgresql://u@h:5/db");
}

TEST_CASE("postgresql store: after a server restart the next read and write reconnect",
          "[state][postgres]") {
  PostgresSite site;
  auto store = site.Open();
  REQUIRE(store->CreateRun(MakeRun("r1")).ok());
  site.db().server().Stop();
  site.db().server().Start();
  StepRecord step = MakeStep("r1", "after");
  Status s = store->PutStep(&step);
  INFO(s.message());
  CHECK(s.ok());
  site.db().server().Stop();
  site.db().server().Start();
  auto steps = store->GetSteps("r1");
  INFO(steps.status().message());
  REQUIRE(steps.ok());
  CHECK(steps->size() == 1);
}

}  // namespace runbook
