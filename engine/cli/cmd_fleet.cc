// runbook fleet: one runbook over many targets, in waves, each target an
// ordinary run (its own journal, lock, rollback and report) in a child
// process of this binary, with the same state store.
//
// Every target's params are checked against the runbook before anything
// starts; a child gets exactly those (its own params on stdin, as written in
// the targets file; the common ones it does not override as --param=). Run
// again with the same targets, the fleet decides for each target from its
// last run (one read of the store up front; a store that cannot be read
// starts nothing):
//   none, or rolled back with nothing kept         a new run
//   succeeded with the same params and runbook     skipped
//   succeeded with other params or runbook         a new run
//   interrupted, interrupted_rollback, paused      resumed
//   anything else (stopped, failed, rolled back to a boundary, rollback
//   failed, running elsewhere)                     left to a human: a failure
// A rehearsal fleet always rehearses anew.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/cli/cli.h"
#include "engine/cli/fleet_kube.h"
#include "engine/core/clock.h"
#include "engine/core/duration.h"
#include "engine/core/process.h"
#include "engine/core/renewal.h"
#include "engine/core/schema.h"
#include "engine/core/sha256.h"
#include "engine/exec/executor.h"
#include "engine/exec/reporter.h"
#include "engine/lua/runtime.h"
#include "engine/parser/validator.h"

namespace runbook {
namespace {

struct Target {
  std::string name;
  YAML::Node params;                // as written (a map, or null)
  std::string params_yaml;          // its own params, as written
  std::string child_yaml;           // what its run reads on stdin: those and the common ones
  Value resolved;                   // its params as the runbook sees them
};

struct Outcome {
  std::string status = "not started";  // succeeded, skipped, failed, paused, ...
  std::string run_id;
  std::string failed_step;
  std::string note;
  int64_t ms = 0;
  int wave = 0;
  bool failure = false;
  bool started = false;  // a run or resume was started for it this time

  // Its engine could not be started or followed: `why`.
  void Failed(const std::string& why) {
    status = "failed";
    failure = true;
    note = why;
  }
};

// Milliseconds from `start` until now.
int64_t MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

std::string At(const std::string& path, const YAML::Node& n) {
  return path + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
}

// The targets `root` lists: a list of {name, params}, or a map name ->
// params. `path` names it in errors (path:line:col).
Result<std::vector<Target>> TargetsOf(const YAML::Node& root, const std::string& path) {
  std::vector<std::pair<YAML::Node, YAML::Node>> entries;  // name node, params node
  if (root.IsSequence()) {
    for (const YAML::Node& t : root) {
      if (!t.IsMap() || !t["name"] || !t["name"].IsScalar()) {
        return Status::Invalid(At(path, t) + ": a target is a map with a name (and params)");
      }
      for (const auto& kv : t) {
        const std::string key = kv.first.Scalar();
        if (key != "name" && key != "params") {
          return Status::Invalid(At(path, kv.first) + ": unknown target field '" + key +
                                 "' (name, params)");
        }
      }
      entries.emplace_back(t["name"], t["params"]);
    }
  } else if (root.IsMap()) {
    for (const auto& kv : root) entries.emplace_back(kv.first, kv.second);
  } else {
    return Status::Invalid(path +
                           ": expected a list of targets ({name, params}) or a map of "
                           "name: params");
  }
  if (entries.empty()) return Status::Invalid(path + ": no targets");
  std::vector<Target> targets;
  std::set<std::string> seen;
  for (const auto& [name, params] : entries) {
    Target t;
    t.name = name.Scalar();
    if (t.name.empty() || t.name.size() > 200 ||
        t.name.find_first_of("\n\r\t") != std::string::npos) {
      return Status::Invalid(At(path, name) +
                             ": a target name is one line of 1 to 200 "
                             "characters");
    }
    if (!seen.insert(t.name).second) {
      return Status::Invalid(At(path, name) + ": target '" + t.name + "' is named twice");
    }
    if (params && !params.IsNull()) {
      if (!params.IsMap()) return Status::Invalid(At(path, params) + ": params is a map");
      std::set<std::string> keys;
      for (const auto& kv : params) {
        if (!keys.insert(kv.first.Scalar()).second) {
          return Status::Invalid(At(path, kv.first) + ": target '" + t.name + "': param '" +
                                 kv.first.Scalar() + "' is given twice");
        }
      }
      t.params = params;
    }
    YAML::Emitter out;
    if (t.params.IsMap()) {
      out << t.params;
    } else {
      out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    }
    t.params_yaml = std::string(out.c_str()) + "\n";
    targets.push_back(std::move(t));
  }
  return targets;
}

// A file of targets (YAML or JSON).
Result<std::vector<Target>> ReadTargets(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Status::Invalid("--targets " + path + ": cannot read it");
  } catch (const YAML::Exception& e) {
    return Status::Invalid(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                           std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  return TargetsOf(root, path);
}

// The targets a query's rows name, read on PostgreSQL at `dsn` (libpq's
// conventions: "" is PGHOST..., a service, .pgpass): column `name` names
// the target, every other column is a param of it, and a NULL leaves that
// param to its default. The rows become a YAML list one row per line, so an
// error's line is the row's number.
Result<std::vector<Target>> QueryTargets(const Registry& registry, const std::string& dsn,
                                         const std::string& sql) {
  const ConnectionType* postgres = registry.FindConnectionType("postgres");
  if (!postgres) return Status::Invalid("--targets-query needs the postgres binding");
  Value config = Value::object();
  if (!dsn.empty()) config["dsn"] = dsn;
  Result<Value> rows = postgres->QueryRows("--targets-dsn", config, sql);
  if (!rows.ok()) return Status::Invalid("--targets-query: " + rows.status().message());
  std::string text;
  for (size_t i = 0; i < rows->size(); ++i) {
    const Value& row = (*rows)[i];
    const std::string where = "--targets-query: row " + std::to_string(i + 1) + ": ";
    if (!row.contains("name")) return Status::Invalid(where + "no column 'name' (the target's)");
    if (!row["name"].is_string() || row["name"].get<std::string>().empty()) {
      return Status::Invalid(where + "'name' must be non-empty text, not " + row["name"].dump());
    }
    Value params = Value::object();
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (it.key() != "name" && !it.value().is_null()) params[it.key()] = it.value();
    }
    text += "- " + Value{{"name", row["name"]}, {"params", params}}.dump() + "\n";
  }
  if (text.empty()) return Status::Invalid("--targets-query: no rows, so no targets");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::Internal("--targets-query: its rows as YAML: " + e.msg);
  }
  return TargetsOf(root, "--targets-query row");
}

// "1", "10%", "rest" -> wave sizes covering `n` targets; what the specs
// leave is a last wave. Every spec is checked, also past the last target.
Result<std::vector<size_t>> WaveSizes(const std::vector<std::string>& specs, size_t n) {
  std::vector<size_t> sizes;
  size_t left = n;
  for (const std::string& spec : specs) {
    size_t size = 0;
    char* end = nullptr;
    errno = 0;
    const long v = !spec.empty() && isdigit(static_cast<unsigned char>(spec[0]))
                       ? strtol(spec.c_str(), &end, 10)
                       : 0;
    if (spec == "rest") {
      size = left;
    } else if (v > 0 && errno == 0 && *end == '%' && end[1] == '\0' && v <= 100) {
      size = std::max<size_t>(1, static_cast<size_t>(std::ceil(n * v / 100.0)));
    } else if (v > 0 && errno == 0 && *end == '\0') {
      size = static_cast<size_t>(v);
    } else {
      return Status::Invalid("--wave " + spec +
                             ": a count (10), a share of the targets (10%) or rest");
    }
    size = std::min(size, left);
    if (size == 0) continue;  // the targets ran out
    sizes.push_back(size);
    left -= size;
  }
  if (left > 0) sizes.push_back(left);
  return sizes;
}

// A run id as NewRunId makes them: "20261121-145238-4f2a".
bool LooksLikeRunId(const std::string& id) {
  // YYYYMMDD-HHMMSS-xxxxxx (-xxxx before 2026-12-05)
  if ((id.size() != 22 && id.size() != 20) || id[8] != '-' || id[15] != '-') return false;
  for (size_t i = 0; i < id.size(); ++i) {
    if (i != 8 && i != 15 && !isxdigit(static_cast<unsigned char>(id[i]))) return false;
  }
  return true;
}

// The id of the run a child started ("run ID ...", "rehearsal ID ...").
std::string NewRunIdOf(const std::string& out) {
  const std::string line = out.substr(0, out.find('\n'));
  for (const char* word : {"run ", "rehearsal "}) {
    if (line.rfind(word, 0) == 0) {
      const size_t start = strlen(word);
      const std::string id = line.substr(start, line.find(' ', start) - start);
      return LooksLikeRunId(id) ? id : "";
    }
  }
  return "";
}

std::string LastLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

// Whether two params agree, where the stored one can tell: a secret is
// stored as "***" (or withheld) and cannot be compared.
bool SameParams(const Value& stored, const Value& given) {
  if (!stored.is_object() || !given.is_object()) return false;
  for (const auto& [k, v] : given.items()) {
    auto it = stored.find(k);
    if (it == stored.end()) return false;
    if (it->is_string() && it->get<std::string>().find("***") != std::string::npos) continue;
    if (*it != v) return false;
  }
  return stored.size() == given.size();
}

// SIGINT/SIGTERM: start no more targets; those running finish as their
// runbook says (they lead their own process groups: the terminal's ^C does
// not reach them). A second signal ends the fleet at once.
std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted = true; }

