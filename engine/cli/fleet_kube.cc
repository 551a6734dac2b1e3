#include "engine/cli/fleet_kube.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <thread>

#include "engine/core/sha256.h"
#include "engine/core/text.h"
#include "engine/exec/executor.h"

namespace runbook {
namespace fs = std::filesystem;

namespace {

// An environment string holds at most 128 KiB (MAX_ARG_STRLEN): the
// sources travel in one, with room for its name.
constexpr size_t kMaxSourcesJson = 120 * 1024;

// Where pods lay out a fleet's files: fixed, since the runs record their
// paths (in their digest) and the fleet predicts them.
constexpr char kPodDir[] = "/tmp/runbook-fleet";

// Creates each missing directory of `dir` with mode 0700.
Status MakeDirs(const std::string& dir) {
  std::string at;
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    at = dir.substr(0, i);
    if (mkdir(at.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Internal("cannot create " + at + ": " + strerror(errno));
    }
  }
  return Status::Ok();
}

// Writes `text` to `path` unless it already holds exactly that (a file
// another pod of the fleet laid out: replaced atomically if it differs).
Status WriteFileOnce(const std::string& path, const std::string& text) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    FILE* f = fopen(path.c_str(), "rb");
    if (f) {
      std::string have;
      char buf[8192];
      size_t n;
      while ((n = fread(buf, 1, sizeof(buf), f)) > 0) have.append(buf, n);
      fclose(f);
      if (have == text) return Status::Ok();
    }
  }
  std::string tmp = path + ".XXXXXX";
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Status::Internal("cannot write " + path + ": " + strerror(errno));
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status::Internal("cannot write " + path + ": " + strerror(errno));
  }
  return Status::Ok();
}

// A relative path that stays below its root.
bool SafeRelative(const std::string& rel) {
  if (rel.empty() || rel[0] == '/') return false;
  for (const auto& part : fs::path(rel)) {
    if (part == ".." || part == ".") return false;
  }
  return true;
}

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

bool HasCondition(const Value& job, const char* type) {
  const Value* conds = nullptr;
  if (job.contains("status") && job["status"].contains("conditions")) {
    conds = &job["status"]["conditions"];
  }
  if (!conds || !conds->is_array()) return false;
  for (const Value& c : *conds) {
    if (c.value("type", "") == type && c.value("status", "") == "True") return true;
  }
  return false;
}

std::string ConditionMessage(const Value& job, const char* type) {
  for (const Value& c : job["status"]["conditions"]) {
    if (c.value("type", "") == type) return c.value("reason", "") + ": " + c.value("message", "");
  }
  return "";
}

// The state Secret's name and key (NAME or NAME/KEY).
std::pair<std::string, std::string> StateSecretRef(const std::string& spec) {
  const size_t slash = spec.find('/');
  if (slash == std::string::npos) return {spec, "uri"};
  return {spec.substr(0, slash), spec.substr(slash + 1)};
}

}  // namespace

Value KubeExecutorOptions::ToValue() const {
  return {{"image", image},
          {"command", command},
          {"namespace", namespace_},
          {"context", context},
          {"state_secret", state_secret},
          {"service_account", service_account},
          {"backoff_limit", backoff_limit},
          {"pod_annotations", pod_annotations}};
}

Result<KubeExecutorOptions> KubeExecutorOptions::FromValue(const Value& v) {
  KubeExecutorOptions o;
  try {
    o.image = v.at("image").get<std::string>();
    o.command = v.at("command").get<std::string>();
    o.namespace_ = v.at("namespace").get<std::string>();
    o.context = v.at("context").get<std::string>();
    o.state_secret = v.at("state_secret").get<std::string>();
    o.service_account = v.value("service_account", "");
    o.backoff_limit = v.at("backoff_limit").get<int>();
    o.pod_annotations = v.value("pod_annotations", std::map<std::string, std::string>{});
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("the fleet's kube executor record: ") + e.what());
  }
  return o;
}

