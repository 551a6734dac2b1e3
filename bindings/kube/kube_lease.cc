// The run lock taken where a Kubernetes target is, so that engines with
// different state stores (two laptops, a laptop and CI) cannot act on the
// same namespace at once: a coordination.k8s.io/v1 Lease in the
// connection's namespace, the way Kubernetes' own leader election does it
// (client-go's leaderelection: holderIdentity, leaseDurationSeconds,
// renewTime; every write by resourceVersion). See README, "Locks".
//
// The Lease is named after the lock key (`runbook-lock-<readable>-<hash>`,
// the key itself in an annotation), renewed every third of its length by a
// thread of its own, and released (holder cleared, as client-go's
// ReleaseOnCancel does) when the run ends. An engine that could not renew it
// for two thirds of its length, or finds it taken, says so through Held():
// the executor then stops before the next step acts.
//
// Times in a Lease are the real clock's (std::chrono::system_clock), not
// Clock::Real()'s, which tests may shift: other engines read them. A Lease
// that looks expired is taken only after it stayed unchanged for its whole
// length as this engine watched it, so clocks that disagree cannot make a
// live holder's Lease look dead.
#include <time.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "bindings/kube/kube_target.h"
#include "bindings/kube/kubectl_client.h"
#include "engine/core/holder.h"
#include "engine/core/renewal.h"
#include "engine/core/sha256.h"

namespace runbook::kube {
namespace {

using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr char kKeyAnnotation[] = "runbook.dev/lock-key";
constexpr char kLeases[] = "leases.coordination.k8s.io";

SteadyTime SteadyNow() { return steady_clock::now(); }

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// RFC 3339 with microseconds, as a Lease's MicroTime fields are written.
std::string MicroTime(int64_t micros) {
  const time_t secs = static_cast<time_t>(micros / 1000000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char text[40];
  snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           static_cast<int>(micros % 1000000));
  return text;
}

// Microseconds since the epoch of an RFC 3339 time in UTC, or -1.
int64_t ParseMicroTime(const std::string& text) {
  struct tm tm {};
  int used = 0;
  if (sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
             &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t micros = 0;
  size_t at = static_cast<size_t>(used);
  if (at < text.size() && text[at] == '.') {
    int digits = 0;
    for (++at; at < text.size() && isdigit(static_cast<unsigned char>(text[at])); ++at) {
      if (digits++ < 6) micros = micros * 10 + (text[at] - '0');
    }
    for (; digits < 6; ++digits) micros *= 10;
  }
  if (text.substr(at) != "Z") return -1;
  return static_cast<int64_t>(timegm(&tm)) * 1000000 + micros;
}

// A write that is not retried: a conflict means another engine moved first,
// and the caller reads the Lease again to see who.
KubectlCall WriteCall(const char* verb, const Value& lease) {
  KubectlCall call;
  call.args = {verb, "-f", "-", "-o", "json"};
  call.stdin_data = lease.dump();
  call.retry_unsafe = false;
  call.max_attempts = 1;
  return call;
}

// `lease` held by `holder` from now on: taken (a new acquireTime, one more
// transition) or renewed.
Value HeldBy(Value lease, const std::string& holder, int secs, bool taken) {
  Value& spec = lease["spec"];
  const std::string now = MicroTime(WallMicros());
  spec["holderIdentity"] = holder;
  spec["leaseDurationSeconds"] = secs;
  spec["renewTime"] = now;
  if (taken) {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
  }
  return lease;
}

// A Lease as first written, for `name`: labels, the key as others may read it.
Value NewLease(const std::string& name, const std::string& shown_key) {
  return Value{{"apiVersion", "coordination.k8s.io/v1"},
               {"kind", "Lease"},
               {"metadata",
                {{"name", name},
                 {"labels", {{"app.kubernetes.io/managed-by", "runbook"}}},
                 {"annotations", {{kKeyAnnotation, shown_key}}}}},
               {"spec", Value::object()}};
}

// `secs` in milliseconds, so that its thirds and tenths are not rounded
// down to whole seconds (a tenth of 3 s is 300 ms, not 0).
std::chrono::milliseconds InMs(int secs) { return seconds(secs); }

// A call's time: a third of the length, at most 10 s (a hung API server
// must not hold a renewal, or the end of the run, for long).
SteadyTime CallDeadline(int secs) {
  return SteadyNow() + std::min<std::chrono::milliseconds>(InMs(secs) / 3, seconds(10));
}

class KubeLease : public TargetLock {
 public:
  KubeLease(KubeTarget target, TargetLockRequest req, int secs, Value lease, SteadyTime sent)
      : target_(std::move(target)),
        req_(std::move(req)),
        secs_(secs),
        lease_(std::move(lease)),
        renewed_(sent),
        renewal_(InMs(secs) / 3, [this] { return Renew(); }) {}

  ~KubeLease() override {
    renewal_.Stop();
    if (!lost_.ok()) return;
    // Released as client-go releases: no holder, a length of one second.
    // By resourceVersion, so a Lease another engine took meanwhile stays.
    Value free = lease_;
    free["spec"].erase("holderIdentity");
    free["spec"]["leaseDurationSeconds"] = 1;
    free["spec"]["renewTime"] = MicroTime(WallMicros());
    KubectlClient k(target_, ProcessRunner::Real(), Clock::Real(), SteadyNow() + seconds(5));
    k.Run(WriteCall("replace", free));
  }

  Status Held() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!lost_.ok()) return lost_;
    if (SteadyNow() - renewed_ > InMs(secs_) * 2 / 3) {
      return Status::Unavailable(Named() + " could not be renewed for " +
                                 std::to_string(secs_ * 2 / 3) +
                                 " s: another engine may take it from now on");
    }
    return Status::Ok();
  }

