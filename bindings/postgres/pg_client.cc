#include "bindings/postgres/pg_client.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "bindings/postgres/pg_value.h"
#include "engine/core/interrupt.h"

namespace runbook {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

SteadyTime Now() { return std::chrono::steady_clock::now(); }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

int64_t MillisLeft(SteadyTime deadline) {
  return duration_cast<milliseconds>(deadline - Now()).count();
}

// SQLSTATEs after which the same call may succeed later.
bool Transient(const std::string& state) {
  return state.rfind("08", 0) == 0 || state.rfind("53", 0) == 0 || state == "57P01" ||
         state == "57P02" || state == "57P03" || state == "40001" || state == "40P01";
}

}  // namespace

PgConnection::~PgConnection() { Close(); }

void PgConnection::Close() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
  timeout_for_ = SteadyTime::max();
  timeout_known_ = true;
  timeout_set_in_txn_ = false;
  identity_.clear();
}

bool PgConnection::ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }

std::string PgConnection::Clean(const std::string& message) const {
  std::string out = message;
  for (const auto& s : secrets_) {
    if (s.size() < 3) continue;  // would mangle the text; libpq never echoes it anyway
    for (size_t p; (p = out.find(s)) != std::string::npos;) out.replace(p, s.size(), "***");
  }
  return Trim(out);
}

Status PgConnection::Error(Status::Code code, const std::string& message) const {
  std::string text = "connection '" + options_.conn_name + "': " + Clean(message);
  switch (code) {
    case Status::Code::kTimeout:
      return Status::Timeout(text);
    case Status::Code::kUnavailable:
      return Status::Unavailable(text);
    case Status::Code::kInvalid:
      return Status::Invalid(text);
    case Status::Code::kInternal:
      return Status::Internal(text);
    default:
      return Status::Failed(text);
  }
}

Status PgConnection::ConnectError(const std::string& what) const {
  std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
  // Wrong credentials or a missing database will not fix themselves.
  bool permanent = msg.find("authentication failed") != std::string::npos ||
                   msg.find("no password supplied") != std::string::npos ||
                   msg.find("does not exist") != std::string::npos ||
                   msg.find("no pg_hba.conf entry") != std::string::npos ||
                   msg.find("not permitted to log in") != std::string::npos ||
                   msg.find("invalid") != std::string::npos;
  return Error(permanent ? Status::Code::kFailed : Status::Code::kUnavailable,
               what + ": " + OneLineError(msg));
}

std::map<std::string, std::string> DsnKeywords(const std::string& dsn, std::string* error) {
  std::map<std::string, std::string> out;
  if (dsn.empty()) return out;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (!opts) {
    if (error) *error = err ? err : "out of memory";
    PQfreemem(err);
    return out;
  }
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (o->val && *o->val) out[o->keyword] = o->val;
  }
  PQconninfoFree(opts);
  return out;
}

namespace {

// The password of a URI as written: postgresql://user:PASSWORD@host/...
std::string RawUriPassword(const std::string& dsn) {
  size_t scheme = dsn.find("://");
  if (scheme == std::string::npos) return "";
  size_t start = scheme + 3;
  size_t at = dsn.find('@', start);
  size_t slash = dsn.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return "";
  size_t colon = dsn.find(':', start);
  if (colon == std::string::npos || colon > at) return "";
  return dsn.substr(colon + 1, at - colon - 1);
}

}  // namespace

std::vector<std::string> DsnSecrets(const std::string& dsn) {
  std::vector<std::string> out;
  std::map<std::string, std::string> parts = DsnKeywords(dsn);
  if (auto it = parts.find("password"); it != parts.end()) out.push_back(it->second);
  // The passphrase of the client's key is a secret as much.
  if (auto it = parts.find("sslpassword"); it != parts.end()) out.push_back(it->second);
  std::string raw = RawUriPassword(dsn);
  if (!raw.empty() && (out.empty() || raw != out[0])) out.push_back(raw);
  return out;
}

std::string OneLineError(const std::string& text) {
  std::string out;
  bool space = false, newline = false;
  for (char c : Trim(text)) {
    if (c == '\n') newline = true;
    if (c == '\n' || c == '\t' || c == ' ') {
      space = true;
      continue;
    }
    if (!out.empty() && (space || newline)) out += newline ? "; " : " ";
    space = newline = false;
    out += c;
  }
  return out;
}

