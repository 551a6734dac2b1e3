// runbook fleet: one runbook over many targets, in waves, each target an
// ordinary run (its own journal, lock, rollback and report) in a child
// process of this binary, with the same state store.
//
// Every target's params are checked against the runbook before anything
// starts. A target is started once per invocation: run again with the same
// targets, the fleet skips the targets whose last run succeeded, resumes
// those that stopped part-way (interrupted, paused, stopped, failed
// unfinished) and starts again those that rolled back.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "engine/cli/cli.h"
#include "engine/core/clock.h"
#include "engine/core/process.h"
#include "engine/core/schema.h"
#include "engine/exec/reporter.h"

namespace runbook {
namespace {

struct Target {
  std::string name;
  Value params = Value::object();
};

struct Outcome {
  std::string status = "not started";  // succeeded, failed, paused, skipped, ...
  std::string run_id;
  std::string failed_step;
  std::string note;
  int64_t ms = 0;
  int wave = 0;
  bool failure = false;
};

Value ScalarOf(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: a string
  if (s == "true" || s == "false") return s == "true";
  char* end = nullptr;
  long long i = strtoll(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0') return i;
  return s;
}

std::string At(const std::string& path, const YAML::Node& n) {
  return path + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
}

// A list of {name, params} (YAML or JSON), or a map name -> params.
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
      for (const auto& kv : params) {
        if (!kv.second.IsScalar()) {
          return Status::Invalid(At(path, kv.second) + ": target '" + t.name + "': param '" +
                                 kv.first.Scalar() + "' is not a scalar");
        }
        t.params[kv.first.Scalar()] = ScalarOf(kv.second);
      }
    }
    targets.push_back(std::move(t));
  }
  return targets;
}

// "1", "10%", "rest" -> wave sizes covering `n` targets; what the specs
// leave is a last wave.
Result<std::vector<size_t>> WaveSizes(const std::vector<std::string>& specs, size_t n) {
  std::vector<size_t> sizes;
  size_t left = n;
  for (const std::string& spec : specs) {
    if (left == 0) break;
    size_t size = 0;
    char* end = nullptr;
    const long v = strtol(spec.c_str(), &end, 10);
    if (spec == "rest") {
      size = left;
    } else if (!spec.empty() && end && *end == '%' && end[1] == '\0' && v > 0 && v <= 100) {
      size = std::max<size_t>(1, static_cast<size_t>(std::ceil(n * v / 100.0)));
    } else if (!spec.empty() && end && *end == '\0' && v > 0) {
      size = static_cast<size_t>(v);
    } else {
      return Status::Invalid("--wave " + spec +
                             ": a count (10), a share of the targets (10%) or "
                             "rest");
    }
    size = std::min(size, left);
    sizes.push_back(size);
    left -= size;
  }
  if (left > 0) sizes.push_back(left);
  return sizes;
}

std::string SelfPath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "runbook";
  return std::string(buf, static_cast<size_t>(n));
}