Status KubeExecutorOptions::Check() const {
  if (image.empty()) return Status::Invalid("--executor kube needs --image");
  if (state_secret.empty()) {
    return Status::Invalid(
        "--executor kube needs --state-secret NAME[/KEY]: a Secret in the Jobs' namespace whose "
        "key (default uri) holds the state store's URI as the pods reach it");
  }
  if (command.empty()) return Status::Invalid("--pod-command is empty");
  // Names the API would refuse only once the fleet has begun.
  auto dns = [](const std::string& v, size_t max) {
    if (v.empty() || v.size() > max || !isalnum(static_cast<unsigned char>(v.front())) ||
        !isalnum(static_cast<unsigned char>(v.back()))) {
      return false;
    }
    return std::all_of(v.begin(), v.end(), [](char c) {
      return islower(static_cast<unsigned char>(c)) || isdigit(static_cast<unsigned char>(c)) ||
             c == '-' || c == '.';
    });
  };
  const auto [secret, key] = StateSecretRef(state_secret);
  if (!dns(secret, 253) || key.empty() || key.find('/') != std::string::npos) {
    return Status::Invalid("--state-secret " + state_secret +
                           ": NAME or NAME/KEY, NAME a Secret's name (lower case letters, digits, "
                           "'-', '.')");
  }
  if (!namespace_.empty() && !dns(namespace_, 63)) {
    return Status::Invalid("--namespace " + namespace_ + ": not a namespace name");
  }
  if (!service_account.empty() && !dns(service_account, 253)) {
    return Status::Invalid("--service-account " + service_account + ": not a service account name");
  }
  for (const std::string* s :
       {&image, &command, &namespace_, &context, &state_secret, &service_account}) {
    if (s->find_first_of("\n\r\t ") != std::string::npos) {
      return Status::Invalid("kube executor option '" + *s + "' holds white space");
    }
  }
  if (backoff_limit < 0 || backoff_limit > 1000) {
    return Status::Invalid("--backoff-limit is from 0 to 1000");
  }
  return Status::Ok();
}

std::string PodSources::Json() const {
  Value files_v = Value::object();
  for (const auto& [rel, text] : files) files_v[rel] = text;
  return Value{{"main", main}, {"files", files_v}}.dump();
}

std::string PodSources::Root() const {
  return std::string(kPodDir) + "/" + Sha256Hex(Json()).substr(0, 16);
}

std::string PodSources::Digest() const {
  std::map<std::string, std::string> laid;
  for (const auto& [rel, text] : files) laid[Root() + "/" + rel] = text;
  return SourcesDigest(laid);
}

Result<PodSources> PodSourcesOf(const Runbook& rb) {
  std::error_code ec;
  const fs::path main = fs::weakly_canonical(fs::absolute(rb.path), ec);
  const fs::path dir = main.parent_path();
  PodSources out;
  out.main = main.filename().string();
  const Value sources = RunbookSources(rb);
  for (const auto& [path, text] : sources.items()) {
    const std::string rel = fs::path(path).lexically_relative(dir).string();
    if (!SafeRelative(rel)) {
      return Status::Invalid("--executor kube: " + path + " (included) is outside " + dir.string() +
                             ": the Jobs carry the runbook's directory only; move the include "
                             "below it");
    }
    out.files[rel] = text.get<std::string>();
  }
  if (out.Json().size() > kMaxSourcesJson) {
    return Status::Invalid("--executor kube: the runbook and its includes take " +
                           std::to_string(out.Json().size() / 1024) +
                           " KiB; a Job carries at most 120 KiB (an environment variable)");
  }
  return out;
}

Result<std::string> LayOutPodSources(const std::string& json) {
  PodSources s;
  try {
    const Value v = Value::parse(json);
    s.main = v.at("main").get<std::string>();
    for (const auto& [rel, text] : v.at("files").items()) s.files[rel] = text.get<std::string>();
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("RUNBOOK_FLEET_SOURCES: not the fleet's sources (") +
                           e.what() + ")");
  }
  if (!s.files.count(s.main)) return Status::Invalid("RUNBOOK_FLEET_SOURCES: no main runbook");
  const std::string root = s.Root();
  for (const auto& [rel, text] : s.files) {
    if (!SafeRelative(rel)) {
      return Status::Invalid("RUNBOOK_FLEET_SOURCES: path '" + rel + "' leaves its directory");
    }
    const std::string path = root + "/" + rel;
    if (Status st = MakeDirs(fs::path(path).parent_path().string()); !st.ok()) return st;
    if (Status st = WriteFileOnce(path, text); !st.ok()) return st;
  }
  return root + "/" + s.main;
}

