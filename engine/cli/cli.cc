// The command line's shared state (cli.h): the store, runbook loading,
// params, colour. main.cc only wires the subcommands to these.
#include "engine/cli/cli.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "engine/core/process.h"
#include "engine/core/renewal.h"
#include "engine/exec/reporter.h"
#include "engine/parser/parser.h"
#include "engine/parser/validator.h"
#include "engine/state/pg_store.h"
#include "engine/state/store.h"

namespace runbook {

bool Cli::ResolveRunId(StateStore& store, std::string* run_id) {
  const bool last = *run_id == "last", last_failed = *run_id == "last-failed";
  if (!last && !last_failed) return true;
  Result<std::vector<RunRecord>> runs = store.ListRuns(100000);
  if (!runs.ok()) {
    exit_code = Error(ExitCode::kInternal, runs.status().message());
    return false;
  }
  for (const RunRecord& r : *runs) {
    if (IsFleet(r)) continue;  // runs only: a fleet is named by its id
    // Failed: stopped on an error (rolled back or not), or its process is gone.
    const std::string shown = ShownStatus(store, r);
    if (last_failed && (shown == "succeeded" || shown == "running" || shown == "paused" ||
                        shown == "rolling_back")) {
      continue;
    }
    fprintf(stderr, "runbook: %s is run %s (%s, %s%s)\n", run_id->c_str(), r.id.c_str(),
            TerminalSafe(r.runbook_name).c_str(), shown.c_str(), r.dry_run ? ", rehearsal" : "");
    *run_id = r.id;
    return true;
  }
  exit_code = Error(ExitCode::kInvalid, std::string(last ? "no run" : "no failed run") +
                                            " in state store " + store.path());
  return false;
}

std::string Cli::ShownStatus(StateStore& store, const RunRecord& run) const {
  if ((run.status == RunStatus::kRunning || run.status == RunStatus::kRollingBack) &&
      !store.LockHeld(run.lock_key)) {
    return run.status == RunStatus::kRunning ? "interrupted" : "interrupted_rollback";
  }
  return RunStatusName(run.status);
}

std::string CurrentUser() {
  if (const char* u = getenv("USER"); u && *u) return u;
  if (struct passwd* pw = getpwuid(getuid())) return pw->pw_name;
  return "uid " + std::to_string(getuid());
}

std::string OperatorName() {
  const std::string host = HostName();
  return CurrentUser() + (host.empty() ? "" : "@" + host);
}

std::vector<std::string> SubcommandNames(CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    out.push_back(sub->get_name());
  }
  return out;
}

std::string FirstCommandWord(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--state") {
      ++i;  // its value
      continue;
    }
    if (a == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (!a.empty() && a[0] == '-') continue;
    return a;
  }
  return "";
}

int Cli::Error(ExitCode code, const std::string& message) {
  fprintf(stderr, "runbook: %s\n", redactor.Redact(message).c_str());
  return static_cast<int>(code);
}

std::string Cli::StatePath() const { return state_path.empty() ? DefaultStatePath() : state_path; }

void WithholdStateFromChildren(Cli* cli) {
  const char* env = getenv("RUNBOOK_STATE");
  if (!env || !IsPostgresLocation(env) || PostgresPassword(env).empty()) return;
  cli->state_path = env;
  unsetenv("RUNBOOK_STATE");
  // A runbook started by one of this run's steps must not fall back to
  // another store unseen (and miss this one's locks): OpenStore refuses.
  setenv("RUNBOOK_STATE_WITHHELD", "1", 1);
}

std::unique_ptr<StateStore> Cli::OpenStore() {
  const char* state_env = getenv("RUNBOOK_STATE");
  if (state_path.empty() && (!state_env || !*state_env) && getenv("RUNBOOK_STATE_WITHHELD")) {
    exit_code = Error(ExitCode::kInvalid,
                      "the state store of the runbook that started this command holds a password, "
                      "so it is not passed on; give --state (or RUNBOOK_STATE) to say which store");
    return nullptr;
  }
  // How long run locks last (the store's lease, a Lease in a target): a bad
  // value refused here, by every command that opens the store, so that no
  // lock quietly lasts other than asked.
  if (Result<std::chrono::seconds> length = LeaseLength(); !length.ok()) {
    exit_code = Error(ExitCode::kInvalid, length.status().message());
    return nullptr;
  }
  // A password in a postgresql:// state URI is a secret of the run too: no
  // command's output, log or report may show it.
  if (IsPostgresLocation(StatePath())) {
    if (std::string pw = PostgresPassword(StatePath()); !pw.empty()) {
      redactor.Add(pw);
      if (state_on_argv) {
        fprintf(stderr,
                "runbook: warning: the --state URI holds a password, which every user of this "
                "machine can read (ps); give it in RUNBOOK_STATE, a ~/.pgpass file or a service "
                "file instead\n");
      }
    }
  }
  Result<std::unique_ptr<StateStore>> store = StateStore::Open(StatePath());
  if (!store.ok()) {
    exit_code = Error(ExitCode::kInternal, store.status().message());
    return nullptr;
  }
  return std::move(*store);
}