Status PgConnection::Connect(const PgConnectOptions& options, SteadyTime deadline) {
  Close();
  options_ = options;
  secrets_ = DsnSecrets(options.dsn);
  if (options.password) secrets_.push_back(*options.password);
  std::sort(secrets_.begin(), secrets_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });

  SteadyTime give_up = std::min(deadline, Now() + options.connect_timeout);
  std::vector<std::pair<std::string, std::string>> kv;
  if (!options.dsn.empty()) kv.emplace_back("dbname", options.dsn);  // expanded: must be first
  for (const auto& [k, v] : options.keywords) kv.emplace_back(k, v);
  if (options.password) kv.emplace_back("password", *options.password);
  if (!options.application_name.empty())
    kv.emplace_back("application_name", options.application_name);
  int64_t secs = std::max<int64_t>(2, (MillisLeft(give_up) + 999) / 1000);
  kv.emplace_back("connect_timeout", std::to_string(secs));
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : kv) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);

  conn_ = PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    Status s = ConnectError("cannot connect");
    Close();
    return s;
  }
  PQsetNoticeReceiver(conn_, &PgConnection::OnNotice, this);
  for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;;) {
    if (st == PGRES_POLLING_OK) break;
    if (st == PGRES_POLLING_FAILED) {
      Status s = ConnectError("cannot connect");
      Close();
      return s;
    }
    short events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    int fd = PQsocket(conn_);
    int64_t left = MillisLeft(give_up);
    if (left <= 0) {
      Close();
      return Error(
          Status::Code::kTimeout,
          "cannot connect: no answer within " +
              std::to_string(duration_cast<milliseconds>(options.connect_timeout).count() / 1000) +
              "s (connect_timeout or the step's deadline)");
    }
    struct pollfd pfd = {fd, events, 0};
    int rc = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (rc < 0 && errno != EINTR) {
      Close();
      return Error(Status::Code::kUnavailable, std::string("poll: ") + strerror(errno));
    }
    if (rc > 0) st = PQconnectPoll(conn_);
  }
  if (PQsetnonblocking(conn_, 1) != 0) {
    Status s = ConnectError("cannot switch to non-blocking mode");
    Close();
    return s;
  }
  return Status::Ok();
}

void PgConnection::OnNotice(void* self, const PGresult* res) {
  auto* conn = static_cast<PgConnection*>(self);
  const char* severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
  const char* hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
  std::string text = std::string(severity ? severity : "NOTICE") + ": " + (primary ? primary : "");
  if (detail) text += " (" + std::string(detail) + ")";
  if (hint) text += " hint: " + std::string(hint);
  // A statement may raise a notice per row (a trigger on a copied table):
  // keep the first ones, count the rest, so memory stays bounded.
  constexpr size_t kMaxNotices = 1000;
  if (conn->notices_.size() < kMaxNotices) {
    conn->notices_.push_back(conn->Clean(text));
  } else {
    ++conn->notices_dropped_;
  }
}

std::vector<std::string> PgConnection::TakeNotices() {
  std::vector<std::string> out;
  out.swap(notices_);
  if (notices_dropped_ > 0) {
    out.push_back("NOTICE: " + std::to_string(notices_dropped_) + " more notices not shown");
    notices_dropped_ = 0;
  }
  return out;
}