std::string KubeJobs::SourcesName() const { return "runbook-" + fleet_; }

std::string KubeJobs::JobName(size_t index, int attempt) const {
  return "runbook-" + fleet_ + "-" + std::to_string(index) + "-" + std::to_string(attempt);
}

Result<ProcessResult> KubeJobs::Kubectl(std::vector<std::string> args,
                                        const std::optional<std::string>& stdin_data) {
  ProcessSpec spec;
  spec.argv = {"kubectl"};
  if (!o_.context.empty()) spec.argv.push_back("--context=" + o_.context);
  if (!o_.namespace_.empty()) spec.argv.push_back("--namespace=" + o_.namespace_);
  spec.argv.push_back("--request-timeout=30s");
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.stdin_data = stdin_data;
  spec.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  spec.max_output = 64 << 20;
  Result<ProcessResult> r = runner_.Run(spec);
  if (!r.ok()) return Status::Internal("kubectl: " + r.status().message());
  return r;
}

Result<Value> KubeJobs::GetJson(std::vector<std::string> args) {
  args.push_back("-o");
  args.push_back("json");
  Result<ProcessResult> r = Kubectl(std::move(args));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::Unavailable("kubectl get: " + LastLine(r->err.empty() ? r->out : r->err));
  }
  try {
    return Value::parse(r->out);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("kubectl get: not JSON (") + e.what() + ")");
  }
}

Status KubeJobs::Create(const Value& manifest, bool replace) {
  Result<ProcessResult> r = Kubectl({"create", "-f", "-", "-o", "name"}, manifest.dump());
  if (!r.ok()) return r.status();
  if (r->exit_code == 0) return Status::Ok();
  if (replace && r->err.find("AlreadyExists") != std::string::npos) {
    r = Kubectl({"replace", "-f", "-", "-o", "name"}, manifest.dump());
    if (!r.ok()) return r.status();
    if (r->exit_code == 0) return Status::Ok();
  }
  return Status::Unavailable("kubectl create " + manifest.value("kind", "") + " " +
                             manifest["metadata"].value("name", "") + ": " + LastLine(r->err));
}

Status KubeJobs::Delete(const std::string& kind, const std::string& name) {
  Result<ProcessResult> r = Kubectl({"delete", kind, name, "--ignore-not-found", "--wait=false"});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::Unavailable("kubectl delete " + kind + " " + name + ": " + LastLine(r->err));
  }
  return Status::Ok();
}

Status KubeJobs::CheckStateSecret() {
  const auto [name, key] = StateSecretRef(o_.state_secret);
  Result<Value> secret = GetJson({"get", "secret", name});
  if (!secret.ok()) {
    return Status::Invalid("--state-secret " + o_.state_secret + ": " + secret.status().message());
  }
  if (!secret->contains("data") || !(*secret)["data"].contains(key)) {
    return Status::Invalid("--state-secret " + o_.state_secret + ": Secret " + name +
                           " has no key '" + key +
                           "' (the state store's URI, as the pods reach "
                           "it)");
  }
  return Status::Ok();
}

Status KubeJobs::Prepare(const PodSources& sources) {
  const Value secret = {
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"metadata",
       {{"name", SourcesName()},
        {"labels", {{"app.kubernetes.io/managed-by", "runbook"}, {"runbook.dev/fleet", fleet_}}}}},
      {"type", "Opaque"},
      {"stringData", {{"sources.json", sources.Json()}}}};
  return Create(secret, true);
}

void KubeJobs::Cleanup() { (void)Delete("secret", SourcesName()); }

