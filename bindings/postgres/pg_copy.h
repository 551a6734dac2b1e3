// The Lua-free pieces of pg.copy: running pg_dump / psql against a
// connection (argv, never a shell; the password travels in PGPASSWORD), and
// streaming one table between two libpq connections with COPY.
//
// StreamCopy pipes `COPY ... TO STDOUT` on the source into `COPY ... FROM
// STDIN` on the target, the rows regrouped into batches of up to 256 KiB; a batch
// waits until the previous one has left for the socket, so memory stays
// bounded (about two batches) whatever the table size. It uses the connections'
// non-blocking sockets with poll, so a deadline or a stop request ends it
// promptly. On any failure it closes both connections: the server then
// aborts the target's transaction, so a failed table never keeps half its
// rows.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"
#include "engine/core/process.h"

namespace runbook {

// How a libpq tool (pg_dump, psql, pg_restore, vacuumdb) reaches the server
// of `options`: a conninfo for --dbname with every setting of the dsn and
// keywords but the password (explicit, so that a PGSERVICE or a service file
// in the environment cannot send the tool elsewhere: libpq lets a service
// override PG* variables, not the conninfo), and PGPASSWORD.
struct PgToolConnection {
  std::string conninfo;
  std::map<std::string, std::string> env;
};
PgToolConnection PgToolConnect(const PgConnectOptions& options);

// Runs a libpq tool with --dbname=<conninfo> right after argv[0] (none for
// --version); its stdout on success. Fails with the tool's stderr (cleaned
// of secrets by the caller's redactor) on a non-zero exit, a signal, or the
// deadline.
Result<std::string> RunPgTool(ProcessRunner& runner, const std::vector<std::string>& argv,
                              const PgConnectOptions& options, SteadyTime deadline,
                              const std::optional<std::string>& stdin_data = std::nullopt);

// The major version of a tool's `--version` output ("psql (PostgreSQL)
// 15.14 (Debian ...)" -> 15), 0 if it cannot be read.
int ToolMajorVersion(const std::string& version_output);

struct CopyStats {
  int64_t rows = 0;   // the target's COPY command tag
  int64_t bytes = 0;  // COPY data streamed
  double seconds = 0;
};

// Streams one table. `src` and `dst` must be idle; `dst` is normally inside
// the caller's transaction. `stop` (may be null) is polled at least every
// 200 ms; `progress` (may be empty) is called about once a second.
Status StreamCopy(PgConnection& src, PgConnection& dst, const std::string& copy_out_sql,
                  const std::string& copy_in_sql, SteadyTime deadline,
                  const std::atomic<bool>* stop,
                  const std::function<void(const CopyStats&)>& progress, CopyStats* stats);

}  // namespace runbook
