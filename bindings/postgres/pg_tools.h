// Running PostgreSQL's client programs (pg_dump, pg_restore, psql) for a
// runbook connection, and reading what they produce.
//
// The programs run from an argv through ctx.processes() (never a shell). The
// connection goes on argv as a conninfo string *without* the password; the
// password travels in the child's environment (PGPASSWORD), so it is never
// visible in `ps` or in plan text. A run fails on a non-zero exit *and* on an
// error line in stderr (pg_dump can exit 0 after an error).
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"
#include "engine/core/registry.h"

namespace runbook {

class PgLease;

// How a client program reaches one database: a conninfo for --dbname with
// every setting of the connection but the password (explicit, so that a
// PGSERVICE or a service file in the environment cannot send the program
// elsewhere: libpq lets a service override PG* variables, not the
// conninfo), and the password in the child's environment (PGPASSWORD).
struct PgToolTarget {
  std::string conn_name;
  std::string database;                    // "" = libpq's default
  std::string conninfo;                    // no password in it
  std::map<std::string, std::string> env;  // PGPASSWORD when there is one
};

// The target for database `dbname` ("" = the options' own) of resolved
// connect options. Refuses options with an sslpassword (a client key's
// passphrase): libpq takes it only from the conninfo, which every user of
// the machine could read on the program's command line.
Result<PgToolTarget> PgToolConnect(const PgConnectOptions& options, const std::string& dbname = "");

// The same for the runbook connection `conn`; registers its secrets with
// the context's redactor.
Result<PgToolTarget> ToolTarget(StepContext& ctx, const std::string& conn,
                                const std::string& dbname);

// A libpq conninfo value, quoted only when needed: db -> db, it's -> 'it\'s'.
std::string ConninfoQuote(const std::string& value);

// argv as one line for people (plan text, logs): words quoted for reading.
std::string FormatToolArgv(const std::vector<std::string>& argv);

// `bin_dir/tool`, or `tool` (looked up in PATH) when bin_dir is empty.
std::string ToolPath(const std::string& bin_dir, const std::string& tool);

// What a client program that succeeded left: its stdout, and its stderr
// lines that are no errors (notices, warnings), each prefixed with `where`.
struct ToolRun {
  std::string out;
  std::vector<std::string> notes;
};

// The one way every PostgreSQL client program runs: from argv (never a
// shell), with `env` and optional stdin, until `deadline`. Fails, naming
// `where` ("connection 'blue': pg_dump"), if it cannot start, passes the
// deadline (a Timeout), writes more than 1 GiB to a stream (never cut
// silently), exits non-zero or is killed, or prints an error line (pg_dump
// can exit 0 after an error). Needs no step context, so it may run on a
// thread of its own; its messages are not yet redacted (ToolResult does).
Result<ToolRun> RunToolProcess(ProcessRunner& runner, const std::string& where,
                               const std::vector<std::string>& argv,
                               const std::map<std::string, std::string>& env, SteadyTime deadline,
                               const std::optional<std::string>& input = std::nullopt);

// The same for a libpq program at `options`: --dbname=<conninfo> goes right
// after argv[0] (not for --version), the password into its environment.
Result<ToolRun> RunPgTool(ProcessRunner& runner, const std::vector<std::string>& argv,
                          const PgConnectOptions& options, SteadyTime deadline,
                          const std::optional<std::string>& input = std::nullopt);

// A finished program as the step sees it: its stdout, its notes logged as
// warnings (the first 20), its failure redacted (StepToolError).
Result<std::string> ToolResult(StepContext& ctx, Result<ToolRun> run);

// A client program's failure as the step reports it: redacted, a timeout
// kept a timeout (and a rehearsal's NotYet a NotYet), anything else a failure.
Status StepToolError(StepContext& ctx, const Status& error);

// RunToolProcess within the step's deadline, through ToolResult.
Result<std::string> RunTool(StepContext& ctx, const std::string& where,
                            const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env = {},
                            const std::optional<std::string>& input = std::nullopt);

// RunPgTool within the step's deadline, through ToolResult, at the very
// server, database and role a leased session reached (LeaseEndpoint): a
// program that imports the session's snapshot, or must act where the
// session checked, cannot land on another host of a list or a new address.
Result<std::string> RunStepPgTool(StepContext& ctx, PgLease& lease,
                                  const std::vector<std::string>& argv,
                                  const std::optional<std::string>& input = std::nullopt);

// Whether client programs can be given the leased session's endpoint
// (PgToolConnect): asked before a step acts, not at its first program.
Status CheckToolReach(StepContext& ctx, PgLease& lease);

// A leased session's endpoint (PgConnection::endpoint) under this step's
// application_name (what a resumed attempt looks for in pg_stat_activity).
// Fails when the session is gone: its options alone would not pin anything.
Result<PgConnectOptions> LeaseEndpoint(StepContext& ctx, PgLease& lease);

// Refuses a pg_dump older than the newest server it must read (`major` as
// ServerMajor gives it; `server` names that server for the message, "the
// newer server of the two"): it would refuse the server or, worse, miss
// objects. Messages start with `where` ("connection 'blue': pg.dump"). Its
// --version line otherwise.
Result<std::string> CheckPgDumpVersion(StepContext& ctx, const std::string& where,
                                       const std::string& pg_dump, int major,
                                       const std::string& server);

// The error lines of stderr, each with the server's DETAIL: and HINT: lines
// that follow it (never the SQL a program echoes: it can hold a password),
// "; "-separated: the first 5 errors, 4 such lines each.
std::string ToolErrorDetail(const std::string& tool, const std::string& err);

// The error lines of a client program's stderr ("pg_dump: error: ...",
// "psql:f.sql:12: ERROR: ...", "errors ignored on restore").
std::vector<std::string> ToolErrorLines(const std::string& tool, const std::string& err);

// The major version a `--version` line names, comparable with ServerMajor:
// "pg_dump (PostgreSQL) 15.4 (Debian ...)" -> 15, "... 9.6.24" -> 906; 0 if unreadable.
int ToolMajor(const std::string& version_output);
// The major version of server_version_num: 150004 -> 15, 90624 -> 906.
int ServerMajor(int server_version_num);
std::string MajorName(int major);  // 15 -> "15", 906 -> "9.6"
// Majors in release order: 906 (9.6) before 10. Compare and take the newer
// of two majors only through this.
int MajorOrder(int major);
int NewerMajor(int a, int b);

// One entry of an archive's table of contents.
struct TocEntry {
  std::string type;    // "TABLE", "TABLE DATA", "SEQUENCE", "VIEW", "SCHEMA", ...
  std::string schema;  // "-" for entries outside a schema
  std::string name;
};

// The entries of interest (tables, their data, sequences, views,
// materialized views, foreign tables, schemas) of `pg_restore --list` output.
std::vector<TocEntry> ParseTocList(const std::string& list);
// The same from a plain-format dump's "-- Name: x; Type: T; Schema: s" headers.
// Fails unless the file ends with pg_dump's "dump complete" trailer.
Result<std::vector<TocEntry>> ReadPlainToc(const std::string& path);
int CountType(const std::vector<TocEntry>& toc, const std::string& type);

// Size and sha256 of a file, or of a directory (sha256 over the sorted
// "name sha256\n" lines of its files).
struct PathDigest {
  int64_t size = 0;
  std::string sha256;
};
Result<PathDigest> DigestPath(const std::string& path);

// The archive format of an existing path: "directory", "custom" (starts with
// PGDMP) or "plain".
Result<std::string> DetectArchiveFormat(const std::string& path);

}  // namespace runbook