Value KubeJobs::JobManifest(size_t index, int attempt, const std::string& target,
                            const std::vector<std::string>& flags) const {
  const std::string name = JobName(index, attempt);
  const Value labels = {{"app.kubernetes.io/managed-by", "runbook"},
                        {"runbook.dev/fleet", fleet_},
                        {"runbook.dev/target-index", std::to_string(index)}};
  const auto [secret, key] = StateSecretRef(o_.state_secret);
  Value env = Value::array();
  env.push_back({{"name", "RUNBOOK_STATE"},
                 {"valueFrom", {{"secretKeyRef", {{"name", secret}, {"key", key}}}}}});
  env.push_back(
      {{"name", "RUNBOOK_FLEET_SOURCES"},
       {"valueFrom", {{"secretKeyRef", {{"name", SourcesName()}, {"key", "sources.json"}}}}}});
  env.push_back({{"name", "RUNBOOK_FLEET_PARAMS"},
                 {"valueFrom", {{"secretKeyRef", {{"name", name}, {"key", "params.yaml"}}}}}});
  if (const char* lease = getenv("RUNBOOK_LEASE_SECONDS"); lease && *lease) {
    env.push_back({{"name", "RUNBOOK_LEASE_SECONDS"}, {"value", lease}});
  }
  // The target's name glued to its option: a name starting with '-' is
  // never taken for one.
  Value command = {o_.command, "fleet-target", "--fleet=" + fleet_, "--target=" + target};
  for (const std::string& f : flags) command.push_back(f);
  command.push_back("--no-color");
  // shareProcessNamespace: the engine is not the container's PID 1, which
  // ignores SIGTERM and reaps nothing; a drained node's SIGTERM stops it at
  // once, its journal intact, and the next pod resumes.
  Value pod_spec = {
      {"restartPolicy", "Never"},
      {"shareProcessNamespace", true},
      {"containers",
       {{{"name", "runbook"}, {"image", o_.image}, {"command", command}, {"env", env}}}}};
  if (!o_.service_account.empty()) pod_spec["serviceAccountName"] = o_.service_account;
  Value pod_meta = {{"labels", labels}};
  if (!o_.pod_annotations.empty()) pod_meta["annotations"] = o_.pod_annotations;
  // A pod lost with its node (a disruption) is made again without counting
  // against backoffLimit; a pod whose engine ended with its own exit code
  // (failed, paused, outside its window, ...: 1-3, 5, 6) ends the Job:
  // only the engine decides whether a run goes on. A pod killed otherwise
  // (OOM, 137), whose engine could not begin (70: the store away), or found
  // the run lock held (4: the lease of a pod lost before it made its run
  // record lasts 30 s) counts, and is made again (after Kubernetes' growing
  // delay) up to the limit.
  const Value policy = {
      {"rules",
       {{{"action", "Ignore"}, {"onPodConditions", {{{"type", "DisruptionTarget"}}}}},
        {{"action", "FailJob"},
         {"onExitCodes",
          {{"containerName", "runbook"}, {"operator", "In"}, {"values", {1, 2, 3, 5, 6}}}}}}}};
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata",
           {{"name", name}, {"labels", labels}, {"annotations", {{"runbook.dev/target", target}}}}},
          {"spec",
           {{"backoffLimit", o_.backoff_limit},
            {"podFailurePolicy", policy},
            {"template", {{"metadata", pod_meta}, {"spec", pod_spec}}}}}};
}

Result<std::string> KubeJobs::ActiveJob(size_t index) {
  Result<Value> jobs = GetJson(
      {"get", "jobs", "-l",
       "runbook.dev/fleet=" + fleet_ + ",runbook.dev/target-index=" + std::to_string(index)});
  if (!jobs.ok()) return jobs.status();
  for (const Value& j : (*jobs)["items"]) {
    if (!HasCondition(j, "Complete") && !HasCondition(j, "Failed")) {
      return j["metadata"].value("name", "");
    }
  }
  return std::string();
}

