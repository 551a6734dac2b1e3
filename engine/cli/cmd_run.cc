// runbook run / resume / rollback: the commands that act.
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <iostream>

#include "engine/cli/cli.h"
#include "engine/cli/fleet_kube.h"
#include "engine/core/clock.h"
#include "engine/core/duration.h"
#include "engine/core/process.h"
#include "engine/exec/executor.h"

namespace runbook {
namespace {

// How the command ended: the engine says why it refused (a line per
// reason; an indented line continues the one before), the command line
// prints it; returns the exit code.
int Print(Cli& cli, const RunOutcome& o) {
  size_t from = 0;
  while (from < o.refusal.size()) {
    size_t end = o.refusal.find('\n', from);
    if (end == std::string::npos) end = o.refusal.size();
    const std::string line = o.refusal.substr(from, end - from);
    if (!line.empty() && line[0] == ' ') {
      fprintf(stderr, "%s\n", cli.redactor.Redact(line).c_str());
    } else {
      cli.Error(o.code, line);
    }
    from = end + 1;
  }
  return static_cast<int>(o.code);
}

class TerminalPrompter : public Prompter {
 public:
  std::optional<bool> Ask(const std::string& question) override {
    fprintf(stderr, "%s [y/N] ", question.c_str());
    fflush(stderr);
    std::string line;
    if (!std::getline(std::cin, line)) return std::nullopt;
    return line == "y" || line == "Y" || line == "yes";
  }
  std::string Who() override { return CurrentUser(); }
};

struct Common {
  std::vector<std::string> pairs;
  std::string log_format = "text";
  bool yes = false;
  std::string approval_wait;  // --wait-for-approval
};

void AddApprovalWait(CLI::App* cmd, Common& c) {
  cmd->add_option("--wait-for-approval", c.approval_wait,
                  "without a terminal, wait this long (30m, 2h) at an approval gate for runbook "
                  "approve from any machine using this state store, then pause");
}

// The parsed --wait-for-approval, or false (exit code set) if invalid.
bool ApprovalWait(Cli& cli, const Common& c, RunOptions* opts) {
  if (c.approval_wait.empty()) return true;
  std::optional<std::chrono::milliseconds> d = ParseDuration(c.approval_wait);
  if (!d || d->count() <= 0) {
    cli.exit_code = cli.Error(ExitCode::kInvalid, "--wait-for-approval " + c.approval_wait +
                                                      ": a duration such as 30m or 2h");
    return false;
  }
  opts->approval_wait = *d;
  return true;
}

struct Session {
  std::unique_ptr<StateStore> store;
  std::unique_ptr<Reporter> reporter;
  TerminalPrompter prompter;
  ExecEnv env;
};

bool Open(Cli& cli, const Common& c, Session* s) {
  s->store = cli.OpenStore();
  if (!s->store) return false;
  s->reporter = MakeReporter(c.log_format == "json" ? LogFormat::kJson : LogFormat::kText,
                             stdout, cli.Color(stdout), cli.verbose, &cli.redactor);
  s->env.registry = &cli.registry;
  s->env.store = s->store.get();
  s->env.clock = &Clock::Real();
  s->env.processes = &ProcessRunner::Real();
  s->env.reporter = s->reporter.get();
  s->env.redactor = &cli.redactor;
  // Without a terminal an approval pauses the run; --yes still needs a name.
  s->env.prompter = isatty(STDIN_FILENO) || c.yes ? &s->prompter : nullptr;
  return true;
}

void AddCommon(CLI::App* cmd, Common& c) {
  cmd->add_option("-p,--param", c.pairs, "param as name=value (repeatable)");
  cmd->add_option("--log-format", c.log_format, "text | json")
      ->check(CLI::IsMember({"text", "json"}));
}

// The runbook a stored run came from (`last` and `last-failed` resolved in run_id).
// A run made in a pod of a kube fleet has its runbook where the pod laid
// it out: on another machine, that file is not there. It is laid out here
// too, from the fleet's runbook, when that is still exactly the text the
// run recorded (the same digest); else the run's path is left to say so.
void LayOutPodRunbook(Cli& cli, StateStore& store, const RunRecord& run) {
  std::error_code ec;
  if (std::filesystem::exists(run.runbook_path, ec) || !run.options.is_object()) return;
  const std::string fleet_id = run.options.value("fleet_id", "");
  if (fleet_id.empty()) return;
  Result<RunRecord> fleet = store.GetRun(fleet_id);
  if (!fleet.ok() || !std::filesystem::exists(fleet->runbook_path, ec)) return;
  auto rb = cli.Load(fleet->runbook_path);
  if (!rb) return;
  Result<PodSources> sources = PodSourcesOf(*rb);
  if (!sources.ok() || sources->Digest() != run.digest) return;
  Result<std::string> laid = LayOutPodSources(sources->Json());
  if (laid.ok() && *laid == run.runbook_path) {
    fprintf(stderr, "runbook: run %s was made in a pod: its runbook laid out again at %s\n",
            run.id.c_str(), laid->c_str());
  }
}

std::shared_ptr<const Runbook> LoadRunOf(Cli& cli, std::string& run_id) {
  auto store = cli.OpenStore();
  if (!store) return nullptr;
  if (!cli.ResolveRunId(*store, &run_id)) return nullptr;
  Result<RunRecord> run = store->GetRun(run_id);
  if (!run.ok()) {
    cli.exit_code = cli.Error(ExitCode::kInvalid, run.status().message());
    return nullptr;
  }
  if (IsFleet(*run)) {
    cli.exit_code =
        cli.Error(ExitCode::kInvalid, run_id +
                                          " is a fleet: roll back its targets' runs one by one "
                                          "(runbook status " +
                                          run_id + " lists them)");
    return nullptr;
  }
  LayOutPodRunbook(cli, *store, *run);
  auto rb = cli.Load(run->runbook_path);
  if (!rb) cli.exit_code = static_cast<int>(ExitCode::kInvalid);
  return rb;
}

// The scalars of a YAML params file as name=value pairs, as -p gives them.
bool ParamsFilePairs(Cli& cli, const std::string& path, std::vector<std::string>* pairs) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) throw YAML::Exception(root.Mark(), "expected a map of params");
    for (const auto& kv : root) {
      if (!kv.second.IsScalar()) {
        throw YAML::Exception(kv.second.Mark(),
                              "param '" + kv.first.Scalar() + "' is not a scalar");
      }
      pairs->push_back(kv.first.Scalar() + "=" + kv.second.Scalar());
    }
    return true;
  } catch (const YAML::Exception& e) {
    cli.exit_code = cli.Error(ExitCode::kInvalid, "--params-file " + path + ": " + e.what());
    return false;
  }
}

}  // namespace