 private:
  std::string Named() const {
    return "the run lock '" + req_.shown_key + "' in " + target_.Where() + " (Lease " +
           lease_["metadata"].value("name", "") + ")";
  }

  // Every third of the length; after a failed attempt again soon (a tenth
  // of the length, at most 2 s as client-go retries); nothing once lost.
  std::optional<std::chrono::milliseconds> Renew() {
    const std::chrono::milliseconds soon =
        std::min<std::chrono::milliseconds>(seconds(2), InMs(secs_) / 10);
    Value mine;
    {
      std::lock_guard<std::mutex> lock(mu_);
      mine = lease_;
    }
    const SteadyTime sent = SteadyNow();  // the Lease runs from when it was sent
    KubectlClient k(target_, ProcessRunner::Real(), Clock::Real(), CallDeadline(secs_));
    Result<Value> put = k.RunJson(WriteCall("replace", HeldBy(mine, req_.holder, secs_, false)));
    const std::string name = mine["metadata"].value("name", "");
    Result<Value> now = put.ok() ? put : k.Get(kLeases, name);
    if (!now.ok() && now.status().message() == "not found") {
      // Deleted (a namespace made again, a person): written anew. Made by
      // someone else meanwhile (AlreadyExists): read again next time.
      now = k.RunJson(
          WriteCall("create", HeldBy(NewLease(name, req_.shown_key), req_.holder, secs_, true)));
      put = now;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (put.ok()) {
      lease_ = *put;
      renewed_ = sent;
      return InMs(secs_) / 3;
    }
    if (!now.ok()) return soon;  // unreachable for now: Held() says when it is too long
    const std::string by = (*now)["spec"].value("holderIdentity", "");
    if (by == req_.holder) {
      // Still this engine's. Changed by someone else (a label): again at
      // once with its version; else (a 5xx, no `update` right) after a pause.
      const bool moved = (*now)["metadata"].value("resourceVersion", "") !=
                         mine["metadata"].value("resourceVersion", "");
      lease_ = *now;
      return moved ? std::chrono::milliseconds(0) : soon;
    }
    lost_ = Status::Unavailable(
        Named() + " was taken by " +
        (by.empty()
             ? std::string("nobody (released)")
             : by + (SameRun(by, req_.holder) ? " (another engine of this run, which carries it on)"
                                              : "")));
    return std::nullopt;
  }

  const KubeTarget target_;
  const TargetLockRequest req_;
  const int secs_;
  mutable std::mutex mu_;  // guards what follows
  Value lease_;            // as last written by this engine
  SteadyTime renewed_;     // when that write was sent
  Status lost_;
  RenewalThread renewal_;  // last: started once the rest is ready
};

}  // namespace

std::string LeaseNameOf(const std::string& key, const std::string& shown_key) {
  std::string readable;
  for (unsigned char c : shown_key) {
    const char l = static_cast<char>(tolower(c));
    if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) {
      readable += l;
    } else if (!readable.empty() && readable.back() != '-') {
      readable += '-';
    }
    if (readable.size() >= 32) break;
  }
  while (!readable.empty() && readable.back() == '-') readable.pop_back();
  return "runbook-lock-" + (readable.empty() ? "" : readable + "-") + Sha256Hex(key).substr(0, 10);
}

