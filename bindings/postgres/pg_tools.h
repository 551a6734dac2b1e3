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
#include <set>
#include <string>
#include <vector>

#include "engine/core/registry.h"

namespace runbook {

// How to reach one database of a runbook connection with a client program.
struct PgToolTarget {
  std::string conn_name;
  std::string database;
  std::string conninfo;                    // no password in it
  std::map<std::string, std::string> env;  // PGPASSWORD when the config has one
};

// The target for database `dbname` ("" = the connection's own) of connection
// `conn`. Registers the connection's secrets with the redactor.
Result<PgToolTarget> ToolTarget(StepContext& ctx, const std::string& conn,
                                const std::string& dbname);

// A libpq conninfo value, quoted only when needed: db -> db, it's -> 'it\'s'.
std::string ConninfoQuote(const std::string& value);

// argv as one line for people (plan text, logs): words quoted for reading.
std::string FormatToolArgv(const std::vector<std::string>& argv);

// `bin_dir/tool`, or `tool` (looked up in PATH) when bin_dir is empty.
std::string ToolPath(const std::string& bin_dir, const std::string& tool);

// Runs a client program against the step's deadline. Fails, naming `where`
// ("connection 'blue': pg_dump"), if it cannot start, times out, exits
// non-zero, or prints an error line; other stderr lines go to the log.
Result<std::string> RunTool(StepContext& ctx, const std::string& where,
                            const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env = {});

// The error lines of a client program's stderr ("pg_dump: error: ...",
// "psql:f.sql:12: ERROR: ...", "errors ignored on restore").
std::vector<std::string> ToolErrorLines(const std::string& tool, const std::string& err);

// The major version a `--version` line names, comparable with ServerMajor:
// "pg_dump (PostgreSQL) 15.4 (Debian ...)" -> 15, "... 9.6.24" -> 906; 0 if unreadable.
int ToolMajor(const std::string& version_output);
// The major version of server_version_num: 150004 -> 15, 90624 -> 906.
int ServerMajor(int server_version_num);
std::string MajorName(int major);  // 15 -> "15", 906 -> "9.6"

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
