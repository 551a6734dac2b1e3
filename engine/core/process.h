// Processes are started from an argv array with posix_spawnp, never through
// a shell. Each child leads its own process group so that a timeout kills
// the whole tree. stdout and stderr are read separately with poll().
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/status.h"

namespace runbook {

struct ProcessSpec {
  std::vector<std::string> argv;          // argv[0] is looked up in PATH
  std::map<std::string, std::string> env;  // added to (or replacing) the inherited env
  bool inherit_env = true;
  std::string cwd;                         // empty: the engine's cwd
  std::optional<std::string> stdin_data;   // nullopt: /dev/null
  std::optional<SteadyTime> deadline;      // SIGTERM then SIGKILL to the group
  size_t max_output = 64 << 20;            // per stream; the rest is dropped
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
  bool truncated = false;
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs to completion (or deadline). Fails only if the process could not
  // be started at all (no such program, ...).
  virtual Result<ProcessResult> Run(const ProcessSpec& spec) = 0;
  static ProcessRunner& Real();
};

// Every child a step starts carries RUNBOOK_STEP=<run id>/<step id> in its
// environment (and so do its own children, unless they clear it): when the
// engine is killed its children live on, and a resume must find them before
// it runs the step again (twice at once, a migration would run twice).
constexpr const char* kStepTokenVar = "RUNBOOK_STEP";

// A runner that adds `var`=`value` to every child's environment.
class TaggingRunner : public ProcessRunner {
 public:
  TaggingRunner(ProcessRunner& inner, std::string var, std::string value)
      : inner_(inner), var_(std::move(var)), value_(std::move(value)) {}
  Result<ProcessResult> Run(const ProcessSpec& spec) override {
    ProcessSpec tagged = spec;
    tagged.env[var_] = value_;
    return inner_.Run(tagged);
  }

 private:
  ProcessRunner& inner_;
  std::string var_, value_;
};

// The live processes (zombies excluded) whose environment holds exactly
// `var`=`value`, with their command lines ("1234 pg_restore --jobs=2 ..."),
// read from /proc. Processes the engine may not read are not seen.
std::vector<std::string> ProcessesWithEnv(const std::string& var, const std::string& value);

// This machine's host name (gethostname), or "" when it cannot be read.
std::string HostName();

// A long-running child (a port-forward, a tunnel helper). The destructor
// kills its process group and reaps it, so a child never outlives its owner
// object. Not copyable.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // stdout and stderr of the child are pipes readable through out_fd() and
  // err_fd(); stdin is /dev/null.
  Status Start(const ProcessSpec& spec);
  pid_t pid() const { return pid_; }
  int out_fd() const { return out_fd_; }
  int err_fd() const { return err_fd_; }
  bool Running();
  void Stop();

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
};

}  // namespace runbook
