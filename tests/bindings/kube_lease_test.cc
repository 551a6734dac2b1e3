// The run lock in a Kubernetes namespace (bindings/kube/kube_lease.cc): a
// coordination.k8s.io Lease, taken, refused, renewed, taken over and
// released, against the API simulator with the real kubectl.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>

#include "bindings/kube/kube_target.h"
#include "engine/core/holder.h"
#include "tests/fixtures/kube_fixture.h"

namespace runbook::kube {
namespace {

using std::chrono::seconds;

// Leases of 3 s (renewed every second) for the length of a test.
struct ShortLeases {
  ShortLeases() { setenv("RUNBOOK_LEASE_SECONDS", "3", 1); }
  ~ShortLeases() { unsetenv("RUNBOOK_LEASE_SECONDS"); }
};

std::string Name(const std::string& key);

struct LeaseCase {
  const testing::KubeSim& sim = testing::TheKubeSim();
  KubeConnectionType type;
  ShortLeases short_leases;
  LeaseCase() { sim.Reset(); }

  Value Config(const std::string& ns = "default") const {
    return Value{{"context", "sim"}, {"namespace", ns}, {"kubeconfig", sim.kubeconfig}};
  }
  Result<std::unique_ptr<TargetLock>> Lock(const std::string& holder,
                                           const std::string& key = "db:orders") const {
    return type.LockTarget("k8s", Config(), {key, key, holder});
  }
  Value Lease(const std::string& key = "db:orders") const {
    return sim.KubectlJson({"get", "lease", Name(key), "-n", "default", "-o", "json"});
  }
  // Writes the Lease as another engine would (by replace).
  void Put(Value lease) const {
    lease["metadata"].erase("managedFields");
    sim.Kubectl({"replace", "-n", "default", "-f", "-"}, lease.dump());
  }
};

std::string Name(const std::string& key) { return LeaseNameOf(key, key); }

std::string Holder(const std::string& run, const std::string& pid = "1") {
  return "runbook " + run + " " + pid + " abcdef elsewhere.example";
}

std::string Micro(std::chrono::system_clock::time_point t) {
  const time_t secs = std::chrono::system_clock::to_time_t(t);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char text[40];
  strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
  return text;
}

}  // namespace

TEST_CASE("a Lease's name is the lock key's letters and a hash, a valid object name",
          "[kube][lock]") {
  CHECK(Name("db:orders") == Name("db:orders"));
  CHECK(Name("db:orders") != Name("db:Orders"));  // same letters, another hash
  CHECK(Name("db:orders").rfind("runbook-lock-db-orders-", 0) == 0);
  CHECK(Name("--flag").rfind("runbook-lock-flag-", 0) == 0);  // never a leading '-'
  const std::string longest = Name(std::string(300, 'x') + "!");
  CHECK(longest.size() <= 63);
  CHECK(Name("ü/é").rfind("runbook-lock-", 0) == 0);
  // A key with a secret in it: only its redacted form is readable; the hash
  // still tells two secrets apart.
  const std::string secret_name = LeaseNameOf("db:s3cretvalue", "db:***");
  CHECK(secret_name.find("s3cret") == std::string::npos);
  CHECK(secret_name != LeaseNameOf("db:other", "db:***"));
  for (const std::string& key : {std::string("db:orders"), std::string("Ünïcode key"),
                                 std::string("--flag"), std::string(300, 'x'), std::string("")}) {
    const std::string n = Name(key);
    INFO(n);
    CHECK(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos);
    CHECK(n.back() != '-');
  }
}

TEST_CASE(
    "the run lock in a namespace: a Lease held by one engine keeps another run out, naming "
    "the holder; the same engine again takes nothing; the end of the run frees it",
    "[kube][lock]") {
  LeaseCase c;
  const std::string a = EngineHolder("run-a");
  auto first = c.Lock(a);
  REQUIRE(first.ok());
  REQUIRE(*first);
  Value lease = c.Lease();
  CHECK(lease["spec"]["holderIdentity"] == a);
  CHECK(lease["spec"]["leaseDurationSeconds"] == 3);
  CHECK(lease["metadata"]["annotations"]["runbook.dev/lock-key"] == "db:orders");
  CHECK(lease["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "runbook");

  // Another run (another store, another host): refused at once, naming who holds it.
  auto second = c.Lock(Holder("run-b"));
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Status::Code::kUnavailable);
  CHECK(second.status().message().find("held on connection 'k8s'") != std::string::npos);
  CHECK(second.status().message().find(a) != std::string::npos);
  // Another key is another Lease.
  auto other_key = c.Lock(Holder("run-b"), "db:billing");
  REQUIRE(other_key.ok());
  CHECK(*other_key);
  // This engine through a second connection to the same namespace: already its own.
  auto again = c.Lock(a);
  REQUIRE(again.ok());
  CHECK_FALSE(*again);

  // Renewed while held: renewTime moves, the holder stays, it stays held.
  const std::string renewed = lease["spec"]["renewTime"];
  std::this_thread::sleep_for(seconds(2));
  CHECK(c.Lease()["spec"]["renewTime"] != renewed);
  CHECK((*first)->Held().ok());

  first->reset();  // the run ends
  lease = c.Lease();
  CHECK_FALSE(lease["spec"].contains("holderIdentity"));
  auto third = c.Lock(Holder("run-c"));
  REQUIRE(third.ok());
  CHECK(*third);
  CHECK(c.Lease()["spec"]["leaseTransitions"] == 2);
}

TEST_CASE(
    "the same run's new engine takes the Lease over at once, and the engine before it learns "
    "at its next renewal that it lost it",
    "[kube][lock]") {
  LeaseCase c;
  const std::string old_engine = Holder("run-a", "101");
  auto first = c.Lock(old_engine);
  REQUIRE(first.ok());
  REQUIRE(*first);
  auto resumed = c.Lock(Holder("run-a", "202"));  // same run, another engine
  REQUIRE(resumed.ok());
  REQUIRE(*resumed);
  CHECK(c.Lease()["spec"]["holderIdentity"] == Holder("run-a", "202"));
  Status held;
  for (int i = 0; i < 50 && held.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    held = (*first)->Held();
  }
  CHECK(held.code() == Status::Code::kUnavailable);
  CHECK(held.message().find("was taken by " + Holder("run-a", "202")) != std::string::npos);
  first->reset();  // a lost Lease is not released by the engine that lost it
  CHECK(c.Lease()["spec"]["holderIdentity"] == Holder("run-a", "202"));
  CHECK((*resumed)->Held().ok());
}

TEST_CASE(
    "a Lease whose holder is an engine of this host that is gone, or whose times say it "
    "expired, is taken only after it stayed unchanged for its whole length",
    "[kube][lock]") {
  LeaseCase c;
  // A dead engine of this host, with a fresh renewTime: its pid is gone.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  const std::string gone = "runbook run-x " + std::to_string(dead) + " abcdef " + host;
  auto made = c.Lock(gone);
  REQUIRE(made.ok());
  REQUIRE(*made);
  made->reset();  // (released: holder cleared)
  Value lease = c.Lease();
  lease["spec"]["holderIdentity"] = gone;
  lease["spec"]["leaseDurationSeconds"] = 3;
  lease["spec"]["renewTime"] = Micro(std::chrono::system_clock::now());
  c.Put(lease);
  // (Renewed meanwhile, it would be refused: another machine may have the
  // same host name and a process with that pid.)
  auto gone_watch = std::async(std::launch::async, [&] { return c.Lock(Holder("run-y")); });
  std::this_thread::sleep_for(seconds(1));
  REQUIRE(gone_watch.wait_for(seconds(0)) == std::future_status::timeout);  // still watching
  auto taken = gone_watch.get();
  REQUIRE(taken.ok());
  CHECK(*taken);
  CHECK(c.Lease()["spec"]["holderIdentity"] == Holder("run-y"));
  taken->reset();

  // An engine elsewhere whose Lease ended a minute ago by the timestamps: this
  // engine watches it; the holder renews meanwhile (clocks disagree): refused.
  auto put_expired = [&](const std::string& holder) {
    Value l = c.Lease();
    l["spec"]["holderIdentity"] = holder;
    l["spec"]["leaseDurationSeconds"] = 3;
    l["spec"]["renewTime"] = Micro(std::chrono::system_clock::now() - seconds(60));
    c.Put(l);
  };
  put_expired(Holder("run-z"));
  auto watching = std::async(std::launch::async, [&] { return c.Lock(Holder("run-w")); });
  std::this_thread::sleep_for(seconds(1));
  REQUIRE(watching.wait_for(seconds(0)) == std::future_status::timeout);  // still watching
  Value renewed = c.Lease();
  renewed["spec"]["renewTime"] = Micro(std::chrono::system_clock::now() - seconds(59));
  c.Put(renewed);  // a live holder whose clock is a minute behind
  auto refused = watching.get();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Status::Code::kUnavailable);
  CHECK(refused.status().message().find(Holder("run-z")) != std::string::npos);

  // Left alone for its length: taken over, one more transition.
  put_expired(Holder("run-z"));
  const int64_t transitions = c.Lease()["spec"].value("leaseTransitions", 0);
  auto after = c.Lock(Holder("run-w"));
  REQUIRE(after.ok());
  REQUIRE(*after);
  CHECK(c.Lease()["spec"]["holderIdentity"] == Holder("run-w"));
  CHECK(c.Lease()["spec"]["leaseTransitions"] == transitions + 1);
}

TEST_CASE(
    "a renewal that fails once is tried again at once and the Lease stays held; a Lease "
    "deleted under a run is made again",
    "[kube][lock]") {
  LeaseCase c;
  setenv("RUNBOOK_LEASE_SECONDS", "6", 1);  // a failed attempt and its retry fit in 2 s
  auto lock = c.Lock(Holder("run-a"));
  REQUIRE(lock.ok());
  REQUIRE(*lock);
  c.sim.AddFault(
      {{"match", {{"method", "PUT"}, {"path_regex", "/leases/"}}}, {"status", 500}, {"count", 1}});
  for (int i = 0; i < 80; ++i) {  // four renewals' worth
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    INFO(i);
    REQUIRE((*lock)->Held().ok());
  }
  CHECK(c.sim.Faults()[0]["hits"] == 1);
  c.sim.Request("DELETE", "/_sim/faults");
  c.sim.Kubectl({"delete", "lease", Name("db:orders"), "-n", "default"});
  Value again;
  for (int i = 0; i < 100 && !again.is_object(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const Value& l : c.sim.Objects("coordination.k8s.io/leases")) again = l;
  }
  REQUIRE(again.is_object());
  CHECK(again["spec"]["holderIdentity"] == Holder("run-a"));
  CHECK((*lock)->Held().ok());
}

TEST_CASE(
    "a Lease that cannot be renewed for two thirds of its length is no longer held; a lock "
    "that cannot be taken at all is an error of its own, not 'held'",
    "[kube][lock]") {
  LeaseCase c;
  auto lock = c.Lock(Holder("run-a"));
  REQUIRE(lock.ok());
  REQUIRE(*lock);
  c.sim.AddFault(
      {{"match", {{"method", "PUT"}, {"path_regex", "/leases/"}}}, {"status", 500}, {"count", 0}});
  Status held;
  for (int i = 0; i < 80 && held.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    held = (*lock)->Held();
  }
  CHECK(held.code() == Status::Code::kUnavailable);
  CHECK(held.message().find("could not be renewed for 2 s") != std::string::npos);
  c.sim.Request("DELETE", "/_sim/faults");
  lock->reset();

  // No such namespace: not "held by" anyone, a failure naming the connection.
  auto nowhere =
      c.type.LockTarget("k8s", c.Config("no-such-ns"), {"db:orders", "db:orders", Holder("run-b")});
  REQUIRE_FALSE(nowhere.ok());
  CHECK(nowhere.status().code() != Status::Code::kUnavailable);
  CHECK(nowhere.status().message().find("could not be taken on connection 'k8s'") !=
        std::string::npos);
  // Creating it refused (RBAC in a real cluster): the same.
  c.sim.AddFault({{"match", {{"method", "POST"}, {"path_regex", "/leases"}}},
                  {"status", 403},
                  {"reason", "Forbidden"},
                  {"message", "leases.coordination.k8s.io is forbidden"},
                  {"count", 0}});
  auto forbidden = c.Lock(Holder("run-c"), "db:fresh");
  REQUIRE_FALSE(forbidden.ok());
  CHECK(forbidden.status().code() != Status::Code::kUnavailable);
  CHECK(forbidden.status().message().find("forbidden") != std::string::npos);
  c.sim.Request("DELETE", "/_sim/faults");
}

}  // namespace runbook::kube