void AddRunCommands(CLI::App& app, Cli& cli) {
  static Common run_c, resume_c, rollback_c;
  static std::string file, params_file, from, run_id, fleet_target, fleet_id, resume_params_file;
  static bool dry_run = false, ignore_window = false, allow_changed = false;
  static std::vector<std::string> retry_steps, mark_done;

  auto* run = app.add_subcommand("run", "execute a runbook (--dry-run: rehearse it)");
  run->add_option("FILE", file, "runbook")->required();
  AddCommon(run, run_c);
  run->add_option("--params-file", params_file, "YAML file of params");
  run->add_flag("--dry-run", dry_run, "rehearsal: connect, check, change nothing");
  run->add_flag("--yes", run_c.yes, "pre-approve every approval gate");
  AddApprovalWait(run, run_c);
  run->add_flag("--ignore-window", ignore_window, "run outside the maintenance window");
  run->add_option("--from", from, "start at this step (earlier steps are skipped)");
  // Set by `runbook fleet`: the target this run is, recorded with the run.
  run->add_option("--fleet-target", fleet_target)->group("");
  run->add_option("--fleet", fleet_id)->group("");  // and the fleet it belongs to
  run->callback([&cli]() {
    auto rb = cli.Load(file);
    if (!rb) {
      cli.exit_code = static_cast<int>(ExitCode::kInvalid);
      return;
    }
    std::optional<Value> params = cli.Params(*rb, run_c.pairs, params_file);
    if (!params) return;
    if (!from.empty() && !rb->FindStep(from)) {
      std::vector<std::string> ids;
      for (const auto& s : rb->steps) ids.push_back(s.id);
      std::string hint = Suggest(from, ids);
      cli.exit_code = cli.Error(ExitCode::kInvalid,
                                "--from: no step '" + from + "' in " + file +
                                    (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
      return;
    }
    Session s;
    if (!Open(cli, run_c, &s)) return;
    RunOptions opts;
    opts.dry_run = dry_run;
    opts.yes = run_c.yes;
    opts.ignore_window = ignore_window;
    opts.from_step = from;
    if (!ApprovalWait(cli, run_c, &opts)) return;
    opts.options_to_store = Value{{"ignore_window", ignore_window}, {"from", from}};
    // Who started it, for the change record (report): as this machine knows them.
    opts.options_to_store["operator"] = OperatorName();
    if (!fleet_target.empty()) opts.options_to_store["fleet_target"] = fleet_target;
    if (!fleet_id.empty()) opts.options_to_store["fleet_id"] = fleet_id;
    Executor ex(s.env);
    cli.exit_code = Print(cli, ex.Run(rb, *params, opts));
  });

  auto* resume = app.add_subcommand("resume",
                                    "continue a failed, paused or interrupted run "
                                    "(or fleet)");
  resume
      ->add_option("RUN_ID", run_id,
                   "a run id (or a fleet's), or last (the newest run) or "
                   "last-failed")
      ->required();
  AddCommon(resume, resume_c);
  resume->add_flag("--yes", resume_c.yes, "pre-approve every approval gate");
  AddApprovalWait(resume, resume_c);
  resume->add_option("--retry-step", retry_steps, "run this step again although it may have "
                                                  "taken effect");
  resume->add_option("--mark-done", mark_done, "record that this step took effect");
  resume->add_flag("--allow-changed", allow_changed, "resume although the runbook changed");
  resume->add_option("--params-file", resume_params_file,
                     "YAML file of params (the secret ones, and others as they were given)");
  static bool resume_accept_loss = false;
  resume->add_flag("--accept-data-loss", resume_accept_loss,
                   "a rollback it continues may undo what would destroy others' writes");
  resume->callback([&cli]() {
    std::vector<std::string> pairs;
    if (!resume_params_file.empty() && !ParamsFilePairs(cli, resume_params_file, &pairs)) return;
    pairs.insert(pairs.end(), resume_c.pairs.begin(), resume_c.pairs.end());  // -p wins
    {
      auto store = cli.OpenStore();
      if (!store || !cli.ResolveRunId(*store, &run_id)) return;
      Result<RunRecord> run = store->GetRun(run_id);
      if (run.ok() && IsFleet(*run)) {
        if (!retry_steps.empty() || !mark_done.empty() || resume_accept_loss ||
            resume_c.log_format != "text") {
          cli.exit_code = cli.Error(ExitCode::kInvalid,
                                    run_id +
                                        " is a fleet: --retry-step, --mark-done, "
                                        "--accept-data-loss and --log-format are for one of "
                                        "its targets' runs; nothing was started");
          return;
        }
        RunOptions wait;  // --wait-for-approval: how long a gate between waves waits
        if (!ApprovalWait(cli, resume_c, &wait)) return;
        ResumeFleet(cli, *store, *run, pairs, resume_c.yes, allow_changed, wait.approval_wait);
        return;
      }
    }
    auto rb = LoadRunOf(cli, run_id);
    if (!rb) return;
    std::optional<Value> secrets = cli.ResumeParams(*rb, pairs);
    if (!secrets) return;
    Session s;
    if (!Open(cli, resume_c, &s)) return;
    RunOptions opts;
    opts.yes = resume_c.yes;
    if (!ApprovalWait(cli, resume_c, &opts)) return;
    opts.retry_steps = {retry_steps.begin(), retry_steps.end()};
    opts.mark_done = {mark_done.begin(), mark_done.end()};
    opts.allow_changed = allow_changed;
    opts.accept_data_loss = resume_accept_loss;
    Executor ex(s.env);
    cli.exit_code = Print(cli, ex.Resume(run_id, rb, *secrets, opts));
  });

  auto* rollback = app.add_subcommand("rollback", "undo the completed steps of a run, newest "
                                                  "first");
  rollback->add_option("RUN_ID", run_id, "a run id, or last (the newest run) or last-failed")
      ->required();
  AddCommon(rollback, rollback_c);
  static bool accept_data_loss = false;
  rollback->add_flag("--accept-data-loss", accept_data_loss,
                     "undo even steps whose undo would destroy what others wrote since (each "
                     "refusal says what)");
  rollback->callback([&cli]() {
    auto rb = LoadRunOf(cli, run_id);
    if (!rb) return;
    std::optional<Value> secrets = cli.ResumeParams(*rb, rollback_c.pairs);
    if (!secrets) return;
    Session s;
    if (!Open(cli, rollback_c, &s)) return;
    Executor ex(s.env);
    RunOptions opts;
    opts.accept_data_loss = accept_data_loss;
    cli.exit_code = Print(cli, ex.Rollback(run_id, rb, *secrets, opts));
  });
}

}  // namespace runbook
