#include "bindings/postgres/pg_tools.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "bindings/postgres/pg_session.h"
#include "engine/core/sha256.h"

namespace runbook {
namespace fs = std::filesystem;

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The types ParseTocList keeps, longest first so that "TABLE DATA" is not
// read as a TABLE in schema "DATA" (multi-word types we ignore are listed too).
const char* const kTocTypes[] = {"MATERIALIZED VIEW DATA",
                                 "SEQUENCE OWNED BY",
                                 "MATERIALIZED VIEW",
                                 "FOREIGN TABLE",
                                 "TABLE ATTACH",
                                 "TABLE DATA",
                                 "SEQUENCE SET",
                                 "TABLE",
                                 "SEQUENCE",
                                 "VIEW",
                                 "SCHEMA"};
bool KeptType(const std::string& t) {
  return t != "MATERIALIZED VIEW DATA" && t != "SEQUENCE OWNED BY" && t != "TABLE ATTACH" &&
         t != "SEQUENCE SET";
}

}  // namespace

std::string ConninfoQuote(const std::string& value) {
  if (!value.empty() && value.find_first_of(" \t\n\r\f\v'\\=") == std::string::npos) {
    return value;
  }
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

Result<PgToolTarget> PgToolConnect(const PgConnectOptions& options, const std::string& dbname) {
  std::map<std::string, std::string> kw = DsnKeywords(options.dsn);
  for (const auto& [k, v] : options.keywords) kw[k] = v;
  if (kw.count("sslpassword")) {
    return Status::Invalid(
        "connection '" + options.conn_name +
        "': its sslpassword (the client key's passphrase) cannot reach pg_dump, psql or "
        "pg_restore but on their command line, which every user of this machine can read (ps); "
        "give them a key without a passphrase, readable only by this user, instead");
  }
  PgToolTarget t;
  t.conn_name = options.conn_name;
  if (options.password) {
    t.env["PGPASSWORD"] = *options.password;
  } else if (kw.count("password")) {
    t.env["PGPASSWORD"] = kw["password"];
  }
  kw.erase("password");
  if (!dbname.empty()) kw["dbname"] = dbname;
  if (!options.application_name.empty()) kw["application_name"] = options.application_name;
  // libpq takes 1 as 2 and 0 as "wait forever": a program waits at most as
  // long as the engine's own connections, and at least 2 seconds.
  kw["connect_timeout"] = std::to_string(std::max<int64_t>(2, options.connect_timeout.count()));
  t.database = kw.count("dbname") ? kw["dbname"] : "";
  for (const auto& [k, v] : kw) {
    t.conninfo += (t.conninfo.empty() ? "" : " ") + k + "=" + ConninfoQuote(v);
  }
  return t;
}

Result<PgToolTarget> ToolTarget(StepContext& ctx, const std::string& conn,
                                const std::string& dbname) {
  Result<PgConnectOptions> o = StepConnectOptions(ctx, conn);
  if (!o.ok()) return o.status();
  Result<PgToolTarget> t = PgToolConnect(*o, dbname);
  if (!t.ok()) return t.status();
  t->conn_name = conn;
  if (auto pw = t->env.find("PGPASSWORD"); pw != t->env.end()) ctx.redactor().Add(pw->second);
  return t;
}

std::string FormatToolArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    bool plain = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
      return isalnum(static_cast<unsigned char>(c)) || strchr("-_./=:,@+%", c);
    });
    std::string q = a;
    if (!plain) {
      q = "'";
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      q += "'";
    }
    out += (out.empty() ? "" : " ") + q;
  }
  return out;
}

std::string ToolPath(const std::string& bin_dir, const std::string& tool) {
  return bin_dir.empty() ? tool : (fs::path(bin_dir) / tool).string();
}

std::vector<std::string> ToolErrorLines(const std::string& tool, const std::string& err) {
  std::vector<std::string> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    bool error = line.rfind(tool + ": error:", 0) == 0 || line.rfind(tool + ": fatal:", 0) == 0 ||
                 line.rfind(tool + ": [", 0) == 0 ||  // pre-12 "pg_dump: [archiver (db)] ..."
                 line.find("ERROR:") != std::string::npos ||
                 line.find("FATAL:") != std::string::npos ||
                 line.find("errors ignored on restore") != std::string::npos;
    if (error) out.push_back(Trim(line));
  }
  return out;
}