std::shared_ptr<const Runbook> Cli::Load(const std::string& path) {
  std::vector<Diagnostic> diags;
  std::shared_ptr<const Runbook> rb = LoadRunbook(path, registry, &diags);
  for (const auto& d : diags) fprintf(stderr, "%s\n", redactor.Redact(d.ToString()).c_str());
  if (!rb) {
    if (diags.empty()) fprintf(stderr, "runbook: %s: invalid runbook\n", path.c_str());
    return nullptr;
  }
  return rb;
}

static std::map<std::string, std::string> Pairs(const std::vector<std::string>& pairs,
                                                std::vector<std::string>* bad) {
  std::map<std::string, std::string> out;
  for (const auto& p : pairs) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      bad->push_back(p);
      continue;
    }
    out[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return out;
}

std::optional<Value> Cli::Params(const Runbook& rb, const std::vector<std::string>& pairs,
                                 const std::string& params_file) {
  std::vector<std::string> bad;
  std::map<std::string, std::string> cli = Pairs(pairs, &bad);
  for (const auto& b : bad) {
    exit_code = Error(ExitCode::kInvalid, "-p " + b + ": expected name=value");
  }
  if (!bad.empty()) return std::nullopt;
  std::vector<Diagnostic> diags;
  // Register secrets first so no diagnostic can print one.
  for (const auto& p : rb.params) {
    if (!p.secret) continue;
    if (cli.count(p.name)) redactor.Add(cli[p.name]);
    if (!p.env.empty() && getenv(p.env.c_str())) redactor.Add(getenv(p.env.c_str()));
  }
  Value params = ResolveParams(rb, cli, params_file, &diags);
  // Secrets from a params file or a default count as much as -p or env:.
  for (const auto& p : rb.params) {
    if (p.secret && params.contains(p.name)) redactor.AddValue(params[p.name]);
  }
  for (const auto& d : diags) fprintf(stderr, "%s\n", redactor.Redact(d.ToString()).c_str());
  if (!diags.empty()) {
    exit_code = static_cast<int>(ExitCode::kInvalid);
    return std::nullopt;
  }
  return params;
}

std::optional<Value> Cli::ResumeParams(const Runbook& rb, const std::vector<std::string>& pairs) {
  std::vector<std::string> bad;
  std::map<std::string, std::string> cli = Pairs(pairs, &bad);
  for (const auto& b : bad) exit_code = Error(ExitCode::kInvalid, "-p " + b + ": expected name=value");
  if (!bad.empty()) return std::nullopt;
  Value out = Value::object();
  for (const auto& p : rb.params) {
    if (p.secret && cli.count(p.name)) redactor.Add(cli[p.name]);
  }
  for (const auto& [name, text] : cli) {
    const ParamSpec* spec = rb.FindParam(name);
    if (!spec) {
      exit_code = Error(ExitCode::kInvalid, "-p " + name + ": no such param in " + rb.path);
      return std::nullopt;
    }
    Value v;
    std::string problem = ParamValueFromString(spec->type, text, &v);
    if (!problem.empty()) {
      exit_code = Error(ExitCode::kInvalid, redactor.Redact("param '" + name + "': " + problem));
      return std::nullopt;
    }
    out[name] = v;
  }
  // Secret params come back from their env: or default too.
  for (const auto& p : rb.params) {
    if (!p.secret || out.contains(p.name)) continue;
    if (!p.env.empty() && getenv(p.env.c_str())) {
      Value v;
      if (ParamValueFromString(p.type, getenv(p.env.c_str()), &v).empty()) out[p.name] = v;
    } else if (p.default_value) {
      out[p.name] = *p.default_value;
    }
  }
  for (const auto& p : rb.params) {
    if (p.secret && out.contains(p.name)) redactor.AddValue(out[p.name]);
  }
  return out;
}

bool Cli::Color(FILE* f) const {
  return !no_color && getenv("NO_COLOR") == nullptr && isatty(fileno(f));
}

}  // namespace runbook