struct Fleet {
  Cli* cli = nullptr;
  StateStore* store = nullptr;
  std::shared_ptr<const Runbook> rb;
  std::string runbook_path;  // absolute
  std::string digest;        // of the runbook as validated
  std::string run_digest;    // what its targets' runs record (in pods: of the files laid out)
  std::unique_ptr<KubeJobs> kube;  // --executor kube: each target a Job
  std::optional<KubeExecutorOptions> kube_options;
  PodSources pod_sources;
  std::vector<Target> targets;
  std::map<std::string, RunRecord> last;  // target name -> its last run
  bool yes = false, dry_run = false, pause_between = false, allow_changed = false;
  bool approve_waves = false;                  // a gate before each wave after the first
  std::chrono::milliseconds approval_wait{0};  // how long a gate waits (0: it pauses)
  int max_concurrency = 1, max_failures = 0;
  std::vector<std::string> pairs;  // the common params (-p), as given
  std::vector<size_t> sizes;       // of the waves
  std::string source;              // where the targets came from, for the record
  std::string resumed_note;        // resumed: by whom (an event of the record)

  // The fleet's own record (IsFleet), and one step record per target
  // ("targets[3]", its item the target's name) written as it starts and
  // ends: what `status`, `report` and `resume` of the fleet read.
  RunRecord record;
  std::unique_ptr<StoreLock> record_lock;
  std::vector<StepRecord> target_steps;

  std::mutex mu;  // guards what follows, and printing
  std::vector<Outcome> outcomes;
  int failures = 0;
  bool stopped = false;  // max_failures exceeded: no more starts

  // Whether the value `text` of param `name` may be kept in the record: not
  // a secret param, and holding none (a dsn with its password).
  bool Storable(const std::string& name, const std::string& text) const {
    const ParamSpec* spec = rb->FindParam(name);
    return !(spec && spec->secret) && cli->redactor.Redact(text) == text;
  }

  // Creates the fleet's record (or, resumed, marks it running again) and
  // takes its lock, so that `status` tells a fleet whose process is gone.
  Status BeginRecord() {
    const int64_t now = Clock::Real().NowMs();
    if (record.id.empty()) {
      Value stored_targets = Value::array();
      for (const Target& t : targets) {
        YAML::Node kept(YAML::NodeType::Map);
        Value withheld = Value::array();
        if (t.params.IsMap()) {
          for (const auto& kv : t.params) {
            YAML::Emitter e;
            e << kv.second;
            if (Storable(kv.first.Scalar(), e.c_str())) {
              kept[kv.first.Scalar()] = kv.second;
            } else {
              withheld.push_back(kv.first.Scalar());
            }
          }
        }
        YAML::Emitter out;
        out << YAML::Flow << kept;
        stored_targets.push_back(
            {{"name", t.name}, {"params", out.c_str()}, {"withheld", withheld}});
      }
      Value common = Value::array(), common_withheld = Value::array();
      Value shown = Value::object();
      for (const std::string& pair : pairs) {
        const std::string name = pair.substr(0, pair.find('='));
        const std::string value = pair.substr(std::min(pair.size(), name.size() + 1));
        if (Storable(name, value)) {
          common.push_back(pair);
          shown[name] = value;
        } else {
          common_withheld.push_back(name);
          shown[name] = "***";
        }
      }
      record.id = NewRunId(now);
      record.runbook_name = rb->name;
      record.runbook_path = runbook_path;
      record.digest = digest;
      RegisterRunbookLiteralSecrets(*rb, cli->registry, cli->redactor);
      record.sources = cli->redactor.Redact(RunbookSources(*rb));
      record.params = shown;
      record.params_digest = Sha256Hex(shown.dump());
      record.dry_run = dry_run;
      record.lock_key = "fleet:" + record.id;
      record.created_ms = now;
      record.options = {
          {"operator", OperatorName()},
          {"fleet",
           {{"targets", stored_targets},
            {"common", common},
            {"common_withheld", common_withheld},
            {"waves", sizes},
            {"max_concurrency", max_concurrency},
            {"max_failures", max_failures},
            {"pause_between_waves", pause_between},
            {"approve_waves", approve_waves},
            {"yes", yes},
            {"source", source},
            {"executor", kube_options ? kube_options->ToValue() : Value{{"kind", "local"}}}}}};
      if (kube_options) record.options["fleet"]["executor"]["kind"] = "kube";
    }
    record.status = RunStatus::kRunning;
    record.error.clear();
    record.updated_ms = now;
    Result<std::unique_ptr<StoreLock>> lock = store->AcquireLock(record.lock_key, record.id);
    if (!lock.ok()) return lock.status();
    record_lock = std::move(*lock);
    if (!resumed_note.empty()) {
      Event e;
      e.run_id = record.id;
      e.kind = EventKindName(EventKind::kFleetResume);
      e.at_ms = now;
      e.message = resumed_note;
      if (Status s = store->AppendEvent(e); !s.ok()) return s;
    }
    if (target_steps.empty()) {
      if (Status s = store->CreateRun(record); !s.ok()) return s;
    } else if (Status s = store->UpdateRun(record.id, RunStatus::kRunning, ""); !s.ok()) {
      return s;
    }
    target_steps.resize(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) {
      StepRecord& step = target_steps[i];
      if (!step.step_id.empty()) continue;  // resumed: it has its record
      step.run_id = record.id;
      step.step_id = "targets[" + std::to_string(i + 1) + "]";
      step.action = "fleet.target";
      step.item = {{"name", targets[i].name}};
      step.result = {{"target", targets[i].name}, {"status", "not started"}};
      if (Status s = store->PutStep(&step); !s.ok()) return s;
    }
    return Status::Ok();
  }

  // Records what became of target i (called by the worker that ran it).
  void RecordTarget(size_t i, bool starting) {
    const Outcome& o = outcomes[i];
    StepRecord& step = target_steps[i];
    if (!starting && !o.started && step.status == StepStatus::kSucceeded &&
        step.result.value("run", "") == o.run_id) {
      return;  // as recorded before
    }
    const int64_t now = Clock::Real().NowMs();
    EventKind kind = EventKind::kTargetEnd;
    if (starting) {
      step.status = StepStatus::kRunning;
      step.started_ms = now;
      step.finished_ms = step.duration_ms = 0;
      ++step.attempts;
      kind = EventKind::kTargetStart;
    } else {
      step.status = o.status == "succeeded" ? StepStatus::kSucceeded
                    : o.status == "skipped" ? StepStatus::kSkipped
                    : o.status == "paused"  ? StepStatus::kWaiting
                    : o.failure             ? StepStatus::kFailed
                                            : StepStatus::kPending;
      step.finished_ms = now;
      step.duration_ms = o.ms;
    }
    step.result = {{"target", targets[i].name},
                   {"status", starting ? "running" : o.status},
                   {"wave", o.wave},
                   {"run", o.run_id},
                   {"failed_step", o.failed_step},
                   {"note", cli->redactor.Redact(o.note)}};
    step.error = o.failure && !starting ? cli->redactor.Redact(o.note) : "";
    Event e;
    e.kind = EventKindName(kind);
    e.at_ms = now;
    e.message = targets[i].name + ": " + (starting ? "started" : o.status) +
                (o.run_id.empty() ? "" : " (run " + o.run_id + ")");
    if (Status s = store->PutStep(&step, &e); !s.ok()) {
      // A fleet that cannot keep its record (the store is away, or, shared,
      // another engine took the fleet over) starts no more targets.
      std::lock_guard<std::mutex> lock(mu);
      stopped = true;
      fprintf(stderr,
              "runbook: fleet %s: cannot record target '%s' (%s); no more targets are "
              "started\n",
              record.id.c_str(), TerminalSafe(targets[i].name).c_str(), s.message().c_str());
    }
  }

  // Ends the record with the fleet's outcome.
  void FinishRecord(ExitCode code, const std::string& why) {
    for (size_t i = 0; i < targets.size(); ++i) {
      if (outcomes[i].status != "next wave") continue;
      target_steps[i].status = StepStatus::kPending;
      target_steps[i].result["status"] = "next wave";
      target_steps[i].result["run"] = "";
      if (Status s = store->PutStep(&target_steps[i]); !s.ok()) {
        fprintf(stderr, "runbook: fleet %s: cannot record target '%s': %s\n", record.id.c_str(),
                TerminalSafe(targets[i].name).c_str(), s.message().c_str());
      }
    }
    const RunStatus status = code == ExitCode::kOk       ? RunStatus::kSucceeded
                             : code == ExitCode::kPaused ? RunStatus::kPaused
                             : g_interrupted             ? RunStatus::kStopped
                                                         : RunStatus::kFailed;
    if (Status s = store->UpdateRun(record.id, status, why); !s.ok()) {
      fprintf(stderr, "runbook: fleet %s: cannot record its end: %s\n", record.id.c_str(),
              s.message().c_str());
    }
    record_lock.reset();
  }