Result<std::unique_ptr<TargetLock>> KubeConnectionType::LockTarget(
    const std::string& conn_name, const Value& config, const TargetLockRequest& req) const {
  Result<KubeTarget> target = KubeTargetFromConfig(conn_name, config);
  if (!target.ok()) return std::unique_ptr<TargetLock>();  // the first step using it says why
  const std::string& holder = req.holder;
  const std::string name = LeaseNameOf(req.key, req.shown_key);
  Result<std::chrono::seconds> length = LeaseLength();
  if (!length.ok()) return length.status();
  const int secs = static_cast<int>(length->count());
  const std::string lease = target->Where() + ", Lease " + name;
  const std::string where =
      "the run lock could not be taken on connection '" + conn_name + "' (" + lease + "): ";
  SteadyTime give_up = SteadyNow() + seconds(secs) + seconds(15);
  std::string watched;  // the resourceVersion of a Lease watched for its length, and since when
  SteadyTime watched_since;
  std::string failed_at = "-";  // the version a write failed against ("" : absent)
  Status failed;
  for (;;) {
    KubectlClient k(*target, ProcessRunner::Real(), Clock::Real(), CallDeadline(secs));
    Result<Value> got = k.Get(kLeases, name);
    if (!got.ok() &&
        (got.status().code() != Status::Code::kNotFound || got.status().message() != "not found")) {
      return Status::Failed(where + got.status().message());  // no namespace, forbidden, ...
    }
    const std::string version = got.ok() ? (*got)["metadata"].value("resourceVersion", "") : "";
    if (!failed.ok() && version == failed_at) {
      return Status::Failed(where + failed.message());  // the write failed, not for a race
    }
    if (SteadyNow() > give_up) {
      return Status::Failed(where + "it kept changing for " + std::to_string(secs + 15) + " s");
    }
    Value next;
    if (!got.ok()) {
      next = HeldBy(NewLease(name, req.shown_key), holder, secs, true);
    } else {
      const Value& spec = (*got)["spec"];
      const std::string by = spec.value("holderIdentity", "");
      if (by == holder) return std::unique_ptr<TargetLock>();  // this engine, another connection
      // Free, or the same run's (the state store gave this engine the run):
      // taken at once. Else only one that was not renewed for its whole
      // length while this engine watched, whatever its times say (clocks
      // disagree) and whoever it names (a host name may be another's too).
      if (!by.empty() && !SameRun(by, holder)) {
        const int64_t renewed =
            ParseMicroTime(spec.value("renewTime", spec.value("acquireTime", "")));
        const int64_t length = std::max<int64_t>(spec.value("leaseDurationSeconds", 0), 1);
        const bool expired = renewed >= 0 && renewed + length * 1000000 <= WallMicros();
        const bool changed = !watched.empty() && version != watched;
        if (changed || (!expired && !HolderGone(by))) {
          return Status::Unavailable(
              "run lock '" + req.shown_key + "' is held on connection '" + conn_name + "' (" +
              lease + ") by " + by +
              (renewed < 0 ? "" : ", renewed " + spec.value("renewTime", "")) +
              ": another engine, with another state store, is acting on this target");
        }
        if (watched.empty()) {  // expired by its times, or its engine is gone: watched
          watched = version;
          watched_since = SteadyNow();
          give_up = std::max(give_up, SteadyNow() + seconds(length) + seconds(15));
        }
        if (SteadyNow() - watched_since < seconds(length)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
          continue;
        }
      }
      next = HeldBy(*got, holder, secs, true);
      next["metadata"]["annotations"][kKeyAnnotation] = req.shown_key;
    }
    const SteadyTime sent = SteadyNow();
    Result<Value> put = k.RunJson(WriteCall(got.ok() ? "replace" : "create", next));
    if (put.ok()) {
      return std::unique_ptr<TargetLock>(new KubeLease(*target, req, secs, *put, sent));
    }
    failed = put.status();  // a race (read again) or not (the same version again)
    failed_at = version;
  }
}

}  // namespace runbook::kube