std::string PgConnection::QuoteIdent(const std::string& name) const {
  if (conn_) {
    char* q = PQescapeIdentifier(conn_, name.data(), name.size());
    if (q) {
      std::string out = q;
      PQfreemem(q);
      return out;
    }
  }
  std::string out = "\"";  // the same result for valid UTF-8 (plan text, no connection)
  for (char ch : name) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

int PgConnection::server_version() const { return conn_ ? PQserverVersion(conn_) : 0; }

bool PgConnection::in_transaction() const {
  if (!conn_) return false;
  PGTransactionStatusType t = PQtransactionStatus(conn_);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

std::string PgConnection::database() const { return conn_ ? PQdb(conn_) : ""; }

int PgConnection::backend_pid() const { return conn_ ? PQbackendPID(conn_) : 0; }

std::string PgConnection::server() const {
  return conn_ ? std::string(PQhost(conn_)) + ":" + PQport(conn_) : "";
}

PgConnectOptions PgConnection::endpoint() const {
  PgConnectOptions out = options_;
  if (!conn_) return out;
  auto pin = [&](const char* key, const char* value) {
    if (value && *value) out.keywords[key] = value;
  };
  pin("host", PQhost(conn_));
  pin("hostaddr", PQhostaddr(conn_));  // "" over a Unix socket
  pin("port", PQport(conn_));
  pin("dbname", PQdb(conn_));
  pin("user", PQuser(conn_));
  return out;
}

std::string PgConnection::identity(SteadyTime deadline) {
  if (!identity_.empty() || !conn_) return identity_.empty() ? server() : identity_;
  if (PQtransactionStatus(conn_) == PQTRANS_INERROR) return server();
  // What any role may read, whatever its session's TimeZone or DateStyle:
  // the port the postmaster listens on and the microsecond it started.
  Result<Value> rows = Query(
      "SELECT current_setting('port') || '@' || "
      "(extract(epoch FROM pg_catalog.pg_postmaster_start_time()) * 1000000)::int8::text AS id",
      {}, deadline);
  if (!rows.ok()) return server();  // asked again next time
  identity_ = rows->size() == 1 && (*rows)[0]["id"].is_string()
                  ? "postmaster:" + (*rows)[0]["id"].get<std::string>()
                  : server();
  return identity_;
}

void PgConnection::StartCancel() {
  PGcancel* cancel = PQgetCancel(conn_);
  if (!cancel) return;
  // PQcancel blocks until the postmaster closes the cancel connection, which
  // a stopped server never does: run it where it cannot hold us up. It
  // returns once the server has signalled the backend; RoundTrip waits for
  // that before the next statement (a signal that reaches an idle backend is
  // dropped; one that comes during the next statement cancels it).
  std::promise<void> sent;
  cancel_sent_ = sent.get_future().share();
  std::thread([cancel, sent = std::move(sent)]() mutable {
    char err[256];
    PQcancel(cancel, err, sizeof err);
    PQfreeCancel(cancel);
    sent.set_value();
  }).detach();
}

Status PgConnection::WaitSocket(short events, Wait* wait) {
  for (;;) {
    SteadyTime now = Now();
    // Past the deadline, or the run lost its lock while this step acts.
    const bool stopped = stops_with_run_ && ActingStopped();
    if (!wait->cancelled &&
        ((wait->deadline != SteadyTime::max() && now >= wait->deadline) || stopped)) {
      StartCancel();
      wait->cancelled = true;
      wait->give_up = now + kCancelGrace;
    }
    if (wait->cancelled && now >= wait->give_up) {
      Close();
      return Error(Status::Code::kTimeout,
                   std::string(stopped ? "the run stopped acting" : "the step's deadline passed") +
                       " and the server did not answer the cancel request within 1s; "
                       "connection closed");
    }
    SteadyTime until = wait->cancelled ? wait->give_up : wait->deadline;
    int ms = until == SteadyTime::max()
                 ? 1000
                 : static_cast<int>(std::clamp<int64_t>(MillisLeft(until), 0, 1000));
    struct pollfd pfd = {PQsocket(conn_), events, 0};
    int rc = poll(&pfd, 1, ms);
    if (rc > 0) return Status::Ok();
    if (rc < 0 && errno != EINTR) {
      return Error(Status::Code::kUnavailable, std::string("poll: ") + strerror(errno));
    }
  }
}

Status PgConnection::Send(Mode mode, const std::string& sql, const PgParams& params, Wait* wait) {
  int sent;
  if (mode == Mode::kScript) {
    sent = PQsendQuery(conn_, sql.c_str());
  } else {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    sent = PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  }
  if (!sent) return ConnectError("cannot send the statement");
  for (;;) {
    int f = PQflush(conn_);
    if (f == 0) return Status::Ok();
    if (f < 0) return ConnectError("cannot send the statement");
    Status s = WaitSocket(POLLIN | POLLOUT, wait);
    if (!s.ok()) return s;
    if (!PQconsumeInput(conn_)) return ConnectError("connection lost");
  }
}

Status PgConnection::ResultError(const PGresult* res, bool cancelled) const {
  auto field = [res](int code) {
    const char* v = PQresultErrorField(res, code);
    return std::string(v ? v : "");
  };
  std::string state = field(PG_DIAG_SQLSTATE);
  std::string primary = field(PG_DIAG_MESSAGE_PRIMARY);
  if (primary.empty()) primary = Trim(PQresultErrorMessage(res));
  if (primary.empty()) primary = Trim(PQerrorMessage(conn_));
  std::string text = primary;
  if (!state.empty()) text += " (SQLSTATE " + state + ")";
  if (!field(PG_DIAG_MESSAGE_DETAIL).empty()) text += "; detail: " + field(PG_DIAG_MESSAGE_DETAIL);
  if (!field(PG_DIAG_MESSAGE_HINT).empty()) text += "; hint: " + field(PG_DIAG_MESSAGE_HINT);
  if (state == "57014") {
    return Error(Status::Code::kTimeout,
                 (cancelled ? "cancelled at the step's deadline: " : "") + text);
  }
  return Error(Transient(state) ? Status::Code::kUnavailable : Status::Code::kFailed, text);
}

Status PgConnection::Collect(PgResult* out, Wait* wait) {
  Status first_error;
  for (;;) {
    while (PQisBusy(conn_)) {
      Status s = WaitSocket(POLLIN, wait);
      if (!s.ok()) return s;
      if (!PQconsumeInput(conn_)) return ConnectError("connection lost");
    }
    PGresult* res = PQgetResult(conn_);
    if (!res) break;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) {
      if (st == PGRES_TUPLES_OK) out->rows = PgRowsToValue(res, &out->columns);
      out->command = PQcmdStatus(res);
      out->affected += std::atoll(PQcmdTuples(res));
    } else if (st == PGRES_COPY_IN) {
      PQputCopyEnd(conn_, "COPY FROM STDIN is not supported by pg.exec");
    } else if (st == PGRES_COPY_OUT) {
      char* buf = nullptr;
      while (PQgetCopyData(conn_, &buf, 0) > 0) PQfreemem(buf);
      if (first_error.ok()) {
        first_error = Error(Status::Code::kInvalid, "COPY TO STDOUT is not supported here");
      }
    } else if (first_error.ok()) {
      first_error = ResultError(res, wait->cancelled);
    }
    PQclear(res);
  }
  return first_error;
}

Result<PgResult> PgConnection::RoundTrip(Mode mode, const std::string& sql, const PgParams& params,
                                         SteadyTime deadline) {
  if (!ok()) return Error(Status::Code::kUnavailable, "not connected");
  if (deadline != SteadyTime::max() && Now() >= deadline) {
    return Error(Status::Code::kTimeout, "the step's deadline passed before the statement ran");
  }
  if (cancel_sent_.valid()) {
    if (cancel_sent_.wait_for(kCancelGrace) != std::future_status::ready) {
      Close();
      return Error(Status::Code::kUnavailable,
                   "the cancel request of an earlier statement was not answered within 1s; "
                   "connection closed");
    }
    cancel_sent_ = {};
  }
  Wait wait{deadline};
  Status s = Send(mode, sql, params, &wait);
  PgResult out;
  if (s.ok()) s = Collect(&out, &wait);
  if (conn_ && PQstatus(conn_) == CONNECTION_BAD) Close();
  if (timeout_set_in_txn_ && conn_ && !in_transaction()) {
    timeout_known_ = false;  // committed or rolled back: we cannot tell which
    timeout_set_in_txn_ = false;
  }
  if (!s.ok()) return s;
  return out;
}

Status PgConnection::SyncStatementTimeout(SteadyTime deadline) {
  if (timeout_known_ && deadline == timeout_for_) return Status::Ok();
  if (conn_ && PQtransactionStatus(conn_) == PQTRANS_INERROR) return Status::Ok();
  std::string sql = "RESET statement_timeout";
  if (deadline != SteadyTime::max()) {
    int64_t ms = std::max<int64_t>(1, MillisLeft(deadline));
    sql = "SET statement_timeout = " + std::to_string(ms);
  }
  bool in_txn = in_transaction();
  Result<PgResult> r = RoundTrip(Mode::kScript, sql, {}, deadline);
  if (!r.ok()) return r.status();
  timeout_for_ = deadline;
  timeout_known_ = true;
  if (in_txn) timeout_set_in_txn_ = true;
  return Status::Ok();
}

Result<PgResult> PgConnection::Execute(Mode mode, const std::string& sql, const PgParams& params,
                                       SteadyTime deadline) {
  if (!ok()) return Error(Status::Code::kUnavailable, "not connected");
  Status s = SyncStatementTimeout(deadline);
  if (!s.ok()) return s;
  return RoundTrip(mode, sql, params, deadline);
}

Result<PgResult> PgConnection::Run(const std::string& sql, const PgParams& params,
                                   SteadyTime deadline) {
  return Execute(Mode::kParams, sql, params, deadline);
}

Result<PgResult> PgConnection::RunScript(const std::string& sql, SteadyTime deadline) {
  return Execute(Mode::kScript, sql, {}, deadline);
}

Result<Value> PgConnection::Query(const std::string& sql, const PgParams& params,
                                  SteadyTime deadline) {
  Result<PgResult> r = Run(sql, params, deadline);
  if (!r.ok()) return r.status();
  return std::move(r->rows);
}

Status PgConnection::Exec(const std::string& sql, const PgParams& params, SteadyTime deadline) {
  return Run(sql, params, deadline).status();
}

Status PgConnection::SetApplicationName(const std::string& name, SteadyTime deadline) {
  return Run("SELECT set_config('application_name', $1, false)", {name}, deadline).status();
}

}  // namespace runbook
