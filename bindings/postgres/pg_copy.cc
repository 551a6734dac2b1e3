#include "bindings/postgres/pg_copy.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "engine/core/interrupt.h"

namespace runbook {
namespace {

using SteadyClock = std::chrono::steady_clock;

// The error of a failed COPY result, or of the connection.
std::string CopyError(PGconn* conn, const PGresult* res) {
  const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string text = primary ? primary : OneLineError(PQerrorMessage(conn));
  if (text.empty()) text = "connection lost";
  if (state) text += " (SQLSTATE " + std::string(state) + ")";
  return text;
}

// Waits until one of the sockets is ready, the deadline passes or stop is set.
Status WaitFor(PgConnection& a, short a_events, PgConnection* b, short b_events,
               SteadyTime deadline, const std::atomic<bool>* stop) {
  struct pollfd fds[2] = {{PQsocket(a.native()), a_events, 0}, {-1, 0, 0}};
  if (b) fds[1] = {PQsocket(b->native()), b_events, 0};
  for (;;) {
    if (stop && stop->load()) return Status::Failed("stopped: another table failed");
    if (ActingStopped()) return Status::Failed("stopped: " + WhyActingStopped());
    auto now = SteadyClock::now();
    if (deadline != SteadyTime::max() && now >= deadline) {
      return a.Error(Status::Code::kTimeout, "the step's deadline passed during COPY");
    }
    int64_t ms = 200;
    if (deadline != SteadyTime::max()) {
      ms = std::min<int64_t>(
          ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1);
    }
    int rc = poll(fds, b ? 2 : 1, static_cast<int>(ms));
    if (rc > 0) return Status::Ok();
    if (rc < 0 && errno != EINTR) {
      return a.Error(Status::Code::kUnavailable, std::string("poll: ") + strerror(errno));
    }
  }
}

// Sends `sql` and waits for its first result, which must have status `want`
// (PGRES_COPY_OUT / PGRES_COPY_IN).
Status StartCopy(PgConnection& c, const std::string& sql, ExecStatusType want, SteadyTime deadline,
                 const std::atomic<bool>* stop) {
  PGconn* conn = c.native();
  if (!PQsendQuery(conn, sql.c_str())) {
    return c.Error(Status::Code::kUnavailable, "cannot send COPY: " + CopyError(conn, nullptr));
  }
  for (int f; (f = PQflush(conn)) != 0;) {
    if (f < 0) return c.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
    Status s = WaitFor(c, POLLIN | POLLOUT, nullptr, 0, deadline, stop);
    if (!s.ok()) return s;
    if (!PQconsumeInput(conn)) return c.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
  }
  while (PQisBusy(conn)) {
    Status s = WaitFor(c, POLLIN, nullptr, 0, deadline, stop);
    if (!s.ok()) return s;
    if (!PQconsumeInput(conn)) return c.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
  }
  PGresult* res = PQgetResult(conn);
  bool good = res && PQresultStatus(res) == want;
  std::string error = good ? "" : CopyError(conn, res);
  PQclear(res);
  if (!good) return c.Error(Status::Code::kFailed, error);
  return Status::Ok();
}

// Collects the results after the COPY ended; returns the command tag's count.
Result<int64_t> FinishCopy(PgConnection& c, SteadyTime deadline, const std::atomic<bool>* stop) {
  PGconn* conn = c.native();
  int64_t rows = 0;
  std::string error;
  for (;;) {
    while (PQisBusy(conn)) {
      Status s = WaitFor(c, POLLIN, nullptr, 0, deadline, stop);
      if (!s.ok()) return s;
      if (!PQconsumeInput(conn))
        return c.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
    }
    PGresult* res = PQgetResult(conn);
    if (!res) break;
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
      rows = std::atoll(PQcmdTuples(res));
    } else if (error.empty()) {
      error = CopyError(conn, res);
    }
    PQclear(res);
  }
  if (!error.empty()) return c.Error(Status::Code::kFailed, error);
  return rows;
}

Status EndCopyIn(PgConnection& dst, SteadyTime deadline, const std::atomic<bool>* stop) {
  PGconn* conn = dst.native();
  for (int r; (r = PQputCopyEnd(conn, nullptr)) != 1;) {
    if (r < 0) return dst.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
    Status s = WaitFor(dst, POLLOUT, nullptr, 0, deadline, stop);
    if (!s.ok()) return s;
    if (PQflush(conn) < 0) return dst.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
  }
  for (int f; (f = PQflush(conn)) != 0;) {
    if (f < 0) return dst.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
    Status s = WaitFor(dst, POLLIN | POLLOUT, nullptr, 0, deadline, stop);
    if (!s.ok()) return s;
    if (!PQconsumeInput(conn))
      return dst.Error(Status::Code::kUnavailable, CopyError(conn, nullptr));
  }
  return Status::Ok();
}

// Rows travel to the target in batches of up to this size: the source sends
// one CopyData message per row, but COPY FROM accepts the stream cut anywhere,
// so one message per batch spares the target a message per row and the pump
// a send() per row. Memory stays bounded: a batch is only handed to libpq
// once the previous one has left for the target's socket.
constexpr size_t kBatchBytes = 256 << 10;

// The streaming loop proper; the caller closes both connections on failure.
Status Pump(PgConnection& src, PgConnection& dst, SteadyTime deadline,
            const std::atomic<bool>* stop, const std::function<void(const CopyStats&)>& progress,
            CopyStats* stats) {
  const auto start = SteadyClock::now();
  auto last_report = start;
  std::string batch;
  batch.reserve(kBatchBytes + (64 << 10));
  bool pending = false;  // libpq still holds bytes for the target's socket
  bool source_done = false;
  while (!source_done || !batch.empty()) {
    // Take what the source has already sent, without waiting.
    bool need_input = false;
    while (!source_done && batch.size() < kBatchBytes) {
      char* buf = nullptr;
      int n = PQgetCopyData(src.native(), &buf, /*async=*/1);
      if (n > 0) {
        batch.append(buf, static_cast<size_t>(n));
        PQfreemem(buf);
        ++stats->rows;  // one message per row in text format; the tag replaces it
        continue;
      }
      if (n == -1) source_done = true;  // the source finished its COPY
      if (n == -2) return src.Error(Status::Code::kUnavailable, CopyError(src.native(), nullptr));
      if (n == 0) need_input = true;
      break;
    }
    if (pending) {
      int f = PQflush(dst.native());
      if (f < 0) return dst.Error(Status::Code::kUnavailable, CopyError(dst.native(), nullptr));
      pending = f == 1;
    }
    // Hand the batch over once it is full, or when the source has nothing more for now.
    if (!pending && !batch.empty() && (batch.size() >= kBatchBytes || need_input || source_done)) {
      int r = PQputCopyData(dst.native(), batch.data(), static_cast<int>(batch.size()));
      if (r != 1) return dst.Error(Status::Code::kUnavailable, CopyError(dst.native(), nullptr));
      stats->bytes += static_cast<int64_t>(batch.size());
      batch.clear();
      int f = PQflush(dst.native());
      if (f < 0) return dst.Error(Status::Code::kUnavailable, CopyError(dst.native(), nullptr));
      pending = f == 1;
      if (progress && SteadyClock::now() - last_report >= std::chrono::seconds(1)) {
        last_report = SteadyClock::now();
        stats->seconds = std::chrono::duration<double>(last_report - start).count();
        progress(*stats);
      }
      continue;
    }
    if (source_done && batch.empty()) break;
    // Wait for whatever blocks progress: the target's socket while a full
    // batch waits for it, otherwise the source (and the target if it can
    // take the pending bytes meanwhile).
    // The target is watched for input too (as PQflush asks): a target that
    // sends notices faster than they are read stops reading our rows.
    const bool full = batch.size() >= kBatchBytes || (source_done && !batch.empty());
    Status s =
        full ? WaitFor(dst, POLLIN | POLLOUT, nullptr, 0, deadline, stop)
             : WaitFor(src, POLLIN, pending ? &dst : nullptr, POLLIN | POLLOUT, deadline, stop);
    if (!s.ok()) return s;
    if ((full || pending) && !PQconsumeInput(dst.native())) {
      return dst.Error(Status::Code::kUnavailable, CopyError(dst.native(), nullptr));
    }
    if (!full && !PQconsumeInput(src.native())) {
      return src.Error(Status::Code::kUnavailable, CopyError(src.native(), nullptr));
    }
  }
  for (int f; pending && (f = PQflush(dst.native())) != 0;) {
    if (f < 0) return dst.Error(Status::Code::kUnavailable, CopyError(dst.native(), nullptr));
    Status s = WaitFor(dst, POLLIN | POLLOUT, nullptr, 0, deadline, stop);
    if (!s.ok()) return s;
    if (!PQconsumeInput(dst.native())) {
      return dst.Error(Status::Code::kUnavailable, CopyError(dst.native(), nullptr));
    }
  }
  Result<int64_t> out = FinishCopy(src, deadline, stop);  // the source's own error, if any
  if (!out.ok()) return out.status();
  Status s = EndCopyIn(dst, deadline, stop);
  if (!s.ok()) return s;
  Result<int64_t> in = FinishCopy(dst, deadline, stop);
  if (!in.ok()) return in.status();
  stats->rows = *in;
  stats->seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  return Status::Ok();
}

}  // namespace

Status StreamCopy(PgConnection& src, PgConnection& dst, const std::string& copy_out_sql,
                  const std::string& copy_in_sql, SteadyTime deadline,
                  const std::atomic<bool>* stop,
                  const std::function<void(const CopyStats&)>& progress, CopyStats* stats) {
  *stats = CopyStats{};
  if (!src.ok() || !dst.ok()) return Status::Unavailable("COPY needs two open connections");
  // The target first: a missing or unwritable table fails before the source reads.
  Status s = StartCopy(dst, copy_in_sql, PGRES_COPY_IN, deadline, stop);
  if (s.ok()) s = StartCopy(src, copy_out_sql, PGRES_COPY_OUT, deadline, stop);
  if (s.ok()) s = Pump(src, dst, deadline, stop, progress, stats);
  if (!s.ok()) {
    // The only way out of a half-done COPY on both sides that cannot hang:
    // the servers roll back the target's transaction and end the source's.
    src.Close();
    dst.Close();
  }
  return s;
}

}  // namespace runbook
