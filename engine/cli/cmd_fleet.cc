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
#include "engine/core/process.h"
#include "engine/core/schema.h"
#include "engine/exec/executor.h"
#include "engine/exec/reporter.h"
#include "engine/lua/runtime.h"

namespace runbook {
namespace {

struct Target {
  std::string name;
  YAML::Node params;                // as written (a map, or null)
  std::string params_yaml;          // what the child reads on stdin
  std::vector<std::string> common;  // the common name=value pairs it does not override
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
};

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
  std::vector<Target> targets;
  std::map<std::string, RunRecord> last;  // target name -> its last run
  bool yes = false, dry_run = false;
  int max_concurrency = 1, max_failures = 0;

  std::mutex mu;  // guards what follows, and printing
  std::vector<Outcome> outcomes;
  int failures = 0;
  bool stopped = false;  // max_failures exceeded: no more starts

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
    auto it = last.find(t.name);
    if (it == last.end() || dry_run) return "run";
    const RunRecord& r = it->second;
    *prev = &r;
    const std::string shown = cli->ShownStatus(*store, r);
    o.run_id = r.id;
    if (shown == "succeeded") {
      if (r.digest == digest && SameParams(r.params, t.resolved)) {
        o.status = "skipped";
        o.note = "succeeded before";
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

  void RunOne(size_t i) {
    const Target& t = targets[i];
    Outcome& o = outcomes[i];
    const RunRecord* prev = nullptr;
    const std::string what = Decide(i, &prev);
    if (what.empty()) return;
    o.started = true;
    ProcessSpec spec;
    spec.argv = {"/proc/self/exe"};
    if (what == "resume") {
      spec.argv.insert(spec.argv.end(), {"resume", prev->id, "--params-file", "/dev/stdin"});
    } else {
      o.run_id.clear();
      spec.argv.insert(spec.argv.end(), {"run", runbook_path, "--params-file", "/dev/stdin",
                                         "--fleet-target=" + t.name});
      if (dry_run) spec.argv.push_back("--dry-run");
    }
    for (const std::string& pair : t.common) spec.argv.push_back("--param=" + pair);
    spec.argv.push_back("--no-color");
    if (yes) spec.argv.push_back("--yes");
    spec.stdin_data = t.params_yaml;
    spec.env["RUNBOOK_STATE"] = cli->StatePath();
    spec.max_output = 1 << 20;
    const auto start = std::chrono::steady_clock::now();
    Result<ProcessResult> r = ProcessRunner::Real().Run(spec);
    o.ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
               .count();
    if (!r.ok()) {
      o.status = "failed";
      o.failure = true;
      o.note = r.status().message();
      return;
    }
    if (what == "run") o.run_id = NewRunIdOf(r->out);
    switch (r->exit_code) {
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
    if (r->exit_code != 0) {
      o.note = r->signal ? "killed by signal " + std::to_string(r->signal)
                         : LastLine(r->err.empty() ? r->out : r->err);
    }
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
      failed |= o.failure || o.status == "not started";
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

}  // namespace

void AddFleetCommand(CLI::App& app, Cli& cli) {
  static std::string file, targets_file, targets_query, targets_dsn;
  static std::vector<std::string> pairs, waves;
  static int max_concurrency = 1, max_failures = 0;
  static bool yes = false, dry_run = false, status_only = false, pause_between = false;
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
                "stop (exit 3) after each wave that started a target; run the fleet again, "
                "once its results are looked at, to start the next");
  cmd->add_flag("--yes", yes, "pre-approve every approval gate of every target");
  cmd->add_flag("--dry-run", dry_run, "rehearse every target");
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
    // Every target's params checked before anything starts, from exactly
    // what its run will be given.
    for (Target& t : *targets) {
      for (const std::string& pair : pairs) {
        const std::string name = pair.substr(0, pair.find('='));
        if (!(t.params.IsMap() && t.params[name])) t.common.push_back(pair);
      }
      TempParams tp(t.params_yaml);
      if (tp.path().empty()) {
        cli.exit_code = cli.Error(ExitCode::kInternal, "fleet: cannot write a params file in /tmp");
        return;
      }
      std::optional<Value> params = cli.Params(rb, t.common, tp.path());
      if (!params) {
        fprintf(stderr, "runbook: fleet: target '%s': invalid params; nothing was started\n",
                TerminalSafe(t.name).c_str());
        return;
      }
      t.resolved = *params;
    }
    if (max_concurrency > 1) {
      if (Status s = CheckLockKeys(rb, *targets, dry_run); !s.ok()) {
        cli.exit_code = cli.Error(ExitCode::kInvalid,
                                  "fleet: " + TerminalSafe(s.message()) + "; nothing was started");
        return;
      }
    }
    auto store = cli.OpenStore();
    if (!store) return;
    std::error_code ec;
    fleet.store = store.get();
    fleet.runbook_path = std::filesystem::weakly_canonical(std::filesystem::absolute(file), ec);
    fleet.digest = RunbookDigest(rb);
    fleet.targets = std::move(*targets);
    fleet.outcomes.resize(fleet.targets.size());
    fleet.yes = yes;
    fleet.dry_run = dry_run;
    fleet.max_concurrency = max_concurrency;
    fleet.max_failures = max_failures;
    if (Status s = fleet.ReadLastRuns(); !s.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInternal, "fleet: cannot read the targets' last runs (" +
                                                         s.message() + "); nothing was started");
      return;
    }
    if (status_only) {
      fleet.PrintLastRuns();
      return;
    }
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    printf("fleet %s: %zu targets in %zu waves, %d at once, %d failures tolerated\n",
           TerminalSafe(rb.name).c_str(), fleet.targets.size(), sizes->size(), max_concurrency,
           max_failures);
    size_t begin = 0;
    for (size_t w = 0; w < sizes->size() && !fleet.stopped && !g_interrupted; ++w) {
      fleet.RunWave(begin, begin + (*sizes)[w], static_cast<int>(w) + 1);
      const size_t end = begin + (*sizes)[w];
      begin = end;
      // A wave waiting for an approval holds the next one back.
      bool started = false;
      for (size_t i = end - (*sizes)[w]; i < end; ++i) {
        started |= fleet.outcomes[i].started;
        if (fleet.outcomes[i].status == "paused" && w + 1 < sizes->size()) {
          printf(
              "fleet: wave %zu waits for approvals; the next wave is not started (approve, "
              "then run the fleet again)\n",
              w + 1);
          fleet.stopped = true;
          break;
        }
      }
      // So does a human who wants to look at a wave before the next: a
      // wave whose targets all finished earlier holds nothing back.
      if (pause_between && started && !fleet.stopped && !g_interrupted && w + 1 < sizes->size()) {
        printf("fleet: wave %zu done; wave %zu waits: run the fleet again to start it\n", w + 1,
               w + 2);
        for (size_t i = end; i < fleet.targets.size(); ++i) fleet.outcomes[i].status = "next wave";
        fleet.stopped = true;
      }
    }
    if (g_interrupted) printf("fleet: interrupted: no more targets were started\n");
    if (fleet.failures > max_failures) {
      printf("fleet: stopped starting targets: %d failed (%d tolerated)\n", fleet.failures,
             max_failures);
    }
    fleet.PrintSummary();
    cli.exit_code = static_cast<int>(fleet.Code());
  });
}

}  // namespace runbook