  // The gate before wave `n` (2, 3, ...): approved now or earlier (with
  // `runbook approve FLEET wave-N`, from any machine on this store), or
  // not (then the fleet stops before the wave). With --wait-for-approval it
  // waits for the approval: a PostgreSQL store tells it at once.
  bool WaveApproved(int n) {
    const std::string gate = "wave-" + std::to_string(n);
    if (dry_run) {
      printf("fleet: a real fleet would wait here for: runbook approve %s %s\n", record.id.c_str(),
             gate.c_str());
      return true;
    }
    Result<std::optional<StepRecord>> known = store->GetStep(record.id, gate);
    if (known.ok() && known->has_value() && (*known)->status == StepStatus::kSucceeded) {
      return true;  // approved, and passed, before (a resumed fleet)
    }
    StepRecord step;
    step.run_id = record.id;
    step.step_id = gate;
    step.action = "fleet.wave";
    step.item = {{"name", "wave " + std::to_string(n)}};
    step.result = {{"wave", n}};
    auto passed = [&](const Approval& a) {
      step.status = StepStatus::kSucceeded;
      step.finished_ms = Clock::Real().NowMs();
      step.result["approved_by"] = a.by;
      Event e;
      e.kind = EventKindName(EventKind::kWaveApproved);
      e.at_ms = step.finished_ms;
      e.message = gate + " approved by " + a.by;
      if (Status s = store->PutStep(&step, &e); !s.ok()) {
        fprintf(stderr, "runbook: fleet %s: %s\n", record.id.c_str(), s.message().c_str());
        return false;
      }
      printf("fleet: wave %d approved by %s\n", n, TerminalSafe(a.by).c_str());
      return true;
    };
    Result<std::optional<Approval>> a = store->GetApproval(record.id, gate);
    if (a.ok() && a->has_value()) return passed(**a);
    step.status = StepStatus::kWaiting;
    step.started_ms = Clock::Real().NowMs();
    Event e;
    e.kind = EventKindName(EventKind::kWaveWait);
    e.at_ms = step.started_ms;
    e.message = gate + " waits for approval";
    if (Status s = store->PutStep(&step, &e); !s.ok()) {
      fprintf(stderr, "runbook: fleet %s: %s\n", record.id.c_str(), s.message().c_str());
      return false;
    }
    printf("fleet: wave %d waits for approval: runbook approve %s %s\n", n, record.id.c_str(),
           gate.c_str());
    fflush(stdout);
    const auto until = std::chrono::steady_clock::now() + approval_wait;
    const bool told = store->NotifiesApprovals();
    while (std::chrono::steady_clock::now() < until && !g_interrupted) {
      const auto slice = std::min<std::chrono::milliseconds>(
          told ? std::chrono::seconds(1) : std::chrono::milliseconds(200),
          std::chrono::duration_cast<std::chrono::milliseconds>(until -
                                                                std::chrono::steady_clock::now()) +
              std::chrono::milliseconds(1));
      if (!told) std::this_thread::sleep_for(slice);
      a = told ? store->WaitForApproval(record.id, gate, slice)
               : store->GetApproval(record.id, gate);
      if (a.ok() && a->has_value()) return passed(**a);
      if (!a.ok() && told) std::this_thread::sleep_for(slice);  // the store is away
    }
    return false;
  }

  // Reads every target's last run (this runbook, tagged by the fleet) once.
  Status ReadLastRuns() {
    Result<std::vector<RunRecord>> runs = store->ListRuns(0);
    if (!runs.ok()) return runs.status();
    for (const RunRecord& r : *runs) {  // newest first
      if (r.runbook_name != rb->name || r.dry_run != dry_run || !r.options.is_object()) continue;
      auto tag = r.options.find("fleet_target");
      if (tag == r.options.end() || !tag->is_string()) continue;
      last.emplace(tag->get<std::string>(), r);
    }
    return Status::Ok();
  }

  // Whether a rolled-back run kept steps that changed something (a
  // rollback boundary, rollback: none): starting over would repeat them.
  bool KeptSteps(const std::string& run_id) {
    Result<std::vector<StepRecord>> steps = store->GetSteps(run_id);
    if (!steps.ok()) return true;  // unknown: a human looks
    for (const StepRecord& s : *steps) {
      if (s.status == StepStatus::kSucceeded && !StepChangedNothing(s)) return true;
    }
    return false;
  }

  // What to do with target i: "run", "resume", or "" (outcome set).
  std::string Decide(size_t i, const RunRecord** prev) {
    const Target& t = targets[i];
    Outcome& o = outcomes[i];
    // Resumed: a target this fleet ran to success is done, whatever ran
    // for its name since (another fleet, other params).
    if (!record.id.empty() && !dry_run && i < target_steps.size() &&
        target_steps[i].status == StepStatus::kSucceeded) {
      const std::string run = target_steps[i].result.value("run", "");
      Result<RunRecord> r = store->GetRun(run);
      if (r.ok() && cli->ShownStatus(*store, *r) == "succeeded") {
        o.status = "succeeded";
        o.run_id = run;
        return "";
      }
    }
    auto it = last.find(t.name);
    if (it == last.end() || dry_run) return "run";
    const RunRecord& r = it->second;
    *prev = &r;
    const std::string shown = cli->ShownStatus(*store, r);
    o.run_id = r.id;
    if (shown == "succeeded") {
      if (r.digest == run_digest && SameParams(r.params, t.resolved)) {
        // Resumed: a target this fleet ran to success (its process killed
        // meanwhile, maybe) succeeded; one an earlier fleet did is skipped.
        if (!record.id.empty() && r.options.value("fleet_id", "") == record.id) {
          o.status = "succeeded";
          o.ms = r.updated_ms - r.created_ms;
        } else {
          o.status = "skipped";
          o.note = "succeeded before";
        }
        return "";
      }
      return "run";  // last time was another job
    }
    if (shown == "interrupted" || shown == "interrupted_rollback" || shown == "paused") {
      return "resume";
    }
    if (shown == "rolled_back" && !KeptSteps(r.id)) return "run";
    o.status = shown == "running" || shown == "rolling_back" ? shown : "needs a human";
    o.failure = true;
    o.note = shown == "running" || shown == "rolling_back"
                 ? "another engine runs it"
                 : "its last run is " + shown + (shown == "rolled_back" ? " with steps kept" : "") +
                       ": runbook status " + r.id + ", then resume or roll it back";
    return "";
  }

  // The command that runs target i's run ("run") or resumes `prev`.
  std::vector<std::string> ChildArgv(size_t i, const std::string& what, const RunRecord* prev) {
    std::vector<std::string> argv = {"/proc/self/exe"};
    if (what == "resume") {
      argv.insert(argv.end(), {"resume", prev->id, "--params-file", "/dev/stdin"});
      if (allow_changed) argv.push_back("--allow-changed");
    } else {
      argv.insert(argv.end(), {"run", runbook_path, "--params-file", "/dev/stdin",
                               "--fleet-target=" + targets[i].name, "--fleet=" + record.id});
      if (dry_run) argv.push_back("--dry-run");
    }
    argv.push_back("--no-color");
    if (yes) argv.push_back("--yes");
    return argv;
  }

  void RunOne(size_t i) {
    const Target& t = targets[i];
    Outcome& o = outcomes[i];
    const RunRecord* prev = nullptr;
    // A Job still running this target (a resumed fleet whose process was
    // gone) is waited for, not decided about: its pod decides.
    std::string active;
    // A target this fleet never started has no Job to wait for.
    if (kube && i < target_steps.size() && target_steps[i].attempts > 0) {
      Result<std::string> job = kube->ActiveJob(i + 1);
      for (int tries = 1; !job.ok() && tries < 3 && !g_interrupted; ++tries) {
        std::this_thread::sleep_for(std::chrono::seconds(2));  // the API blinked
        job = kube->ActiveJob(i + 1);
      }
      if (!job.ok()) {
        o.Failed(job.status().message());
        return;
      }
      active = *job;
    }
    const std::string what = !active.empty() ? "attach" : Decide(i, &prev);
    if (what.empty()) return;
    o.started = true;
    if (what != "resume") o.run_id.clear();
    RecordTarget(i, true);
    if (kube) {
      // The run the fleet saw for it: its pod starts or resumes as decided
      // only while that is still the target's newest.
      auto seen = last.find(t.name);
      RunInPod(i, active, what, seen == last.end() ? "" : seen->second.id);
      return;
    }
    ProcessSpec spec;
    spec.argv = ChildArgv(i, what, prev);
    spec.stdin_data = t.child_yaml;  // never argv: a param may be a secret
    spec.env["RUNBOOK_STATE"] = cli->StatePath();
    spec.max_output = 1 << 20;
    const auto start = std::chrono::steady_clock::now();
    Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
    o.ms = MsSince(start);
    if (!r.ok()) {
      o.Failed(r.status().message());
      return;
    }
    if (what == "run") o.run_id = NewRunIdOf(r->out);
    Conclude(i, r->exit_code,
             r->signal ? "killed by signal " + std::to_string(r->signal)
                       : LastLine(r->err.empty() ? r->out : r->err));
  }

