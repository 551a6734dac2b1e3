// Helpers for the end-to-end tests: they run the real `runbook` binary
// (RUNBOOK_BINARY) on runbooks written into a fresh temporary directory, with
// the state store inside it, and look at the effects on disk and in the store.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/process.h"
#include "engine/core/value.h"

namespace runbook::e2e {

// What one invocation of the binary did.
struct CliResult {
  int code = -1;  // exit code; -1 if killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;
  std::string All() const { return out + err; }
};

// A temporary directory (mkdtemp), removed with everything in it on
// destruction. Not copyable.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // path()/name
  std::string P(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A test's world: a temp dir, a state store in it, and the binary.
// Every invocation gets RUNBOOK_STATE=<dir>/state/state.db and NO_COLOR=1.
class E2e {
 public:
  E2e();
  // With the state store at `state` (a PostgreSQL URI) instead.
  explicit E2e(std::string state);
  const std::string& dir() const { return tmp_.path(); }
  std::string P(const std::string& name) const { return tmp_.P(name); }
  const std::string& state() const { return state_; }

  // Writes `text` to dir()/name (parents created) and returns the path.
  std::string Write(const std::string& name, const std::string& text) const;

  // Runs `runbook ARGS...` to completion (argv, never a shell), with extra
  // environment variables, killed after `timeout`.
  CliResult Run(const std::vector<std::string>& args,
                const std::map<std::string, std::string>& env = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

  // The spec Run uses, for starting the binary in the background.
  ProcessSpec Spec(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env = {}) const;

  // `runbook status --json` as JSON: the list of runs (an array, newest first).
  Value Runs() const;
  // `runbook status RUN --json`.
  Value RunStatus(const std::string& run_id) const;
  // The id of the newest run, or "" if there is none.
  std::string LastRunId() const;
  // {step id: step json} of a run.
  std::map<std::string, Value> Steps(const std::string& run_id) const;

 private:
  TempDir tmp_;
  std::string state_;
};

// The engine started in the background (ChildProcess: its own process
// group). Drains its output so it never blocks on a full pipe.
class Background {
 public:
  explicit Background(const ProcessSpec& spec);
  ~Background();
  pid_t pid() const { return child_.pid(); }
  // Reads what is available (without blocking longer than `wait`).
  void Drain(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  bool Running();
  // Waits until the process exits; false if it still runs after `timeout`.
  bool WaitExit(std::chrono::milliseconds timeout);
  // Power loss: stops the engine, SIGKILLs the process groups of every
  // descendant (exec children lead their own groups), then the engine's.
  void KillHard();
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  ChildProcess child_;
  std::string out_, err_;
};

// The run id a run printed on its first line ("run ID  name", "rehearsal ID
// ...", "resume ID ..."), or "".
std::string RunIdFrom(const std::string& output);

// Descendant pids of `pid` (children, grandchildren, ...), from /proc.
std::vector<pid_t> Descendants(pid_t pid);
bool PidAlive(pid_t pid);

// The seed of a randomized crash test: $RUNBOOK_CRASH_SEED, else a random
// one; printed (with `what`) so that a failure can be replayed.
uint64_t CrashSeed(const char* what);

bool Exists(const std::string& path);
// The runs of `runbook` in `t`'s store (not the fleets' own records).
int RunsOf(const E2e& t, const std::string& runbook);
// The id of the fleet a `runbook fleet` printed on its first line
// ("fleet ID name: ...").
std::string FleetIdOf(const std::string& out);
std::string ReadFile(const std::string& path);
int CountLines(const std::string& path);
// Modification time in nanoseconds, or -1.
int64_t MtimeNs(const std::string& path);

// A recursive listing of `dir`: "path type size sha256 mtime" per entry,
// sorted; `skip` names (relative to dir) are left out with what is under them.
std::string Snapshot(const std::string& dir, const std::vector<std::string>& skip = {});

// Every row of every table of the SQLite file at `path` (opened read-only),
// as text: "table|col1|col2...\n". Empty string if it cannot be opened.
std::string DumpStore(const std::string& path);
// PRAGMA integrity_check of the SQLite file ("ok" when intact).
std::string IntegrityCheck(const std::string& path);

}  // namespace runbook::e2e