// A private file holding `params` (JSON is YAML), for --params-file: a
// secret param never appears in a process list. Removed on destruction.
class ParamsFile {
 public:
  explicit ParamsFile(const Value& params) {
    char tmpl[] = "/tmp/runbook-fleet-XXXXXX";
    int fd = mkstemp(tmpl);  // mode 0600
    if (fd < 0) return;
    const std::string text = params.dump();
    bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    close(fd);
    if (ok)
      path_ = tmpl;
    else
      unlink(tmpl);
  }
  ~ParamsFile() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  ParamsFile(const ParamsFile&) = delete;
  ParamsFile& operator=(const ParamsFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The run id a child printed on its first line ("run ID ...", "resume ID ...").
std::string RunIdOf(const std::string& out) {
  const std::string line = out.substr(0, out.find('\n'));
  for (const char* word : {"run ", "rehearsal ", "resume "}) {
    if (line.rfind(word, 0) == 0) {
      const size_t start = strlen(word);
      return line.substr(start, line.find(' ', start) - start);
    }
  }
  return "";
}

struct Fleet {
  Cli* cli = nullptr;
  StateStore* store = nullptr;
  std::string runbook_path;  // absolute
  std::vector<Target> targets;
  Value common = Value::object();
  bool yes = false, dry_run = false;
  int max_concurrency = 1, max_failures = 0;

  std::mutex mu;
  std::vector<Outcome> outcomes;
  int failures = 0;
  bool stopped = false;  // max_failures exceeded: no more starts

  // The last run of target `name` (this runbook, tagged by the fleet), if any.
  std::optional<RunRecord> LastRun(const std::string& name) {
    Result<std::vector<RunRecord>> runs = store->ListRuns(0);
    if (!runs.ok()) return std::nullopt;
    for (const RunRecord& r : *runs) {
      if (r.runbook_path == runbook_path && r.dry_run == dry_run && r.options.is_object() &&
          r.options.value("fleet_target", "") == name) {
        return r;
      }
    }
    return std::nullopt;
  }

  void RunOne(size_t i) {
    const Target& t = targets[i];
    Outcome& o = outcomes[i];
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> argv{SelfPath()};
    std::optional<RunRecord> last = LastRun(t.name);
    const std::string shown = last ? cli->ShownStatus(*store, *last) : "";
    Value params = common;
    for (const auto& [k, v] : t.params.items()) params[k] = v;
    ParamsFile file(params);
    if (shown == "succeeded") {
      o.status = "skipped";
      o.run_id = last->id;
      o.note = "succeeded before";
      return;
    }
    if (shown == "rollback_failed" || shown == "running" || shown == "rolling_back") {
      o.status = shown;
      o.run_id = last->id;
      o.failure = true;
      o.note = shown == "rollback_failed" ? "a human must act" : "another engine runs it";
      return;
    }
    if (file.path().empty()) {
      o.status = "failed";
      o.failure = true;
      o.note = "cannot write its params file in /tmp";
      return;
    }
    if (last && shown != "rolled_back") {
      argv.insert(argv.end(), {"resume", last->id, "--params-file", file.path()});
    } else {
      argv.insert(argv.end(),
                  {"run", runbook_path, "--params-file", file.path(), "--fleet-target=" + t.name});
      if (dry_run) argv.push_back("--dry-run");
    }
    argv.push_back("--no-color");
    if (yes) argv.push_back("--yes");
    ProcessSpec spec;
    spec.argv = argv;
    spec.env["RUNBOOK_STATE"] = cli->StatePath();
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
    o.run_id = RunIdOf(r->out);
    if (o.run_id.empty() && last) o.run_id = last->id;
    switch (r->exit_code) {
      case 0:
        o.status = "succeeded";
        break;
      case 3:
        o.status = "paused";
        o.note = "waiting for an approval";
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
    if (o.failure && o.run_id.empty()) {
      // Refused before a run began: say why, from its last line.
      std::string err = r->err;
      while (!err.empty() && err.back() == '\n') err.pop_back();
      o.note = err.substr(err.rfind('\n') == std::string::npos ? 0 : err.rfind('\n') + 1);
    }
    if (!o.run_id.empty()) {
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
          if (stopped) return;
        }
        const size_t i = next++;
        if (i >= end) return;
        outcomes[i].wave = wave;
        RunOne(i);
        std::lock_guard<std::mutex> lock(mu);
        const Outcome& o = outcomes[i];
        if (o.failure && ++failures > max_failures) stopped = true;
        printf("fleet: wave %d  %-24s %-14s%s%s%s\n", wave, TerminalSafe(targets[i].name).c_str(),
               o.status.c_str(), o.run_id.empty() ? "" : ("  run " + o.run_id).c_str(),
               o.failed_step.empty() ? "" : ("  at step " + o.failed_step).c_str(),
               o.note.empty() ? "" : ("  (" + cli->redactor.Redact(o.note) + ")").c_str());
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
             o.failed_step.empty() ? "-" : o.failed_step.c_str());
    }
  }

  ExitCode Code() const {
    bool failed = false, paused = false, human = false;
    for (const Outcome& o : outcomes) {
      failed |= o.failure || o.status == "not started";
      paused |= o.status == "paused";
      human |= o.status == "needs a human" || o.status == "rollback_failed";
    }
    if (human) return ExitCode::kRollbackFailed;
    if (failed) return ExitCode::kRunFailed;
    if (paused) return ExitCode::kPaused;
    return ExitCode::kOk;
  }
};

}  // namespace