  // Target i as a Kubernetes Job; its run is found in the store.
  void RunInPod(size_t i, const std::string& active, const std::string& what,
                const std::string& seen) {
    Outcome& o = outcomes[i];
    std::vector<std::string> flags = {"--decided=" + what, "--seen=" + seen,
                                      "--digest=" + run_digest};
    if (dry_run) flags.push_back("--dry-run");
    if (yes) flags.push_back("--yes");
    if (allow_changed) flags.push_back("--allow-changed");
    const auto start = std::chrono::steady_clock::now();
    Result<JobOutcome> r = kube->Run(i + 1, std::max(1, target_steps[i].attempts), targets[i].name,
                                     targets[i].child_yaml, flags, g_interrupted, active);
    o.ms = MsSince(start);
    if (!r.ok()) {
      o.Failed(r.status().message());
      return;
    }
    // Its run: the newest this fleet started for it (its pod wrote it),
    // among the store's newest runs first (a long-lived store holds many).
    for (const int limit : {static_cast<int>(targets.size()) * 2 + 200, 0}) {
      Result<std::vector<RunRecord>> runs = store->ListRuns(limit);
      for (const RunRecord& run : runs.ok() ? *runs : std::vector<RunRecord>{}) {
        if (run.options.is_object() && run.options.value("fleet_id", "") == record.id &&
            run.options.value("fleet_target", "") == targets[i].name) {
          o.run_id = run.id;
          break;
        }
      }
      if (!o.run_id.empty()) break;
    }
    if (r->interrupted) {
      o.status = "running";
      o.note = "job " + r->job + " goes on in the cluster; runbook resume " + record.id +
               " waits for it";
      return;
    }
    Conclude(i, r->exit_code,
             r->note.empty() ? "job " + r->job : r->note + " (job " + r->job + ")");
    if (o.note.empty()) o.note = r->note;  // succeeded, with a pod lost on the way
  }

  // The outcome of target i from its run's exit code (-1: unknown).
  void Conclude(size_t i, int exit_code, const std::string& why) {
    Outcome& o = outcomes[i];
    switch (exit_code) {
      case 0:
        o.status = "succeeded";
        break;
      case 3:
        o.status = "paused";
        break;
      case 4:
        o.status = "locked";
        o.failure = true;
        break;
      case 5:
        o.status = "outside window";
        o.failure = true;
        break;
      case 6:
        o.status = "needs a human";
        o.failure = true;
        break;
      default:
        o.status = "failed";
        o.failure = true;
        break;
    }
    if (exit_code != 0) o.note = why;
    if (!o.run_id.empty() && o.failure) {
      Result<std::vector<StepRecord>> steps = store->GetSteps(o.run_id);
      for (const StepRecord& s : steps.ok() ? *steps : std::vector<StepRecord>{}) {
        if (s.status == StepStatus::kFailed || s.status == StepStatus::kUndoFailed) {
          o.failed_step = StepLabel(s);
          break;
        }
      }
    }
  }

  // Runs the targets [begin, end) with up to max_concurrency at once.
  void RunWave(size_t begin, size_t end, int wave) {
    std::atomic<size_t> next{begin};
    auto worker = [&] {
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (stopped || g_interrupted) return;
        }
        const size_t i = next++;
        if (i >= end) return;
        outcomes[i].wave = wave;
        try {
          RunOne(i);
        } catch (const std::exception& e) {  // a bug must not orphan the others
          outcomes[i].status = "failed";
          outcomes[i].failure = true;
          outcomes[i].note = std::string("internal error: ") + e.what();
        }
        RecordTarget(i, false);
        std::lock_guard<std::mutex> lock(mu);
        const Outcome& o = outcomes[i];
        if (o.failure && ++failures > max_failures) stopped = true;
        printf("fleet: wave %d  %-24s %-14s%s%s%s\n", wave, TerminalSafe(targets[i].name).c_str(),
               o.status.c_str(), o.run_id.empty() ? "" : ("  run " + o.run_id).c_str(),
               o.failed_step.empty() ? "" : ("  at step " + TerminalSafe(o.failed_step)).c_str(),
               o.note.empty() ? ""
                              : ("  (" + TerminalSafe(cli->redactor.Redact(o.note)) + ")").c_str());
        fflush(stdout);
      }
    };
    std::vector<std::thread> workers;
    const size_t n = std::min<size_t>(static_cast<size_t>(max_concurrency), end - begin);
    for (size_t w = 0; w < n; ++w) workers.emplace_back(worker);
    for (std::thread& w : workers) w.join();
  }

  void PrintSummary() {
    printf("\n%-24s %-14s %-22s %9s  %s\n", "target", "status", "run", "duration", "failed step");
    for (size_t i = 0; i < targets.size(); ++i) {
      const Outcome& o = outcomes[i];
      char secs[32];
      snprintf(secs, sizeof(secs), "%.1fs", o.ms / 1000.0);
      printf("%-24s %-14s %-22s %9s  %s\n", TerminalSafe(targets[i].name).c_str(), o.status.c_str(),
             o.run_id.empty() ? "-" : o.run_id.c_str(), o.ms ? secs : "-",
             o.failed_step.empty() ? "-" : TerminalSafe(o.failed_step).c_str());
    }
  }

  // The fleet as the store has it, starting nothing: each target's last run.
  void PrintLastRuns() {
    printf("%-24s %-22s %-22s %9s  %s\n", "target", "status", "run", "duration", "failed step");
    for (const Target& t : targets) {
      auto it = last.find(t.name);
      if (it == last.end()) {
        printf("%-24s %-22s %-22s %9s  %s\n", TerminalSafe(t.name).c_str(), "not started", "-", "-",
               "-");
        continue;
      }
      const RunRecord& r = it->second;
      std::string failed = "-";
      Result<std::vector<StepRecord>> steps = store->GetSteps(r.id);
      for (const StepRecord& s : steps.ok() ? *steps : std::vector<StepRecord>{}) {
        if (s.status == StepStatus::kFailed || s.status == StepStatus::kUndoFailed) {
          failed = TerminalSafe(StepLabel(s));
          break;
        }
      }
      char secs[32];
      snprintf(secs, sizeof(secs), "%.1fs", (r.updated_ms - r.created_ms) / 1000.0);
      printf("%-24s %-22s %-22s %9s  %s\n", TerminalSafe(t.name).c_str(),
             cli->ShownStatus(*store, r).c_str(), r.id.c_str(), secs, failed.c_str());
    }
  }

  ExitCode Code() const {
    bool failed = false, paused = false, human = false;
    for (const Outcome& o : outcomes) {
      failed |= o.failure || o.status == "not started" || o.status == "running";
      paused |= o.status == "paused" || o.status == "next wave";
      human |= o.status == "needs a human";
    }
    if (human) return ExitCode::kRollbackFailed;
    if (failed) return ExitCode::kRunFailed;
    if (paused) return ExitCode::kPaused;
    return ExitCode::kOk;
  }
};

// The params file a child reads, also for checking a target's params before
// anything starts. Private (0600, close-on-exec), removed on destruction.
class TempParams {
 public:
  explicit TempParams(const std::string& text) {
    char tmpl[] = "/tmp/runbook-fleet-XXXXXX";
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) return;
    const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    if (ok) {
      path_ = tmpl;
    } else {
      unlink(tmpl);
    }
  }
  ~TempParams() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  TempParams(const TempParams&) = delete;
  TempParams& operator=(const TempParams&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Targets that would take the same run lock cannot run at once: with more
// than one at a time, the second would fail at its lock (exit 4) while the
// first runs. Each target's lock key, as its run will expand it (run.id
// differs per target, so a key made of it is never shared).
Status CheckLockKeys(const Runbook& rb, const std::vector<Target>& targets, bool dry_run) {
  LuaRuntime lua;
  std::map<std::string, std::string> holder;  // key -> the first target taking it
  for (const Target& t : targets) {
    const Value env{{"params", t.resolved},
                    {"steps", Value::object()},
                    {"run", {{"id", "fleet/" + t.name}, {"dry_run", dry_run}, {"now", 0}}}};
    Result<Value> key = ExpandTemplates(lua, Value(rb.lock), Pos{rb.path}, env,
                                        std::chrono::steady_clock::now() + std::chrono::seconds(5));
    if (!key.ok()) {
      return Status::Invalid("target '" + t.name + "': its run lock: " + key.status().message());
    }
    const std::string text = key->is_string() ? key->get<std::string>() : key->dump();
    auto [it, fresh] = holder.emplace(text, t.name);
    if (!fresh) {
      return Status::Invalid("targets '" + it->second + "' and '" + t.name +
                             "' take the same run lock '" + text + "' (lock: " + rb.lock +
                             "), so they cannot run at once; give each target its own lock, or "
                             "run one at a time (--max-concurrency 1)");
    }
  }
  return Status::Ok();
}

// `v` as a YAML node, for a run's params file.
YAML::Node ToYaml(const Value& v) {
  if (v.is_object()) {
    YAML::Node n(YAML::NodeType::Map);
    for (const auto& [k, x] : v.items()) n[k] = ToYaml(x);
    return n;
  }
  if (v.is_array()) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (const Value& x : v) n.push_back(ToYaml(x));
    return n;
  }
  if (v.is_null()) return YAML::Node(YAML::NodeType::Null);
  return YAML::Node(v.is_string() ? v.get<std::string>() : v.dump());
}