Result<JobOutcome> KubeJobs::Run(size_t index, int attempt, const std::string& target,
                                 const std::string& params_yaml,
                                 const std::vector<std::string>& flags,
                                 const std::atomic<bool>& interrupted, const std::string& active) {
  std::string job = active;
  if (job.empty()) {
    job = JobName(index, attempt);
    const Value secret = {
        {"apiVersion", "v1"},
        {"kind", "Secret"},
        {"metadata",
         {{"name", job},
          {"labels",
           {{"app.kubernetes.io/managed-by", "runbook"}, {"runbook.dev/fleet", fleet_}}}}},
        {"type", "Opaque"},
        {"stringData", {{"params.yaml", params_yaml}}}};
    const Value manifest = JobManifest(index, attempt, target, flags);
    // Both in one kubectl (names are new for each attempt). Neither is left
    // without the other: a Job without its Secret would wait forever.
    Result<ProcessResult> r =
        Kubectl({"create", "-f", "-", "-o", "json"}, secret.dump() + "\n" + manifest.dump() + "\n");
    if (!r.ok()) return r.status();
    // What it made (a List of both, or one object when the other failed).
    bool secret_made = false, job_made = false;
    Value job_uid;
    try {
      const Value made = Value::parse(r->out.empty() ? "{}" : r->out);
      const Value items = made.value("kind", "") == "List" ? made["items"] : Value::array({made});
      for (const Value& m : items) {
        if (!m.is_object() || !m.contains("metadata")) continue;
        secret_made |= m.value("kind", "") == "Secret";
        if (m.value("kind", "") == "Job") {
          job_made = true;
          job_uid = m["metadata"].value("uid", "");
        }
      }
    } catch (const std::exception&) {
      // Not JSON: neither is known made; both are deleted if there.
      secret_made = job_made = r->exit_code == 0;
    }
    if (r->exit_code != 0 || !secret_made || !job_made) {
      if (job_made) (void)Delete("job", job);
      if (secret_made) (void)Delete("secret", job);
      return Status::Unavailable("kubectl create job " + job + ": " +
                                 LastLine(r->err.empty() ? r->out : r->err));
    }
    // The params Secret belongs to its Job: whoever deletes the Job (a
    // person, its TTL) deletes it too, also when no fleet saw it end.
    if (job_uid.is_string() && !job_uid.get<std::string>().empty()) {
      const Value owner = {
          {"metadata",
           {{"ownerReferences",
             {{{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"name", job}, {"uid", job_uid}}}}}}};
      (void)Kubectl({"patch", "secret", job, "--type=merge", "-p", owner.dump()});
    }
  }
  Result<JobOutcome> out = Wait(job, interrupted);
  // The params (maybe secret) outlive the Job only while a pod may need them.
  if (out.ok() && !out->interrupted) (void)Delete("secret", job);
  return out;
}

Result<Value> KubeJobs::PolledJob(const std::string& job) {
  std::lock_guard<std::mutex> lock(poll_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!polled_ || now - polled_at_ >= o_.poll) {
    Result<Value> jobs = GetJson({"get", "jobs", "-l", "runbook.dev/fleet=" + fleet_});
    polled_ = true;
    polled_at_ = now;
    poll_error_ = jobs.ok() ? Status::Ok() : jobs.status();
    jobs_.clear();
    if (jobs.ok()) {
      for (Value& j : (*jobs)["items"]) {
        const std::string name = j["metadata"].value("name", "");  // before j is moved
        jobs_[name] = std::move(j);
      }
    }
  }
  if (!poll_error_.ok()) return poll_error_;
  auto it = jobs_.find(job);
  return it == jobs_.end() ? Value() : it->second;
}

// Why a pod of the Job cannot start and will not by itself (a missing
// Secret or key, an image that cannot be pulled), or "".
static std::string StuckReason(const Value& pods) {
  static const std::set<std::string> kStuck = {"CreateContainerConfigError", "ErrImagePull",
                                               "ImagePullBackOff", "InvalidImageName",
                                               "CreateContainerError"};
  for (const Value& p : pods["items"]) {
    if (!p.contains("status") || p["status"].value("phase", "") != "Pending" ||
        !p["status"].contains("containerStatuses")) {
      continue;
    }
    for (const Value& c : p["status"]["containerStatuses"]) {
      if (!c.contains("state") || !c["state"].contains("waiting")) continue;
      const std::string reason = c["state"]["waiting"].value("reason", "");
      if (kStuck.count(reason)) {
        return "pod " + p["metadata"].value("name", "") + ": " + reason + ": " +
               c["state"]["waiting"].value("message", "");
      }
    }
  }
  return "";
}