void AddFleetCommand(CLI::App& app, Cli& cli) {
  static std::string file, targets_file;
  static std::vector<std::string> pairs, waves;
  static int max_concurrency = 1, max_failures = 0;
  static bool yes = false, dry_run = false;
  auto* cmd = app.add_subcommand(
      "fleet", "run one runbook over many targets, in waves (each target an ordinary run)");
  cmd->add_option("FILE", file, "runbook")->required();
  cmd->add_option("--targets", targets_file,
                  "YAML or JSON: a list of {name, params}, or a map of name: params")
      ->required();
  cmd->add_option("-p,--param", pairs,
                  "a param for every target, name=value (repeatable; a "
                  "target's own params win)");
  cmd->add_option("--wave", waves,
                  "a wave's size: a count (1), a share (10%) or rest; "
                  "repeatable, in order; what is left is a last wave");
  cmd->add_option("--max-concurrency", max_concurrency, "targets run at once (default 1)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-failures", max_failures,
                  "failed targets tolerated; one more stops the fleet from starting others "
                  "(default 0)")
      ->check(CLI::Range(0, 1000000));
  cmd->add_flag("--yes", yes, "pre-approve every approval gate of every target");
  cmd->add_flag("--dry-run", dry_run, "rehearse every target");
  cmd->callback([&cli]() {
    auto rb = cli.Load(file);
    if (!rb) {
      cli.exit_code = static_cast<int>(ExitCode::kInvalid);
      return;
    }
    if (max_concurrency > 1 && !HasTemplate(rb->lock)) {
      const std::string key = rb->lock.empty() ? rb->name : rb->lock;
      cli.exit_code = cli.Error(
          ExitCode::kInvalid,
          "--max-concurrency " + std::to_string(max_concurrency) + ": every target of " + file +
              " takes the run lock '" + key +
              "', so no two can run at once; give the runbook a lock per target (e.g. lock: "
              "\"db:${{ params.database }}\") or run one at a time");
      return;
    }
    Result<std::vector<Target>> targets = ReadTargets(targets_file);
    if (!targets.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, targets.status().message());
      return;
    }
    Result<std::vector<size_t>> sizes = WaveSizes(waves, targets->size());
    if (!sizes.ok()) {
      cli.exit_code = cli.Error(ExitCode::kInvalid, sizes.status().message());
      return;
    }
    Fleet fleet;
    fleet.cli = &cli;
    // Every target's params checked before anything starts (the common
    // ones as -p pairs, a target's own as its params file would give them).
    for (const Target& t : *targets) {
      ParamsFile pf(t.params);
      std::optional<Value> params = cli.Params(*rb, pairs, pf.path());
      if (!params) {
        fprintf(stderr, "runbook: fleet: target '%s': invalid params; nothing was started\n",
                TerminalSafe(t.name).c_str());
        return;
      }
    }
    for (const std::string& pair : pairs) {
      const size_t eq = pair.find('=');
      fleet.common[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
    auto store = cli.OpenStore();
    if (!store) return;
    std::error_code ec;
    fleet.store = store.get();
    fleet.runbook_path = std::filesystem::weakly_canonical(std::filesystem::absolute(file), ec);
    fleet.targets = *targets;
    fleet.outcomes.resize(fleet.targets.size());
    fleet.yes = yes;
    fleet.dry_run = dry_run;
    fleet.max_concurrency = max_concurrency;
    fleet.max_failures = max_failures;
    printf("fleet %s: %zu targets in %zu waves, %d at once, %d failures tolerated\n",
           rb->name.c_str(), fleet.targets.size(), sizes->size(), max_concurrency, max_failures);
    size_t begin = 0;
    for (size_t w = 0; w < sizes->size() && !fleet.stopped; ++w) {
      fleet.RunWave(begin, begin + (*sizes)[w], static_cast<int>(w) + 1);
      begin += (*sizes)[w];
    }
    if (fleet.stopped) {
      printf("fleet: stopped starting targets: %d failed (%d tolerated)\n", fleet.failures,
             max_failures);
    }
    fleet.PrintSummary();
    cli.exit_code = static_cast<int>(fleet.Code());
  });
}

}  // namespace runbook