std::string ToolErrorDetail(const std::string& tool, const std::string& err) {
  constexpr size_t kMaxErrors = 5, kMaxFollowing = 4;
  std::string out;
  size_t errors = 0, following = 0;
  bool in_error = false;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    line = Trim(line);
    if (!ToolErrorLines(tool, line).empty()) {
      in_error = ++errors <= kMaxErrors;
      following = 0;
      if (in_error) out += (out.empty() ? "" : "; ") + line;
    } else if (in_error && (line.rfind("DETAIL:", 0) == 0 || line.rfind("HINT:", 0) == 0) &&
               ++following <= kMaxFollowing) {
      // The server's own explanation, as the engine's own errors carry it.
      // Not what echoes SQL ("LINE n:", CONTEXT, pg_restore's "Command
      // was:"): an archive's statement can hold a password the redactor
      // does not know (a user mapping's, a subscription's).
      out += " " + line;
    } else if (line.rfind(tool + ":", 0) == 0) {
      in_error = false;
    }
  }
  return out;
}

Result<ToolRun> RunToolProcess(ProcessRunner& runner, const std::string& where,
                               const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& env, SteadyTime deadline,
                               const std::optional<std::string>& input) {
  ProcessSpec spec;
  spec.argv = argv;
  spec.env = env;
  spec.stdin_data = input;
  if (deadline != SteadyTime::max()) spec.deadline = deadline;
  spec.max_output = size_t{1} << 30;  // a schema dump can be large
  Result<ProcessResult> run = runner.Run(spec);
  if (!run.ok()) return run.status().Prefixed(where);
  if (run->timed_out) return Status::Timeout(where + ": stopped at the step's deadline");
  if (run->truncated) {
    return Status::Failed(where + ": wrote more than 1 GiB to a stream; its output was not read");
  }
  const std::string tool = fs::path(argv[0]).filename().string();
  std::vector<std::string> errors = ToolErrorLines(tool, run->err);
  if (run->exit_code != 0 || !errors.empty()) {
    std::string msg = where + ": ";
    if (run->exit_code == 0) {
      msg += "exited 0 but reported an error";
    } else if (run->exit_code > 0) {
      msg += "exited with status " + std::to_string(run->exit_code);
    } else {
      msg += "killed by signal " + std::to_string(run->signal);
    }
    // Cut to its length only after redaction (StepToolError): a secret cut
    // in two would not be found.
    std::string detail = ToolErrorDetail(tool, run->err);
    if (detail.empty()) detail = Trim(run->err).substr(0, size_t{64} << 10);
    if (!detail.empty()) msg += ": " + detail;
    return Status::Failed(msg);
  }
  ToolRun out;
  out.out = std::move(run->out);
  std::istringstream in(run->err);
  for (std::string line; std::getline(in, line);) {
    if (!Trim(line).empty()) out.notes.push_back(where + ": " + Trim(line));
  }
  return out;
}

Result<ToolRun> RunPgTool(ProcessRunner& runner, const std::vector<std::string>& argv,
                          const PgConnectOptions& options, SteadyTime deadline,
                          const std::optional<std::string>& input) {
  Result<PgToolTarget> to = PgToolConnect(options);
  if (!to.ok()) return to.status();
  std::vector<std::string> full = argv;
  if (std::find(argv.begin(), argv.end(), "--version") == argv.end()) {
    full.insert(full.begin() + 1, "--dbname=" + to->conninfo);
  }
  const std::string where =
      "connection '" + options.conn_name + "': " + fs::path(argv[0]).filename().string();
  return RunToolProcess(runner, where, full, to->env, deadline, input);
}