// A common param given as -p name=text, as its run's params file says it:
// typed by the runbook (a list param's JSON becomes a YAML list); text the
// runbook does not take stays text, for the params check to refuse.
YAML::Node CommonValue(const Runbook& rb, const std::string& name, const std::string& text) {
  const ParamSpec* spec = rb.FindParam(name);
  Value typed;
  if (spec && ParamValueFromString(spec->type, text, &typed).empty()) return ToYaml(typed);
  return YAML::Node(text);
}

// Sets the fleet's executor: local (children of this process) without
// `kube`, else each target a Kubernetes Job. `fleet.rb` and digest are set.
Status UseExecutor(Cli& cli, Fleet& fleet, const std::optional<KubeExecutorOptions>& kube) {
  fleet.run_digest = fleet.digest;
  if (!kube) return Status::Ok();
  if (Status s = kube->Check(); !s.ok()) return s;
  if (!IsPostgresLocation(cli.StatePath())) {
    return Status::Invalid(
        "--executor kube: the pods and this fleet share one state store, so it is a PostgreSQL "
        "one (--state postgresql://... or RUNBOOK_STATE), not a file of this machine");
  }
  Result<PodSources> sources = PodSourcesOf(*fleet.rb);
  if (!sources.ok()) return sources.status();
  fleet.pod_sources = std::move(*sources);
  fleet.run_digest = fleet.pod_sources.Digest();
  fleet.kube_options = kube;
  return Status::Ok();
}

// Checks every target's params and locks, then runs the waves, recording
// the fleet as it goes; sets cli.exit_code. `fleet.rb`, targets, pairs,
// sizes and options are set; the store is open.
void Execute(Cli& cli, Fleet& fleet, bool status_only) {
  const Runbook& rb = *fleet.rb;
  // The common params (-p), typed as the runbook says, the last of a name
  // winning as with run -p.
  std::map<std::string, YAML::Node> common;
  for (const std::string& pair : fleet.pairs) {
    const size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, "-p " + pair + ": expected name=value");
      return;
    }
    common[pair.substr(0, eq)] = CommonValue(rb, pair.substr(0, eq), pair.substr(eq + 1));
  }
  // Every target's params checked before anything starts, from exactly
  // what its run will read on stdin: its own, and the common ones it does
  // not override.
  for (Target& t : fleet.targets) {
    YAML::Emitter out;
    out << YAML::BeginMap;
    std::set<std::string> own;
    if (t.params.IsMap()) {
      for (const auto& kv : t.params) {
        own.insert(kv.first.Scalar());
        out << YAML::Key << kv.first << YAML::Value << kv.second;
      }
    }
    for (const auto& [name, value] : common) {
      if (!own.count(name)) out << YAML::Key << name << YAML::Value << value;
    }
    // A pod has not this machine's environment: a param from env: is
    // passed as this machine has it (in the target's params Secret).
    if (fleet.kube_options) {
      for (const ParamSpec& p : rb.params) {
        const char* v = p.env.empty() ? nullptr : getenv(p.env.c_str());
        if (v && !own.count(p.name) && !common.count(p.name)) {
          out << YAML::Key << p.name << YAML::Value << CommonValue(rb, p.name, v);
        }
      }
    }
    out << YAML::EndMap;
    t.child_yaml = std::string(out.c_str()) + "\n";
    TempParams tp(t.child_yaml);
    if (tp.path().empty()) {
      cli.exit_code = cli.Error(ExitCode::kInternal, "fleet: cannot write a params file in /tmp");
      return;
    }
    std::optional<Value> params = cli.Params(rb, {}, tp.path());
    if (!params) {
      fprintf(stderr, "runbook: fleet: target '%s': invalid params; nothing was started\n",
              TerminalSafe(t.name).c_str());
      return;
    }
    t.resolved = *params;
  }
  if (fleet.max_concurrency > 1) {
    if (Status s = CheckLockKeys(rb, fleet.targets, fleet.dry_run); !s.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                "fleet: " + TerminalSafe(s.message()) + "; nothing was started");
      return;
    }
  }
  fleet.outcomes.assign(fleet.targets.size(), Outcome{});
  if (Status s = fleet.ReadLastRuns(); !s.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInternal, "fleet: cannot read the targets' last runs (" +
                                                       s.message() + "); nothing was started");
    return;
  }
  if (status_only) {
    fleet.PrintLastRuns();
    return;
  }
  if (fleet.kube_options) {
    KubeJobs probe(*fleet.kube_options, "", ProcessRunner::Real());
    if (Status s = probe.CheckStateSecret(); !s.ok()) {
      cli.exit_code =
          cli.Error(ExitCode::kInvalid, "fleet: " + s.message() + "; nothing was started");
      return;
    }
  }
  if (Status s = fleet.BeginRecord(); !s.ok()) {
    cli.exit_code =
        cli.Error(s.code() == Status::Code::kUnavailable ? ExitCode::kLocked : ExitCode::kInternal,
                  "fleet: " + s.message() + "; nothing was started");
    return;
  }
  if (fleet.kube_options) {
    fleet.kube =
        std::make_unique<KubeJobs>(*fleet.kube_options, fleet.record.id, ProcessRunner::Real());
    if (Status s = fleet.kube->Prepare(fleet.pod_sources); !s.ok()) {
      const std::string why = "cannot start its Jobs: " + s.message();
      fleet.outcomes.assign(fleet.targets.size(), Outcome{});
      fleet.FinishRecord(ExitCode::kRunFailed, why);
      cli.exit_code = cli.Error(ExitCode::kRunFailed,
                                "fleet " + fleet.record.id + ": " + why + "; nothing was started");
      return;
    }
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  const std::vector<size_t>& sizes = fleet.sizes;
  printf("fleet %s %s: %zu targets in %zu waves, %d at once, %d failures tolerated\n",
         fleet.record.id.c_str(), TerminalSafe(rb.name).c_str(), fleet.targets.size(), sizes.size(),
         fleet.max_concurrency, fleet.max_failures);
  fflush(stdout);
  size_t begin = 0;
  std::string why;  // the fleet's outcome, when it stopped early
  for (size_t w = 0; w < sizes.size() && !fleet.stopped && !g_interrupted; ++w) {
    fleet.RunWave(begin, begin + sizes[w], static_cast<int>(w) + 1);
    const size_t end = begin + sizes[w];
    begin = end;
    // A wave waiting for an approval holds the next one back.
    bool started = false;
    for (size_t i = end - sizes[w]; i < end; ++i) {
      started |= fleet.outcomes[i].started;
      if (fleet.outcomes[i].status == "paused" && w + 1 < sizes.size()) {
        why = "wave " + std::to_string(w + 1) + " waits for approvals";
        printf("fleet: %s; the next wave is not started (approve, then runbook resume %s)\n",
               why.c_str(), fleet.record.id.c_str());
        fleet.stopped = true;
        break;
      }
    }
    // So does a human who wants to look at a wave before the next: a
    // wave whose targets all finished earlier holds nothing back.
    if (fleet.pause_between && started && !fleet.stopped && !g_interrupted &&
        w + 1 < sizes.size()) {
      why = "wave " + std::to_string(w + 1) + " done; wave " + std::to_string(w + 2) + " waits";
      printf("fleet: %s: runbook resume %s starts it\n", why.c_str(), fleet.record.id.c_str());
      for (size_t i = end; i < fleet.targets.size(); ++i) fleet.outcomes[i].status = "next wave";
      fleet.stopped = true;
    }
    // A gate before each wave after the first: someone approves it, from
    // anywhere; earlier approvals (a resumed fleet) count.
    if (fleet.approve_waves && !fleet.stopped && !g_interrupted && w + 1 < sizes.size() &&
        !fleet.WaveApproved(static_cast<int>(w) + 2) && !g_interrupted) {
      why = "wave " + std::to_string(w + 2) + " waits for approval";
      printf("fleet: %s: runbook approve %s wave-%zu, then runbook resume %s\n", why.c_str(),
             fleet.record.id.c_str(), w + 2, fleet.record.id.c_str());
      for (size_t i = end; i < fleet.targets.size(); ++i) fleet.outcomes[i].status = "next wave";
      fleet.stopped = true;
    }
  }
  if (g_interrupted) {
    why = "interrupted: no more targets were started";
    printf("fleet: %s\n", why.c_str());
  }
  if (fleet.failures > fleet.max_failures) {
    why = "stopped starting targets: " + std::to_string(fleet.failures) + " failed (" +
          std::to_string(fleet.max_failures) + " tolerated)";
    printf("fleet: %s\n", why.c_str());
  }
  fleet.PrintSummary();
  // The runbook's sources stay in the cluster only while a Job may need them.
  if (fleet.kube && std::none_of(fleet.outcomes.begin(), fleet.outcomes.end(),
                                 [](const Outcome& o) { return o.status == "running"; })) {
    fleet.kube->Cleanup();
  }
  const ExitCode code = fleet.Code();
  fleet.FinishRecord(code, why);
  printf("fleet %s: runbook status %s; runbook report %s\n", fleet.record.id.c_str(),
         fleet.record.id.c_str(), fleet.record.id.c_str());
  cli.exit_code = static_cast<int>(code);
}

}  // namespace

