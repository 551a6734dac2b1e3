// The kube executor of `runbook fleet`: each target a Kubernetes Job whose
// pod runs `runbook fleet-target` against the shared (PostgreSQL) state
// store. The pod decides from the store whether its target's run is new or
// is resumed, so a pod lost with its node comes back (the Job makes another)
// and continues the run instead of starting a second one.
//
// What a Job carries: the runbook and its includes (a Secret per fleet,
// `sources.json`: paths relative to the runbook's directory; a Secret, as a
// runbook may hold a literal password), the target's params (a Secret per
// target and attempt, owned by its Job and deleted once it ends), the
// state store's URI (a Secret the operator made: --state-secret). Nothing
// secret is on the Job's spec or its command line. kubectl is run with
// argv only; every name on it is ours or glued to its option (--namespace=).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/process.h"
#include "engine/core/status.h"
#include "engine/core/value.h"
#include "engine/model/model.h"

namespace runbook {

struct KubeExecutorOptions {
  std::string image;                // any image with the runbook binary
  std::string command = "runbook";  // the binary in the image
  std::string namespace_;           // empty: the kubeconfig's
  std::string context;              // empty: the kubeconfig's current one
  std::string state_secret;         // NAME or NAME/KEY (key default "uri")
  std::string service_account;
  int backoff_limit = 6;  // pods lost (not counting disruptions) before the Job fails
  std::map<std::string, std::string> pod_annotations;
  std::chrono::milliseconds poll{1000};
  // A pod that cannot start (a missing Secret, an image not pulled) this
  // long ends its Job, failing the target.
  std::chrono::milliseconds stuck_after{std::chrono::minutes(3)};

  Value ToValue() const;
  static Result<KubeExecutorOptions> FromValue(const Value& v);
  // Checks what a fleet needs before it starts anything.
  Status Check() const;
};

// The runbook's files as a pod lays them out: `files` keyed by path
// relative to the main runbook's directory.
struct PodSources {
  std::string main;  // relative path of the runbook
  std::map<std::string, std::string> files;

  std::string Json() const;
  // Where a pod lays them out: /tmp/runbook-fleet/<hash of Json()>, the
  // same for every pod and every restart, so a resumed run finds its
  // runbook where its record says (and the fleet knows the runs' digest).
  std::string Root() const;
  // The digest a run in a pod records (RunbookDigest of the laid-out files).
  std::string Digest() const;
};

// The runbook and its includes; an include outside the runbook's directory
// or sources over the size an environment variable holds are refused.
Result<PodSources> PodSourcesOf(const Runbook& rb);
// Pod side: parses RUNBOOK_FLEET_SOURCES and writes the files under Root()
// (private directories; a file already there with the same text is kept).
// Returns the main runbook's path.
Result<std::string> LayOutPodSources(const std::string& json);

// The outcome of a target's Job.
struct JobOutcome {
  int exit_code = -1;        // of its last pod; -1 unknown
  std::string job;           // the Job's name
  std::string note;          // why it ended when that is not in the exit code
  bool interrupted = false;  // the fleet stopped waiting (the Job goes on)
};

class KubeJobs {
 public:
  KubeJobs(KubeExecutorOptions options, std::string fleet_id, ProcessRunner& runner)
      : o_(std::move(options)), fleet_(std::move(fleet_id)), runner_(runner) {}

  // Checks that the state Secret and its key exist (before anything is
  // made), then creates (or replaces) the fleet's Secret of sources.
  Status CheckStateSecret();
  Status Prepare(const PodSources& sources);
  // Deletes the fleet's Secret of sources (no Job of it runs).
  void Cleanup();
  // Runs target `index` (1-based, its record's) as a Job, or waits for
  // `active`, the Job already running it (a resumed fleet), until it ends or
  // `interrupted` is set. `params_yaml` reaches the pod through a Secret;
  // `flags` are added to the pod's command (--dry-run, --yes, ...).
  Result<JobOutcome> Run(size_t index, int attempt, const std::string& target,
                         const std::string& params_yaml, const std::vector<std::string>& flags,
                         const std::atomic<bool>& interrupted, const std::string& active);
  // The name of target `index`'s Job still running (no Complete or Failed
  // condition), or "".
  Result<std::string> ActiveJob(size_t index);

  std::string JobName(size_t index, int attempt) const;
  std::string SourcesName() const;
  // The Job's manifest (public for its unit test).
  Value JobManifest(size_t index, int attempt, const std::string& target,
                    const std::vector<std::string>& flags) const;

 private:
  Result<ProcessResult> Kubectl(std::vector<std::string> args,
                                const std::optional<std::string>& stdin_data = std::nullopt);
  Status Create(const Value& manifest, bool replace);
  Status Delete(const std::string& kind, const std::string& name);
  Result<JobOutcome> Wait(const std::string& job, const std::atomic<bool>& interrupted);
  Result<Value> GetJson(std::vector<std::string> args);
  // `job` as the last poll of all the fleet's Jobs saw it (null: not seen);
  // one poll per interval, shared by the workers whatever their number.
  Result<Value> PolledJob(const std::string& job);

  KubeExecutorOptions o_;
  std::string fleet_;
  ProcessRunner& runner_;

  std::mutex poll_mu_;  // guards what follows
  bool polled_ = false;
  std::chrono::steady_clock::time_point polled_at_;
  Status poll_error_;
  std::map<std::string, Value> jobs_;
};

}  // namespace runbook