Status StepToolError(StepContext& ctx, const Status& error) {
  constexpr size_t kMaxMessage = 4000;
  std::string msg = ctx.redactor().Redact(error.message());
  if (msg.size() > kMaxMessage) msg = msg.substr(0, kMaxMessage) + " ...";
  if (error.code() == Status::Code::kTimeout) return Status::Timeout(msg);
  if (error.code() == Status::Code::kNotYet) return Status::NotYet(msg);  // a rehearsal's plan
  return Status::Failed(msg);
}

Result<std::string> ToolResult(StepContext& ctx, Result<ToolRun> run) {
  if (!run.ok()) return StepToolError(ctx, run.status());
  // The first 20 lines, and every warning after them; the rest counted.
  constexpr size_t kMaxNotes = 20;
  size_t dropped = 0;
  for (size_t i = 0; i < run->notes.size(); ++i) {
    const std::string& n = run->notes[i];
    const bool warning =
        n.find("warning:") != std::string::npos || n.find("WARNING:") != std::string::npos;
    if (i < kMaxNotes || warning) {
      ctx.Log(LogLevel::kWarn, ctx.redactor().Redact(n));
    } else {
      ++dropped;
    }
  }
  if (dropped > 0) ctx.Log(LogLevel::kWarn, "... and " + std::to_string(dropped) + " more lines");
  return std::move(run->out);
}

Result<std::string> RunTool(StepContext& ctx, const std::string& where,
                            const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env,
                            const std::optional<std::string>& input) {
  return ToolResult(ctx, RunToolProcess(ctx.processes(), where, argv, env, ctx.deadline(), input));
}

Result<PgConnectOptions> LeaseEndpoint(StepContext& ctx, PgLease& lease) {
  if (!lease.conn().ok()) {
    return Status::Unavailable("connection '" + lease.name() +
                               "': the session is gone, so where it was is not known");
  }
  PgConnectOptions o = lease.conn().endpoint();
  o.application_name = "runbook/" + ctx.run_id() + "/" + ctx.step_id();
  return o;
}

Status CheckToolReach(StepContext& ctx, PgLease& lease) {
  Result<PgConnectOptions> at = LeaseEndpoint(ctx, lease);
  if (!at.ok()) return at.status();
  Result<PgToolTarget> t = PgToolConnect(*at);
  return t.ok() ? Status::Ok() : t.status();
}

Result<std::string> RunStepPgTool(StepContext& ctx, PgLease& lease,
                                  const std::vector<std::string>& argv,
                                  const std::optional<std::string>& input) {
  Result<PgConnectOptions> at = LeaseEndpoint(ctx, lease);
  if (!at.ok()) return at.status();
  return ToolResult(ctx, RunPgTool(ctx.processes(), argv, *at, ctx.deadline(), input));
}

Result<std::string> CheckPgDumpVersion(StepContext& ctx, const std::string& where,
                                       const std::string& pg_dump, int major,
                                       const std::string& server) {
  const std::string at = where + ": " + pg_dump;
  Result<std::string> v = RunTool(ctx, at, {pg_dump, "--version"});
  if (!v.ok()) return v.status();
  const std::string line = Trim(v->substr(0, v->find('\n')));
  const int tool = ToolMajor(line);
  if (tool == 0) return Status::Failed(at + ": cannot read its version from '" + line + "'");
  if (MajorOrder(tool) < MajorOrder(major)) {
    return Status::Failed(at + ": " + line + " is older than " + server + " (PostgreSQL " +
                          MajorName(major) + "): it cannot dump it alike; install pg_dump " +
                          MajorName(major) + " or newer, or point bin_dir at it");
  }
  return line;
}

int ToolMajor(const std::string& version_output) {
  size_t at = version_output.find(") ");
  if (at == std::string::npos) return 0;
  int major = 0, minor = 0;
  if (sscanf(version_output.c_str() + at + 2, "%d.%d", &major, &minor) < 1) return 0;
  return major >= 10 ? major : major * 100 + minor;
}

int ServerMajor(int v) { return v >= 100000 ? v / 10000 : v / 100; }

int MajorOrder(int major) { return major >= 100 ? major : major * 100; }

int NewerMajor(int a, int b) { return MajorOrder(a) >= MajorOrder(b) ? a : b; }

