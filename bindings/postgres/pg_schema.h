// A database's schema as comparable entries (seeds 002 and 003: a schema
// that is not what the application expects, caught before it rolls out).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "bindings/postgres/pg_client.h"

namespace runbook {

// One object: kind ("table", "column", "index", "constraint", "sequence",
// "extension"), name ("public.streams.live_started_at"), its definition as
// the server prints it, and the table it belongs to ("" for top-level).
struct SchemaEntry {
  std::string kind, object, definition, table;
};

// Every user object outside the system schemas, sorted by kind and name.
Result<std::vector<SchemaEntry>> SnapshotSchema(PgConnection& conn, SteadyTime deadline);

struct SchemaDifference {
  std::string kind, object;
  std::string source, target;  // definitions; "" = absent on that side
};

// Differences between two snapshots. Children (columns, indexes,
// constraints) of a table that exists on one side only are not listed: the
// table is. Extensions are compared by name; version differences go to
// `version_notes` (they are expected across major versions).
std::vector<SchemaDifference> DiffSchemas(const std::vector<SchemaEntry>& source,
                                          const std::vector<SchemaEntry>& target,
                                          std::vector<std::string>* version_notes);

}  // namespace runbook