Result<JobOutcome> KubeJobs::Wait(const std::string& job, const std::atomic<bool>& interrupted) {
  JobOutcome out;
  out.job = job;
  int errors = 0, polls = 0;
  std::string stuck;  // a pod that cannot start, since `stuck_since`
  auto stuck_since = std::chrono::steady_clock::now();
  Value j;
  for (;;) {
    if (interrupted) {
      out.interrupted = true;
      return out;
    }
    Result<Value> got = PolledJob(job);
    if (got.ok() && !got->is_null()) {
      errors = 0;
      j = *got;
      if (HasCondition(j, "Complete") || HasCondition(j, "Failed")) break;
    } else if (++errors >= 30) {  // the API away, or the Job gone, for 30 polls in a row
      return Status::Unavailable(
          "job " + job + ": " +
          (got.ok() ? "not found (deleted?)" : got.status().message() +
                                                   " (the Job goes on; runbook resume FLEET "
                                                   "waits for it again)"));
    }
    // A pod that cannot start waits for ever: said, and after a while the
    // Job is ended (the target fails with the pod's reason).
    if (++polls % 10 == 0) {
      Result<Value> pods = GetJson({"get", "pods", "-l", "job-name=" + job});
      const std::string reason = pods.ok() ? StuckReason(*pods) : "";
      if (reason.empty() || stuck.empty()) stuck_since = std::chrono::steady_clock::now();
      stuck = reason;
      if (!stuck.empty() && std::chrono::steady_clock::now() - stuck_since >= o_.stuck_after) {
        (void)Delete("job", job);
        out.note = stuck + " (its Job was deleted)";
        return out;
      }
    }
    std::this_thread::sleep_for(o_.poll);
  }
  // The exit code of the Job's engine: 0 for a Job that completed (only a
  // pod that exited 0 completes it; its record may be gone, as pods of
  // finished Jobs are garbage-collected), else that of the last pod to end
  // whose engine ended the Job (1-127: the podFailurePolicy's FailJob),
  // else that of a pod killed (128+N: the backoff limit was reached). And
  // how many pods were lost on the way, and what the deciding pod said.
  Result<Value> pods = GetJson({"get", "pods", "-l", "job-name=" + job});
  int engine = -1, killed = -1, lost = 0;
  std::string engine_at, engine_pod;  // finishedAt of the deciding pod, its name
  if (pods.ok()) {
    for (const Value& p : (*pods)["items"]) {
      if (!p.contains("status") || !p["status"].contains("containerStatuses")) continue;
      for (const Value& c : p["status"]["containerStatuses"]) {
        if (!c.contains("state") || !c["state"].contains("terminated")) continue;
        const Value& term = c["state"]["terminated"];
        const int code = term.value("exitCode", -1);
        const std::string at = term.value("finishedAt", "");
        if (code >= 128) {
          ++lost;
          killed = code;
        } else if (code > 0 && at >= engine_at) {
          engine = code;
          engine_at = at;
          engine_pod = p["metadata"].value("name", "");
        }
      }
    }
  }
  out.exit_code = HasCondition(j, "Complete") ? 0 : engine > 0 ? engine : killed;
  if (HasCondition(j, "Failed") && (out.exit_code < 0 || out.exit_code >= 128)) {
    out.note = "its Job failed (" + ConditionMessage(j, "Failed") + ")";
  }
  if (!engine_pod.empty() && out.exit_code == engine) {
    // What its engine said last (its stderr is in the pod's log).
    Result<ProcessResult> log = Kubectl({"logs", engine_pod});
    if (log.ok() && log->exit_code == 0) out.note = LastLine(log->out);
  }
  if (lost > 0) {
    out.note += std::string(out.note.empty() ? "" : "; ") + std::to_string(lost) +
                (lost == 1 ? " pod was" : " pods were") + " lost";
  }
  return out;
}

}  // namespace runbook
