// PgConnection: a Lua-free client over libpq for the postgres binding.
//
// Everything goes through libpq's asynchronous API (PQconnectStartParams,
// PQsendQuery[Params], PQconsumeInput, poll on PQsocket), so a dead or stopped
// server cannot hold the engine past a deadline: at the deadline the query is
// cancelled (PQcancel on a detached helper thread, because PQcancel itself
// blocks on a stopped server) and if the server has not answered within
// kCancelGrace the connection is closed and the call returns kTimeout.
//
// Errors name the connection ("connection 'blue': ...") and never contain the
// password: it is cut out of every message this class produces.
//
// Thread-safety: a PgConnection is used by one thread at a time. Shared users
// (the run's resource, see pg_session.h) guard it with a mutex.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/clock.h"
#include "engine/core/status.h"
#include "engine/core/value.h"

namespace runbook {

using PgParams = std::vector<std::optional<std::string>>;

struct PgConnectOptions {
  std::string conn_name;                        // the runbook's connection name, for errors
  std::string dsn;                              // conninfo or URI (expand_dbname=1); may be ""
  std::optional<std::string> password;          // nullopt: libpq's own (PGPASSWORD, ~/.pgpass)
  std::map<std::string, std::string> keywords;  // host, port, dbname, user, sslmode, ...
  std::string application_name;
  std::chrono::seconds connect_timeout{10};  // bounds the whole connect, all hosts
};

// What one statement (or the last of several) returned.
struct PgResult {
  std::vector<std::string> columns;
  Value rows = Value::array();  // [{column: value}], typed (see pg_value.h)
  std::string command;          // "UPDATE 3" (the command tag)
  int64_t affected = 0;         // PQcmdTuples summed over statements
};

// libpq's multi-line messages on one line: "FATAL: a; server closed ...".
std::string OneLineError(const std::string& text);

// The keywords a conninfo string or URI sets, as libpq parses it (only those
// present, no defaults); empty, with *error set when given, if it cannot be
// parsed.
std::map<std::string, std::string> DsnKeywords(const std::string& dsn,
                                               std::string* error = nullptr);
// The secrets a dsn holds: its password and sslpassword as libpq decodes
// them, and a URI's password as written (percent-encoded).
std::vector<std::string> DsnSecrets(const std::string& dsn);

class PgConnection {
 public:
  static constexpr std::chrono::milliseconds kCancelGrace{1000};

  PgConnection() = default;
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Connects (closing any previous connection). The deadline bounds the whole
  // attempt together with options.connect_timeout.
  Status Connect(const PgConnectOptions& options, SteadyTime deadline = SteadyTime::max());
  void Close();
  // A session the engine keeps for itself (a run lock's) is not cancelled
  // when the run stops acting (engine/core/interrupt.h); a step's is.
  void set_stops_with_run(bool stops) { stops_with_run_ = stops; }
  // Connected and usable (a failed or timed-out connection is not).
  bool ok() const;
  const std::string& conn_name() const { return options_.conn_name; }

  // Every call makes the server's statement_timeout match what is left of
  // `deadline` (RESET to the server's default for SteadyTime::max()); that
  // costs one extra round trip only when the deadline changed.
  //
  // Runs one statement with $n parameters (extended protocol).
  Result<PgResult> Run(const std::string& sql, const PgParams& params = {},
                       SteadyTime deadline = SteadyTime::max());
  // Runs a script of one or more statements (simple protocol, no parameters).
  Result<PgResult> RunScript(const std::string& sql, SteadyTime deadline = SteadyTime::max());
  Result<Value> Query(const std::string& sql, const PgParams& params = {},
                      SteadyTime deadline = SteadyTime::max());
  Status Exec(const std::string& sql, const PgParams& params = {},
              SteadyTime deadline = SteadyTime::max());

  // Sets application_name for the session (outside any transaction).
  Status SetApplicationName(const std::string& name, SteadyTime deadline = SteadyTime::max());

  // "name" quoted as an identifier (PQescapeIdentifier). Requires ok().
  std::string QuoteIdent(const std::string& name) const;
  int server_version() const;         // 150004; 0 when not connected
  bool in_transaction() const;        // inside BEGIN ... (or a failed one)
  std::string database() const;       // PQdb
  int backend_pid() const;            // PQbackendPID; 0 when not connected
  std::string server() const;         // "host:port" of the server (PQhost, PQport)
  // The options this session connected with, pinned to where it arrived: the
  // host, address and port it reached (one of a host list), its database and
  // user. A client program given these (pg_tools.h) reaches the very server
  // this session reads, whatever a host list, DNS or a service would pick now.
  // The options as given when not connected.
  PgConnectOptions endpoint() const;
  // Which server this is, the same through any of its addresses (localhost,
  // 127.0.0.1, a socket) and for any role: the port its postmaster listens
  // on and the microsecond it started (two copies of one data directory
  // differ); server() when it does not say. A restart makes it another
  // server. Asked once per connection (a rehearsal plan's keys).
  std::string identity(SteadyTime deadline = SteadyTime::max());
  PGconn* native() { return conn_; }  // for COPY streaming (pg_copy.h): non-blocking, idle
  // Server notices and warnings since the last call (collation mismatch
  // warnings arrive this way): the first 1,000, then a line counting the rest.
  std::vector<std::string> TakeNotices();

  // Prefixes "connection 'NAME': " and removes the password.
  Status Error(Status::Code code, const std::string& message) const;
  std::string Clean(const std::string& message) const;

 private:
  enum class Mode { kParams, kScript };
  struct Wait {  // the state of one round trip against its deadline
    SteadyTime deadline;
    bool cancelled = false;
    SteadyTime give_up = SteadyTime::max();
  };
  Result<PgResult> Execute(Mode mode, const std::string& sql, const PgParams& params,
                           SteadyTime deadline);
  Result<PgResult> RoundTrip(Mode mode, const std::string& sql, const PgParams& params,
                             SteadyTime deadline);
  Status SyncStatementTimeout(SteadyTime deadline);
  Status Send(Mode mode, const std::string& sql, const PgParams& params, Wait* wait);
  Status WaitSocket(short events, Wait* wait);
  Status Collect(PgResult* out, Wait* wait);
  Status ResultError(const PGresult* res, bool cancelled) const;
  Status ConnectError(const std::string& what) const;
  void StartCancel();
  static void OnNotice(void* self, const PGresult* res);

  PGconn* conn_ = nullptr;
  PgConnectOptions options_;
  bool stops_with_run_ = true;
  std::vector<std::string> secrets_;  // cut out of every message
  // The deadline the server's statement_timeout currently follows
  // (max: the server's default); unknown after a transaction that changed it ended.
  SteadyTime timeout_for_ = SteadyTime::max();
  bool timeout_known_ = true;
  bool timeout_set_in_txn_ = false;
  std::vector<std::string> notices_;  // at most kMaxNotices, then only counted
  int64_t notices_dropped_ = 0;
  // The cancel request of an earlier statement, sent from a thread: the
  // next statement waits for it to be delivered, else the cancel could
  // reach the server while that statement runs and cancel it instead.
  std::shared_future<void> cancel_sent_;
  std::string identity_;  // identity(), once asked
};

}  // namespace runbook
