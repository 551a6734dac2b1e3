// The Lua-free piece of pg.copy that moves rows: streaming one table between
// two libpq connections with COPY (pg_dump and psql run through pg_tools.h).
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
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"

namespace runbook {

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