void AddFleetCommand(CLI::App& app, Cli& cli) {
  static std::string file, targets_file, targets_query, targets_dsn;
  static std::vector<std::string> pairs, waves;
  static int max_concurrency = 1, max_failures = 0;
  static bool yes = false, dry_run = false, status_only = false, pause_between = false;
  static bool approve_waves = false;
  static std::string approval_wait, executor = "local";
  static KubeExecutorOptions kube;
  static std::vector<std::string> pod_annotations;
  auto* cmd = app.add_subcommand(
      "fleet", "run one runbook over many targets, in waves (each target an ordinary run)");
  cmd->add_option("FILE", file, "runbook")->required();
  auto* from_file =
      cmd->add_option("--targets", targets_file,
                      "YAML or JSON: a list of {name, params}, or a map of name: params");
  auto* from_query = cmd->add_option(
      "--targets-query", targets_query,
      "instead of --targets: a PostgreSQL query whose rows are the targets (column name, the "
      "other columns params; NULL: the param's default), run read-only at --targets-dsn");
  from_file->excludes(from_query);
  cmd->add_option("--targets-dsn", targets_dsn,
                  "where --targets-query runs: libpq conninfo or URI (default: PGHOST, "
                  "PGSERVICE... as psql); its password from PGPASSWORD, .pgpass or the service")
      ->needs(from_query);
  cmd->add_option("-p,--param", pairs,
                  "a param for every target, name=value (repeatable; a target's own params "
                  "win)");
  cmd->add_option("--wave", waves,
                  "a wave's size: a count (1), a share (10%) or rest; repeatable, in order; what "
                  "is left is a last wave");
  cmd->add_option("--max-concurrency", max_concurrency, "targets run at once (default 1)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-failures", max_failures,
                  "failed targets tolerated; one more stops the fleet from starting others "
                  "(default 0)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_flag("--pause-between-waves", pause_between,
                "stop (exit 3) after each wave that started a target; resume the fleet, once "
                "its results are looked at, to start the next");
  auto* gates = cmd->add_flag("--approve-waves", approve_waves,
                              "a gate before each wave after the first: runbook approve FLEET "
                              "wave-N (from any machine on this state store) lets it start");
  gates->excludes(cmd->get_option("--pause-between-waves"));
  cmd->add_option("--wait-for-approval", approval_wait,
                  "with --approve-waves, wait this long (30m, 2h) at a gate, then pause (exit 3); "
                  "without it a gate pauses at once")
      ->needs(gates);
  cmd->add_flag("--yes", yes,
                "pre-approve every approval gate of every target (not the fleet's own "
                "--approve-waves gates)");
  cmd->add_flag("--dry-run", dry_run, "rehearse every target");
  cmd->add_option("--executor", executor,
                  "local: each target a child process here (default); kube: each target a "
                  "Kubernetes Job whose pod runs this binary against the shared PostgreSQL state")
      ->check(CLI::IsMember({"local", "kube"}));
  const std::string k = "kube executor";
  cmd->add_option("--image", kube.image, "the Jobs' image (any with the runbook binary)")->group(k);
  cmd->add_option("--pod-command", kube.command, "the binary in the image (default runbook)")
      ->group(k);
  cmd->add_option("--namespace", kube.namespace_, "the Jobs' namespace (default: kubeconfig's)")
      ->group(k);
  cmd->add_option("--kube-context", kube.context, "kubeconfig context (default: current)")
      ->group(k);
  cmd->add_option("--state-secret", kube.state_secret,
                  "NAME[/KEY]: the Secret whose key (default uri) holds the state store's URI as "
                  "the pods reach it")
      ->group(k);
  cmd->add_option("--service-account", kube.service_account, "the pods' service account")->group(k);
  cmd->add_option("--backoff-limit", kube.backoff_limit,
                  "pods a Job may lose (not counting node drains and other disruptions, which "
                  "are made again) before it fails (default 6)")
      ->group(k);
  cmd->add_option("--pod-annotation", pod_annotations,
                  "key=value on every pod (repeatable; e.g. sidecar.istio.io/inject=false)")
      ->group(k);
  cmd->add_flag("--status", status_only,
                "start nothing: each target's last run (status, run, duration, failed step)");
  cmd->callback([&cli]() {
    Fleet fleet;
    fleet.cli = &cli;
    fleet.rb = cli.Load(file);
    if (!fleet.rb) {
      cli.exit_code = static_cast<int>(ExitCode::kInvalid);
      return;
    }
    const Runbook& rb = *fleet.rb;
    if (pause_between && dry_run) {
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                "--pause-between-waves with --dry-run: a rehearsal fleet "
                                "rehearses every target anew, so it would never pass wave 1");
      return;
    }
    if (max_concurrency > 1 && !HasTemplate(rb.lock)) {
      const std::string key = rb.lock.empty() ? rb.name : rb.lock;
      cli.exit_code = cli.Error(
          ExitCode::kInvalid,
          "--max-concurrency " + std::to_string(max_concurrency) + ": every target of " + file +
              " takes the run lock '" + key +
              "', so no two can run at once; give the runbook a lock per target (e.g. lock: "
              "\"db:${{ params.database }}\") or run one at a time");
      return;
    }
    if (targets_file.empty() == targets_query.empty()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                "fleet: give the targets: --targets FILE or --targets-query SQL");
      return;
    }
    Result<std::vector<Target>> targets =
        targets_query.empty() ? ReadTargets(targets_file)
                              : QueryTargets(cli.registry, targets_dsn, targets_query);
    if (!targets.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, targets.status().message());
      return;
    }
    Result<std::vector<size_t>> sizes = WaveSizes(waves, targets->size());
    if (!sizes.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, sizes.status().message());
      return;
    }
    fleet.digest = RunbookDigest(rb);
    std::optional<KubeExecutorOptions> use_kube;
    if (executor == "kube") {
      for (const std::string& a : pod_annotations) {
        const size_t eq = a.find('=');
        if (eq == std::string::npos || eq == 0) {
          cli.exit_code =
              cli.Error(ExitCode::kInvalid, "--pod-annotation " + a + ": expected key=value");
          return;
        }
        kube.pod_annotations[a.substr(0, eq)] = a.substr(eq + 1);
      }
      use_kube = kube;
    } else if (!kube.image.empty() || !kube.state_secret.empty() || !kube.namespace_.empty() ||
               !kube.context.empty() || !kube.service_account.empty() ||
               kube.command != "runbook" || kube.backoff_limit != 6 || !pod_annotations.empty()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                "the kube executor's options (--image, --state-secret, ...) are "
                                "for --executor kube; nothing was started");
      return;
    }
    if (Status s = UseExecutor(cli, fleet, use_kube); !s.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, s.message() + "; nothing was started");
      return;
    }
    auto store = cli.OpenStore();
    if (!store) return;
    std::error_code ec;
    fleet.store = store.get();
    fleet.runbook_path = std::filesystem::weakly_canonical(std::filesystem::absolute(file), ec);
    fleet.targets = std::move(*targets);
    fleet.sizes = std::move(*sizes);
    fleet.pairs = pairs;
    fleet.yes = yes;
    fleet.dry_run = dry_run;
    fleet.pause_between = pause_between;
    fleet.approve_waves = approve_waves;
    if (!approval_wait.empty()) {
      std::optional<std::chrono::milliseconds> d = ParseDuration(approval_wait);
      if (!d || d->count() <= 0) {
        cli.exit_code = cli.Error(ExitCode::kInvalid, "--wait-for-approval " + approval_wait +
                                                          ": a duration such as 30m or 2h");
        return;
      }
      fleet.approval_wait = *d;
    }
    fleet.max_concurrency = max_concurrency;
    fleet.max_failures = max_failures;
    fleet.source = targets_query.empty()
                       ? "--targets " + targets_file
                       : "--targets-query (" + std::to_string(fleet.targets.size()) + " rows)";
    Execute(cli, fleet, status_only);
  });
}