std::string MajorName(int major) {
  if (major < 100) return std::to_string(major);
  return std::to_string(major / 100) + "." + std::to_string(major % 100);
}

std::vector<TocEntry> ParseTocList(const std::string& list) {
  std::vector<TocEntry> out;
  std::istringstream in(list);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == ';') continue;
    size_t semi = line.find("; ");
    if (semi == std::string::npos) continue;
    std::vector<std::string> w = Words(line.substr(semi + 2));
    if (w.size() < 2) continue;
    w.erase(w.begin(), w.begin() + 2);  // catalog oid, object oid
    for (const char* type : kTocTypes) {
      std::vector<std::string> tw = Words(type);
      if (w.size() < tw.size() + 3 || !std::equal(tw.begin(), tw.end(), w.begin())) continue;
      if (KeptType(type)) {
        TocEntry e{type, w[tw.size()], ""};
        for (size_t i = tw.size() + 1; i + 1 < w.size(); ++i) {
          e.name += (e.name.empty() ? "" : " ") + w[i];
        }
        out.push_back(e);
      }
      break;
    }
  }
  return out;
}

Result<std::vector<TocEntry>> ReadPlainToc(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read " + path);
  std::vector<TocEntry> out;
  bool complete = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("-- PostgreSQL database dump complete", 0) == 0) complete = true;
    size_t at = line.rfind("-- Name: ", 0) == 0            ? 9
                : line.rfind("-- Data for Name: ", 0) == 0 ? 18
                                                           : std::string::npos;
    if (at == std::string::npos) continue;
    size_t type = line.find("; Type: ", at), schema = line.find("; Schema: ", at);
    if (type == std::string::npos || schema == std::string::npos || schema < type) continue;
    size_t owner = line.find("; Owner: ", schema);
    TocEntry e{line.substr(type + 8, schema - type - 8),
               line.substr(schema + 10,
                           owner == std::string::npos ? std::string::npos : owner - schema - 10),
               line.substr(at, type - at)};
    if (!KeptType(e.type) || std::none_of(std::begin(kTocTypes), std::end(kTocTypes),
                                          [&](const char* t) { return e.type == t; })) {
      continue;
    }
    out.push_back(e);
  }
  if (in.bad()) return Status::Failed("error reading " + path);
  if (!complete) {
    return Status::Failed(path +
                          " is not a complete plain-format dump (no \"PostgreSQL "
                          "database dump complete\" line)");
  }
  return out;
}

int CountType(const std::vector<TocEntry>& toc, const std::string& type) {
  return static_cast<int>(
      std::count_if(toc.begin(), toc.end(), [&](const TocEntry& e) { return e.type == type; }));
}

Result<PathDigest> DigestPath(const std::string& path) {
  std::error_code ec;
  PathDigest d;
  if (!fs::is_directory(path, ec)) {
    Result<std::string> sha = Sha256File(path);
    if (!sha.ok()) return sha.status();
    d.size = static_cast<int64_t>(fs::file_size(path, ec));
    if (ec) return Status::Failed("cannot stat " + path + ": " + ec.message());
    d.sha256 = *sha;
    return d;
  }
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
    if (e.is_regular_file()) names.push_back(fs::relative(e.path(), path).string());
  }
  if (ec) return Status::Failed("cannot list " + path + ": " + ec.message());
  std::sort(names.begin(), names.end());
  std::string manifest;
  for (const auto& n : names) {
    const std::string p = (fs::path(path) / n).string();
    Result<std::string> sha = Sha256File(p);
    if (!sha.ok()) return sha.status();
    d.size += static_cast<int64_t>(fs::file_size(p, ec));
    manifest += n + " " + *sha + "\n";
  }
  d.sha256 = Sha256Hex(manifest);
  return d;
}

Result<std::string> DetectArchiveFormat(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return std::string("directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("archive " + path + " does not exist or cannot be read");
  char magic[5] = {};
  in.read(magic, 5);
  return std::string(in.gcount() == 5 && std::string(magic, 5) == "PGDMP" ? "custom" : "plain");
}

}  // namespace runbook