namespace {

// ResumeFleet with the record's definition `def` read by at(): a record
// this binary cannot read throws, and is said so.
void ResumeFleetFrom(Cli& cli, StateStore& store, const RunRecord& record, const Value& def,
                     const std::vector<std::string>& given, bool yes, bool allow_changed,
                     std::chrono::milliseconds approval_wait) {
  Fleet fleet;
  fleet.cli = &cli;
  fleet.rb = cli.Load(record.runbook_path);
  if (!fleet.rb) {
    cli.exit_code = static_cast<int>(ExitCode::kInvalid);
    return;
  }
  const std::string shown = cli.ShownStatus(store, record);
  if (shown == "running") {
    cli.exit_code = cli.Error(ExitCode::kLocked, "fleet " + record.id +
                                                     " is running (another engine holds it); "
                                                     "nothing was started");
    return;
  }
  if (shown == "succeeded") {
    printf("fleet %s succeeded: nothing to resume\n", record.id.c_str());
    cli.exit_code = 0;
    return;
  }
  fleet.digest = RunbookDigest(*fleet.rb);
  std::optional<KubeExecutorOptions> use_kube;
  if (const Value ex = def.value("executor", Value::object()); ex.value("kind", "") == "kube") {
    Result<KubeExecutorOptions> o = KubeExecutorOptions::FromValue(ex);
    if (!o.ok()) {
      cli.exit_code =
          cli.Error(ExitCode::kInternal, "fleet " + record.id + ": " + o.status().message());
      return;
    }
    use_kube = *o;
  }
  if (Status s = UseExecutor(cli, fleet, use_kube); !s.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInvalid,
                              "fleet " + record.id + ": " + s.message() + "; nothing was started");
    return;
  }
  if (fleet.digest != record.digest && !allow_changed) {
    cli.exit_code = cli.Error(ExitCode::kInvalid,
                              "fleet " + record.id + ": " + record.runbook_path +
                                  " changed since the fleet started; nothing was started (resume "
                                  "with --allow-changed to go on with the runbook as it is now)");
    return;
  }
  // The params the record could not keep (secrets, values holding one)
  // must be given again: -p for all targets, or env: for a secret param.
  // Only those: a resumed fleet is the fleet that was started, and a
  // target's own secret (one dsn per target) cannot come from one -p.
  std::set<std::string> withheld;
  for (const Value& n : def.at("common_withheld")) withheld.insert(n.get<std::string>());
  std::set<std::string> given_names;
  for (const std::string& pair : given) {
    const std::string name = pair.substr(0, pair.find('='));
    const ParamSpec* spec = fleet.rb->FindParam(name);
    if (!withheld.count(name) && !(spec && spec->secret)) {
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                "fleet " + record.id + ": -p " + name +
                                    ": a resumed fleet takes only the params its record could "
                                    "not keep (secrets); the others are as the fleet was started "
                                    "(another job: runbook fleet FILE --targets ...); nothing "
                                    "was started");
      return;
    }
    given_names.insert(name);
  }
  auto missing = [&](const std::string& name) {
    if (given_names.count(name)) return false;
    const ParamSpec* spec = fleet.rb->FindParam(name);
    return !(spec && spec->secret && !spec->env.empty() && getenv(spec->env.c_str()));
  };
  for (const Value& n : def.at("common_withheld")) {
    if (missing(n.get<std::string>())) {
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                "fleet " + record.id + ": param '" + n.get<std::string>() +
                                    "' holds a secret and was not stored: give it again (-p " +
                                    n.get<std::string>() + "=...); nothing was started");
      return;
    }
  }
  for (const std::string& pair : def.at("common").get<std::vector<std::string>>()) {
    if (!given_names.count(pair.substr(0, pair.find('=')))) fleet.pairs.push_back(pair);
  }
  fleet.pairs.insert(fleet.pairs.end(), given.begin(), given.end());
  std::string text;
  for (const Value& t : def.at("targets")) {
    if (!t.at("withheld").empty()) {
      cli.exit_code = cli.Error(
          ExitCode::kInvalid,
          "fleet " + record.id + ": target '" + t.at("name").get<std::string>() + "': its param '" +
              t.at("withheld")[0].get<std::string>() +
              "' held a secret and was not stored, and one -p cannot give each target its own: "
              "run the fleet again with its targets (runbook fleet FILE --targets ...); nothing "
              "was started");
      return;
    }
    YAML::Node params;
    try {
      params = YAML::Load(t.at("params").get<std::string>());
    } catch (const YAML::Exception& e) {
      cli.exit_code =
          cli.Error(ExitCode::kInternal, "fleet " + record.id + ": its record: " + e.msg);
      return;
    }
    YAML::Emitter entry;
    entry << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value
          << t.at("name").get<std::string>() << YAML::Key << "params" << YAML::Value << params
          << YAML::EndMap;
    text += std::string("- ") + entry.c_str() + "\n";
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    cli.exit_code = cli.Error(ExitCode::kInternal, "fleet " + record.id + ": its record: " + e.msg);
    return;
  }
  Result<std::vector<Target>> targets = TargetsOf(root, "fleet " + record.id);
  if (!targets.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInternal, targets.status().message());
    return;
  }
  Result<std::vector<StepRecord>> steps = store.GetSteps(record.id);
  if (!steps.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInternal, steps.status().message());
    return;
  }
  fleet.store = &store;
  fleet.record = record;
  fleet.runbook_path = record.runbook_path;
  fleet.targets = std::move(*targets);
  // Each target's record by its step id ("targets[3]").
  std::map<std::string, StepRecord> by_id;
  for (const StepRecord& s : *steps) by_id[s.step_id] = s;
  for (size_t i = 0; i < fleet.targets.size(); ++i) {
    auto it = by_id.find("targets[" + std::to_string(i + 1) + "]");
    if (it == by_id.end()) {
      cli.exit_code =
          cli.Error(ExitCode::kInternal, "fleet " + record.id + ": its record lacks target '" +
                                             fleet.targets[i].name + "'");
      return;
    }
    fleet.target_steps.push_back(it->second);
  }
  fleet.sizes = def.at("waves").get<std::vector<size_t>>();
  fleet.yes = yes || def.at("yes").get<bool>();
  fleet.dry_run = record.dry_run;
  fleet.pause_between = def.at("pause_between_waves").get<bool>();
  fleet.approve_waves = def.value("approve_waves", false);
  if (approval_wait.count() > 0 && !fleet.approve_waves) {
    cli.exit_code = cli.Error(ExitCode::kInvalid,
                              "fleet " + record.id +
                                  ": --wait-for-approval is for the gates of a fleet started "
                                  "with --approve-waves (its targets' gates are in their runs); "
                                  "nothing was started");
    return;
  }
  fleet.approval_wait = approval_wait;
  fleet.allow_changed = allow_changed;
  fleet.max_concurrency = def.at("max_concurrency").get<int>();
  fleet.max_failures = def.at("max_failures").get<int>();
  fleet.resumed_note =
      "resumed by " + OperatorName() +
      (fleet.digest != record.digest
           ? " with the runbook changed (--allow-changed; now sha256:" + fleet.digest + ")"
           : "");
  Execute(cli, fleet, false);
}

}  // namespace

void PrintFleet(Cli& cli, StateStore& store, const RunRecord& record, bool json) {
  Result<std::vector<StepRecord>> steps = store.GetSteps(record.id);
  if (!steps.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInternal, steps.status().message());
    return;
  }
  Value targets = Value::array(), gates = Value::array();
  for (const StepRecord& s : *steps) {
    const Value& r = s.result;
    if (s.action == "fleet.wave") {  // a gate of --approve-waves
      std::string by = r.value("approved_by", "");
      if (by.empty()) {  // approved since, maybe: the fleet passes it when resumed
        Result<std::optional<Approval>> a = store.GetApproval(record.id, s.step_id);
        if (a.ok() && a->has_value()) by = (*a)->by;
      }
      gates.push_back({{"gate", s.step_id},
                       {"status", s.status == StepStatus::kSucceeded ? "passed"
                                  : by.empty()                       ? "waiting"
                                                                     : "approved"},
                       {"approved_by", by}});
      continue;
    }
    const std::string run = r.value("run", "");
    std::string now = "-";  // the target's run as it is now (resumed by hand since...)
    if (!run.empty()) {
      Result<RunRecord> rr = store.GetRun(run);
      now = rr.ok() ? cli.ShownStatus(store, *rr) : "gone";
    }
    targets.push_back({{"target", r.value("target", "")},
                       {"wave", r.value("wave", 0)},
                       {"outcome", r.value("status", "")},
                       {"run", run},
                       {"run_status", now},
                       {"duration_ms", s.duration_ms},
                       {"failed_step", r.value("failed_step", "")},
                       {"note", r.value("note", "")}});
  }
  const std::string shown = cli.ShownStatus(store, record);
  if (json) {
    Value out{{"fleet", record.id},
              {"runbook", record.runbook_name},
              {"status", shown},
              {"dry_run", record.dry_run},
              {"started", FormatUtc(record.created_ms)},
              {"error", record.error},
              {"targets", targets},
              {"gates", gates}};
    printf("%s\n", out.dump(2).c_str());
    return;
  }
  printf("fleet %s  %s  %s%s  started %s\n", record.id.c_str(),
         TerminalSafe(record.runbook_name).c_str(), shown.c_str(),
         record.dry_run ? " (rehearsal)" : "", FormatUtc(record.created_ms).c_str());
  if (!record.error.empty()) printf("  %s\n", TerminalSafe(record.error).c_str());
  printf("  %-24s %4s  %-14s %-22s %-22s %9s  %s\n", "target", "wave", "outcome", "run",
         "run status now", "duration", "failed step");
  for (const Value& t : targets) {
    const int64_t ms = t["duration_ms"].get<int64_t>();
    const std::string run = t["run"].get<std::string>();
    const std::string failed = t["failed_step"].get<std::string>();
    printf("  %-24s %4s  %-14s %-22s %-22s %9s  %s\n",
           TerminalSafe(t["target"].get<std::string>()).c_str(),
           t["wave"].get<int>() ? std::to_string(t["wave"].get<int>()).c_str() : "-",
           t["outcome"].get<std::string>().c_str(), run.empty() ? "-" : run.c_str(),
           t["run_status"].get<std::string>().c_str(),
           ms ? FormatDuration(Millis(ms)).c_str() : "-",
           failed.empty() ? "-" : TerminalSafe(failed).c_str());
  }
  for (const Value& g : gates) {
    const std::string gate = g["gate"].get<std::string>();
    const std::string by = TerminalSafe(g["approved_by"].get<std::string>());
    const std::string status = g["status"].get<std::string>();
    const std::string shown =
        status == "waiting"    ? "waiting for: runbook approve " + record.id + " " + gate
        : status == "approved" ? "approved by " + by + "; runbook resume " + record.id + " goes on"
                               : "approved by " + by;
    printf("  %s: %s\n", gate.c_str(), shown.c_str());
  }
}

bool ResumeFleet(Cli& cli, StateStore& store, const RunRecord& record,
                 const std::vector<std::string>& given, bool yes, bool allow_changed,
                 std::chrono::milliseconds approval_wait) {
  if (!IsFleet(record)) return false;
  try {
    ResumeFleetFrom(cli, store, record, record.options.at("fleet"), given, yes, allow_changed,
                    approval_wait);
  } catch (const Value::exception& e) {
    cli.exit_code = cli.Error(ExitCode::kInternal, "fleet " + record.id +
                                                       ": its record is not one this binary "
                                                       "reads (" +
                                                       e.what() + ")");
  }
  return true;
}

}  // namespace runbook

namespace runbook {
namespace {

// How long a pod waits for the lease of a run whose engine is gone with
// its node (its lease has to expire): the lease's length and a margin.
std::chrono::seconds LeaseWait() {
  Result<std::chrono::seconds> length = LeaseLength();  // the CLI refused a bad one
  return (length.ok() ? *length : std::chrono::seconds(30)) + std::chrono::seconds(15);
}

// Exit codes of a pod that did not start or resume a run: its run's
// status (1-6, which end the Job) or, for what may pass, 70 (the Job makes
// another pod).
int ExitCodeOfStatus(const std::string& shown) {
  if (shown == "succeeded") return 0;
  if (shown == "paused") return static_cast<int>(ExitCode::kPaused);
  if (shown == "rollback_failed") return static_cast<int>(ExitCode::kRollbackFailed);
  if (shown == "running" || shown == "rolling_back") return static_cast<int>(ExitCode::kLocked);
  return static_cast<int>(ExitCode::kRunFailed);  // failed, rolled back, stopped
}

// What the pod was told: the fleet's decision for the target ("run" or
// "resume") and the target's last run the fleet saw then ("" for none).
struct PodOrder {
  std::string fleet_id, target, decided, seen, digest;
  bool dry_run = false, yes = false, allow_changed = false;
};

// In a fleet's pod: the target's run as the fleet decided it (a new run, or
// the resumption of the run it saw), unless an earlier pod of this Job
// already started one: then that run is resumed, or its outcome is the
// pod's exit code. A pod never starts a second run. The run is this
// process (exec): a lost pod takes its engine with it. Returns an exit code
// if it does not exec.
int RunFleetTarget(Cli& cli, const PodOrder& order) {
  const char* sources = getenv("RUNBOOK_FLEET_SOURCES");
  const char* params = getenv("RUNBOOK_FLEET_PARAMS");
  if (!sources || !params) {
    return cli.Error(ExitCode::kInvalid,
                     "fleet-target runs in a pod of `runbook fleet --executor kube`: "
                     "RUNBOOK_FLEET_SOURCES and RUNBOOK_FLEET_PARAMS are not set");
  }
  const std::string params_text = params;
  Result<std::string> main_path = LayOutPodSources(sources);
  // No step's child inherits them: they may hold secrets.
  unsetenv("RUNBOOK_FLEET_SOURCES");
  unsetenv("RUNBOOK_FLEET_PARAMS");
  if (!main_path.ok()) return cli.Error(ExitCode::kInternal, main_path.status().message());
  Fleet fleet;
  fleet.cli = &cli;
  fleet.rb = cli.Load(*main_path);
  if (!fleet.rb) return static_cast<int>(ExitCode::kInvalid);
  fleet.digest = fleet.run_digest = RunbookDigest(*fleet.rb);
  if (!order.digest.empty() && fleet.digest != order.digest) {
    return cli.Error(ExitCode::kInvalid,
                     "the runbook laid out at " + *main_path + " has digest " + fleet.digest +
                         ", not the fleet's " + order.digest +
                         " (is a directory of its path a symbolic link in this image?)");
  }
  Target t;
  t.name = order.target;
  t.child_yaml = params_text;
  fleet.targets.push_back(std::move(t));
  fleet.outcomes.assign(1, Outcome{});
  fleet.record.id = order.fleet_id;
  fleet.runbook_path = *main_path;
  fleet.dry_run = order.dry_run;
  fleet.yes = order.yes;
  fleet.allow_changed = order.allow_changed;
  auto store = cli.OpenStore();
  if (!store) return static_cast<int>(ExitCode::kInternal);  // the store away: another pod
  fleet.store = store.get();
  // The pods and their fleet share one store: a Secret pointing at another
  // would run the target with other locks and records.
  Result<RunRecord> own = store->GetRun(order.fleet_id);
  if (!own.ok() || !IsFleet(*own)) {
    return cli.Error(ExitCode::kInvalid, "fleet " + order.fleet_id +
                                             " is not in this state store: the Secret given "
                                             "with --state-secret names another store");
  }
  // The target's newest run; one still held by an engine that is gone with
  // its node waits for its lease to expire (one of this machine that is
  // gone frees it at once).
  const auto until = std::chrono::steady_clock::now() + LeaseWait();
  const RunRecord* cur = nullptr;
  std::string shown;
  for (;;) {
    fleet.last.clear();
    if (Status s = fleet.ReadLastRuns(); !s.ok()) {
      return cli.Error(ExitCode::kInternal, "cannot read the target's last run: " + s.message());
    }
    auto it = fleet.last.find(order.target);
    cur = it == fleet.last.end() ? nullptr : &it->second;
    if (!cur) break;
    shown = cli.ShownStatus(*store, *cur);
    if ((shown != "running" && shown != "rolling_back") ||
        std::chrono::steady_clock::now() >= until) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::string what = order.decided;
  const RunRecord* prev = nullptr;
  if (cur && cur->id != order.seen) {
    // Started since the fleet decided: by an earlier pod of this Job, or
    // by someone else.
    if (cur->options.value("fleet_id", "") != order.fleet_id) {
      return cli.Error(ExitCode::kLocked, "target " + order.target + ": run " + cur->id +
                                              " started since the fleet decided; nothing done");
    }
    if (shown != "interrupted" && shown != "interrupted_rollback") {
      printf("fleet %s: target %s: run %s is %s\n", order.fleet_id.c_str(),
             TerminalSafe(order.target).c_str(), cur->id.c_str(), shown.c_str());
      return ExitCodeOfStatus(shown);
    }
    what = "resume";
    prev = cur;
  } else if (what == "resume") {
    if (!cur) return cli.Error(ExitCode::kInternal, "the run to resume is not in the store");
    if (shown != "interrupted" && shown != "interrupted_rollback" && shown != "paused") {
      printf("fleet %s: target %s: run %s is %s\n", order.fleet_id.c_str(),
             TerminalSafe(order.target).c_str(), cur->id.c_str(), shown.c_str());
      return ExitCodeOfStatus(shown);
    }
    prev = cur;
  } else if (what != "run") {
    return cli.Error(ExitCode::kInvalid, "--decided is run or resume");
  }
  std::vector<std::string> argv = fleet.ChildArgv(0, what, prev);
  printf("fleet %s: target %s: %s%s\n", order.fleet_id.c_str(), TerminalSafe(order.target).c_str(),
         what == "resume" ? "resuming run " : "a new run",
         what == "resume" ? prev->id.c_str() : "");
  fflush(stdout);
  fflush(stderr);
  // The params on stdin from a pipe already filled and closed: not argv,
  // and nothing a step could read again from this process's files.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return cli.Error(ExitCode::kInternal, std::string("pipe: ") + strerror(errno));
  }
  const size_t want = std::max<size_t>(params_text.size() + 1, 65536);
  if (params_text.size() >= 65536 && fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(want)) < 0) {
    return cli.Error(ExitCode::kInvalid, "the target's params are too large for a pipe");
  }
  const bool written = write(fds[1], params_text.data(), params_text.size()) ==
                       static_cast<ssize_t>(params_text.size());
  close(fds[1]);
  if (!written || dup2(fds[0], STDIN_FILENO) < 0) {
    return cli.Error(ExitCode::kInternal,
                     std::string("cannot pass the params: ") + strerror(errno));
  }
  close(fds[0]);
  setenv("RUNBOOK_STATE", cli.StatePath().c_str(), 1);
  unsetenv("RUNBOOK_STATE_WITHHELD");
  store.reset();
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  return cli.Error(ExitCode::kInternal, std::string("cannot start the run: ") + strerror(errno));
}

}  // namespace

void AddFleetTargetCommand(CLI::App& app, Cli& cli) {
  static PodOrder order;
  auto* cmd = app.add_subcommand("fleet-target",
                                 "in a pod of `runbook fleet --executor kube`: run or resume one "
                                 "target's run");
  cmd->group("");  // not for people: the Jobs' command
  cmd->add_option("--fleet", order.fleet_id)->required();
  cmd->add_option("--target", order.target)->required();
  cmd->add_option("--decided", order.decided)->required();
  cmd->add_option("--seen", order.seen);
  cmd->add_option("--digest", order.digest);
  cmd->add_flag("--dry-run", order.dry_run);
  cmd->add_flag("--yes", order.yes);
  cmd->add_flag("--allow-changed", order.allow_changed);
  cmd->callback([&cli]() { cli.exit_code = RunFleetTarget(cli, order); });
}

}  // namespace runbook
