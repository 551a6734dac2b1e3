#include "bindings/postgres/pg_lint.h"

#include <pg_query.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>

#include "bindings/postgres/pg_sql.h"
#include "engine/core/schema.h"
#include "engine/core/value.h"

namespace runbook {

namespace {

const char kError[] = "error";
const char kWarning[] = "warning";

}  // namespace

const std::vector<LintRule>& LintRules() {
  static const std::vector<LintRule> rules = {
      {"syntax", kError,
       "a statement PostgreSQL's grammar (15) cannot parse, a file that is not UTF-8 or has a "
       "NUL byte; an error that leaves the rest of the file unsplit (an unterminated quote) "
       "cannot be ignored",
       "ALTER TABLE orders ADD COLUMN;", "fix the statement"},
      {"add-column-rewrite", kError,
       "ADD COLUMN that rewrites the whole table under an ACCESS EXCLUSIVE lock: a DEFAULT "
       "calling a volatile function, a serial type, GENERATED ... STORED, an identity column, "
       "or (with a connection) a domain type with a CHECK constraint",
       "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();",
       "add the column without a default (or with a constant one), set the default for new "
       "rows, then backfill in batches"},
      {"add-column-not-null", kError,
       "ADD COLUMN ... NOT NULL without a DEFAULT on a table that has rows: it fails",
       "ALTER TABLE orders ADD COLUMN region text NOT NULL;",
       "add it with a constant DEFAULT, or nullable and SET NOT NULL later (see set-not-null)"},
      {"set-not-null", kError,
       "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock, unless a validated "
       "CHECK (col IS NOT NULL) already proves it (PostgreSQL 12+)",
       "ALTER TABLE orders ALTER COLUMN region SET NOT NULL;",
       "ADD CONSTRAINT c CHECK (region IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; in a later "
       "migration SET NOT NULL (instant), then drop the check"},
      {"alter-column-type", kError,
       "ALTER COLUMN ... TYPE rewrites the table and its indexes under an ACCESS EXCLUSIVE lock "
       "(with a connection, the changes that do not are not reported: a longer or unbounded "
       "varchar, varchar to text and back, a numeric of more precision and the same scale)",
       "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;",
       "add a new column, keep both in sync, backfill, switch the application, drop the old one "
       "(runbooks/expand-contract.yaml)"},
      {"rewrite-table", kError,
       "SET LOGGED / SET UNLOGGED / SET TABLESPACE / SET ACCESS METHOD rewrite the table under "
       "an ACCESS EXCLUSIVE lock",
       "ALTER TABLE events SET LOGGED;", "do it in a maintenance window"},
      {"constraint-without-not-valid", kError,
       "ADD CONSTRAINT ... FOREIGN KEY or CHECK without NOT VALID (of a table or a domain), or "
       "ADD COLUMN with an inline "
       "REFERENCES or CHECK, checks every row while holding a lock that blocks writes (a "
       "foreign key locks the referenced table too)",
       "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES customers;",
       "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT (a weaker lock) in its own "
       "transaction"},
      {"add-unique-without-index", kError,
       "ADD PRIMARY KEY / UNIQUE / EXCLUDE builds its index under an ACCESS EXCLUSIVE lock",
       "ALTER TABLE orders ADD CONSTRAINT orders_ref_key UNIQUE (ref);",
       "CREATE UNIQUE INDEX CONCURRENTLY i ON orders (ref); then ADD CONSTRAINT ... UNIQUE USING "
       "INDEX i"},
      {"create-index-blocking", kError,
       "CREATE INDEX without CONCURRENTLY on an existing table blocks every write for the whole "
       "build",
       "CREATE INDEX orders_placed_at ON orders (placed_at);",
       "CREATE INDEX CONCURRENTLY (outside a transaction: pg.exec {transaction: false})"},
      {"reindex-blocking", kError,
       "REINDEX without CONCURRENTLY blocks writes (and reads that use the index) for the build",
       "REINDEX TABLE orders;", "REINDEX ... CONCURRENTLY (PostgreSQL 12+, outside a transaction)"},
      {"vacuum-full", kError, "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
       "VACUUM FULL orders;", "pg_repack, or plain VACUUM"},
      {"cluster", kError, "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
       "CLUSTER orders USING orders_pkey;", "pg_repack, or leave the order to the planner"},
      {"attach-partition", kError,
       "ATTACH PARTITION scans the new partition under an ACCESS EXCLUSIVE lock to prove its "
       "bound, unless a validated CHECK constraint already implies it (not checked here)",
       "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO "
       "('2027-01-01');",
       "add a CHECK matching the bound NOT VALID, VALIDATE it, then ATTACH (and ignore this "
       "finding with that reason)"},
      {"detach-partition-blocking", kWarning,
       "DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the parent",
       "ALTER TABLE events DETACH PARTITION events_2019;",
       "DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+, outside a transaction)"},
      {"drop-column-in-use", kError, "DROP COLUMN of a column the running application reads",
       "ALTER TABLE streams DROP COLUMN live_started_at;  -- uses: {streams: [live_started_at]}",
       "expand/contract: stop reading it (roll out), then drop it in a later migration"},
      {"rename-column-in-use", kError, "RENAME COLUMN of a column the running application reads",
       "ALTER TABLE streams RENAME COLUMN live_started_at TO started_at;",
       "add the new column, keep both in sync, switch the application, then drop the old one "
       "(runbooks/expand-contract.yaml)"},
      {"drop-table-in-use", kError,
       "DROP of a table or view the running application reads, or of its schema",
       "DROP TABLE streams;", "stop reading it first (roll out), then drop it"},
      {"rename-table-in-use", kError,
       "RENAME of a table or view the running application reads, of its schema, or SET SCHEMA",
       "ALTER TABLE streams RENAME TO live_streams;",
       "rename, and leave a view with the old name until the application moved"},
      {"drop-column", kWarning,
       "DROP COLUMN, or DROP TYPE / DOMAIN / EXTENSION ... CASCADE (which drops the columns of "
       "that type): the data is gone and a rollback cannot bring it back",
       "ALTER TABLE orders DROP COLUMN legacy_ref;", "make sure nothing reads it, keep a dump"},
      {"rename-column", kWarning,
       "RENAME COLUMN breaks every query that still names the old column",
       "ALTER TABLE orders RENAME COLUMN ref TO reference;",
       "list the columns the application reads in `uses` to have this checked"},
      {"drop-table", kWarning, "DROP TABLE / VIEW / SCHEMA: its data is gone",
       "DROP TABLE audit_2019;", "make sure nothing reads it, keep a dump"},
      {"rename-table", kWarning,
       "RENAME of a table, view or schema, or SET SCHEMA, breaks every query that names it",
       "ALTER TABLE orders RENAME TO purchases;",
       "list the tables the application reads in `uses` to have this checked"},
      {"truncate", kWarning, "TRUNCATE: every row is gone, under an ACCESS EXCLUSIVE lock",
       "TRUNCATE sessions;", "DELETE in batches if the table is in use"},
      {"drop-index-blocking", kWarning,
       "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table",
       "DROP INDEX orders_placed_at;", "DROP INDEX CONCURRENTLY (outside a transaction)"},
      {"refresh-blocking", kWarning,
       "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view until it ends",
       "REFRESH MATERIALIZED VIEW daily_totals;",
       "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)"},
      {"lock-table", kWarning, "an explicit LOCK TABLE in a migration",
       "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;", "let each statement take what it needs"},
      {"not-in-transaction", kError,
       "a statement that cannot run inside a transaction block (CREATE/DROP INDEX "
       "CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM, CLUSTER of all tables, DETACH PARTITION "
       "CONCURRENTLY, CREATE/DROP DATABASE, tablespaces, ALTER SYSTEM, subscriptions) in a "
       "migration that runs in one, or among other statements sent as one script (PostgreSQL "
       "runs those as one implicit transaction)",
       "CREATE INDEX CONCURRENTLY orders_placed_at ON orders (placed_at);",
       "run it alone in its own step with pg.exec {transaction: false}"},
      {"transaction-control", kError,
       "BEGIN / COMMIT / ROLLBACK in a migration that runs in one transaction: a COMMIT "
       "half-way makes it no longer all-or-nothing (savepoints are fine)",
       "COMMIT;", "leave the transaction to the step (transaction: true)"},
      {"do-block", kWarning,
       "a DO block or a CALL: the statements they run are not linted (nor are function "
       "bodies, which run when called)",
       "DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'streams'; END $$;",
       "write the DDL as plain statements"},
      {"ignore-without-reason", kError,
       "a `-- runbook:ignore` comment without a reason, or naming no known rule",
       "-- runbook:ignore create-index-blocking\nCREATE INDEX i ON orders (a);",
       "-- runbook:ignore create-index-blocking the table is empty until release 42"},
  };
  return rules;
}

namespace {

const LintRule* FindRule(const std::string& id) {
  for (const auto& r : LintRules()) {
    if (id == r.id) return &r;
  }
  return nullptr;
}

// Line starts of a text, for 1-based line and column (in characters) of a
// byte offset without rescanning from the start each time.
class LineIndex {
 public:
  explicit LineIndex(const std::string& text) : text_(text) {
    starts_.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') starts_.push_back(i + 1);
    }
  }
  int Line(size_t offset) const {
    return static_cast<int>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                            starts_.begin());
  }
  void At(size_t offset, int* line, int* col) const {
    *line = Line(offset);
    *col = 1;
    for (size_t i = starts_[*line - 1]; i < offset && i < text_.size(); ++i) {
      if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++*col;
    }
  }

 private:
  const std::string& text_;
  std::vector<size_t> starts_;
};

// The byte offset of the 1-based character `n` of `text` (libpg_query's
// cursorpos counts characters; the text is valid UTF-8 by then).
size_t ByteOfChar(const std::string& text, size_t from, int n) {
  size_t i = from;
  for (int seen = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && ++seen == n) return i;
  }
  return text.size();
}

// The offset of the first byte that is not part of valid UTF-8, or npos.
size_t InvalidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || (n == 2 && c < 0xC2) || i + n > s.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return i;
    }
    if (n == 3) {
      unsigned char d = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d >= 0xA0)) return i;
    } else if (n == 4) {
      unsigned char d = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xF0 && d < 0x90) || (c == 0xF4 && d >= 0x90) || c > 0xF4) return i;
    }
    i += n;
  }
  return std::string::npos;
}

// Skips white space and comments (nested /* */ as PostgreSQL does).
size_t SkipBlank(const std::string& s, size_t i, size_t end) {
  while (i < end) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) {
      ++i;
    } else if (s.compare(i, 2, "--") == 0) {
      while (i < end && s[i] != '\n') ++i;
    } else if (s.compare(i, 2, "/*") == 0) {
      int depth = 0;
      do {
        if (s.compare(i, 2, "/*") == 0) {
          ++depth;
          i += 2;
        } else if (s.compare(i, 2, "*/") == 0) {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      } while (i < end && depth > 0);
    } else {
      break;
    }
  }
  return i;
}

// The `--` comments of a script that are comments (not inside a string, a
// quoted identifier, a dollar-quoted body or a block comment): offsets of
// their first character after "--" and of their end of line.
std::vector<std::pair<size_t, size_t>> LineComments(const std::string& s) {
  std::vector<std::pair<size_t, size_t>> out;
  auto ident = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           (static_cast<unsigned char>(c) & 0x80);
  };
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (s.compare(i, 2, "--") == 0) {
      size_t eol = s.find('\n', i);
      if (eol == std::string::npos) eol = s.size();
      out.push_back({i + 2, eol});
      i = eol;
    } else if (s.compare(i, 2, "/*") == 0) {
      i = SkipBlank(s, i, s.size());
    } else if (c == '\'' || c == '"') {
      bool escapes =
          c == '\'' && i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') && (i < 2 || !ident(s[i - 2]));
      for (++i; i < s.size(); ++i) {
        if (escapes && s[i] == '\\') {
          ++i;
        } else if (s[i] == c) {
          if (i + 1 < s.size() && s[i + 1] == c) {
            ++i;
          } else {
            break;
          }
        }
      }
      ++i;
    } else if (c == '$' && (i == 0 || !ident(s[i - 1]))) {
      size_t close = i + 1;
      while (close < s.size() && ident(s[close]) &&
             !std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        ++close;
      }
      if (close < s.size() && s[close] == '$') {
        std::string tag = s.substr(i, close - i + 1);
        size_t end = s.find(tag, close + 1);
        i = end == std::string::npos ? s.size() : end + tag.size();
      } else {
        ++i;
      }
    } else {
      ++i;
    }
  }
  return out;
}

// "runbook:ignore RULE[, RULE] reason" (the text after "--"), or nullopt
// when the comment is not one.
std::optional<LintIgnoreComment> ParseIgnore(const std::string& s, size_t i, size_t eol) {
  static const std::string kTag = "runbook:ignore";
  while (i < eol && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (s.compare(i, kTag.size(), kTag) != 0) return std::nullopt;
  i += kTag.size();
  if (i < eol && !std::isspace(static_cast<unsigned char>(s[i]))) return std::nullopt;
  auto blanks = [&] {
    while (i < eol && (s[i] == ' ' || s[i] == '\t')) ++i;
  };
  auto word = [&](size_t at) {
    size_t end = at;
    while (end < eol && (std::islower(static_cast<unsigned char>(s[end])) || s[end] == '-')) ++end;
    return s.substr(at, end - at);
  };
  LintIgnoreComment ig;
  blanks();
  std::string rule = word(i);
  if (rule.empty()) {
    ig.problem = "names no rule";
    return ig;
  }
  while (true) {
    i += rule.size();
    if (!FindRule(rule)) {
      std::vector<std::string> ids;
      for (const auto& r : LintRules()) ids.push_back(r.id);
      std::string near = Suggest(rule, ids);
      ig.problem = "names an unknown rule '" + rule + "'" +
                   (near.empty() ? "" : " (did you mean '" + near + "'?)");
    }
    ig.rules.push_back(rule);
    blanks();
    if (i >= eol || s[i] != ',') break;
    // After a comma: another rule if the next word is one, else the reason.
    size_t after = i + 1;
    while (after < eol && (s[after] == ' ' || s[after] == '\t')) ++after;
    std::string next = word(after);
    if (!FindRule(next)) {
      ++i;
      break;
    }
    i = after;
    rule = next;
  }
  while (i < eol &&
         (s[i] == ':' || s[i] == '-' || std::isspace(static_cast<unsigned char>(s[i])))) {
    ++i;
  }
  ig.reason = s.substr(i, eol - i);
  while (!ig.reason.empty() && std::isspace(static_cast<unsigned char>(ig.reason.back()))) {
    ig.reason.pop_back();
  }
  if (ig.problem.empty() && ig.reason.empty()) ig.problem = "gives no reason";
  return ig;
}

// A parser message without the input it quotes ("at or near" a word could be
// a password of a CREATE ROLE): only punctuation is kept.
std::string SafeParserMessage(const std::string& message) {
  size_t near = message.find(" at or near \"");
  if (near == std::string::npos) return message;
  std::string token = message.substr(near + 13);
  if (!token.empty() && token.back() == '"') token.pop_back();
  bool punctuation = token.size() <= 3 && std::none_of(token.begin(), token.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) ||
                              (static_cast<unsigned char>(c) & 0x80) || c == '\'' || c == '$';
                     });
  return punctuation ? message : message.substr(0, near);
}

std::string Str(const Value& v, const char* key) {
  if (!v.is_object()) return "";
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : "";
}

bool Flag(const Value& v, const char* key) {
  if (!v.is_object()) return false;
  auto it = v.find(key);
  return it != v.end() && it->is_boolean() && it->get<bool>();
}

const Value& Get(const Value& v, const char* key) {
  static const Value null;
  if (!v.is_object()) return null;
  auto it = v.find(key);
  return it == v.end() ? null : *it;
}

// An option's value as text: a string, a number or a boolean ("" when it
// has none: DEFAULT).
std::string OptionText(const Value& arg) {
  if (const Value& str = Get(arg, "String"); str.is_object()) {
    return Str(str, "sval").empty() ? Str(str, "str") : Str(str, "sval");
  }
  if (const Value& i = Get(arg, "Integer"); i.is_object()) {
    const Value& n = Get(i, "ival");
    return n.is_number_integer() ? std::to_string(n.get<int64_t>()) : "0";  // 0 is left out
  }
  if (const Value& f = Get(arg, "Float"); f.is_object()) {
    return Str(f, "fval").empty() ? Str(f, "str") : Str(f, "fval");
  }
  if (const Value& b = Get(arg, "Boolean"); b.is_object())
    return Flag(b, "boolval") ? "true" : "false";
  return "";
}

// The strings of a list of {"String": {"sval": ...}} nodes.
std::vector<std::string> Strings(const Value& list) {
  std::vector<std::string> out;
  if (!list.is_array()) return out;
  for (const auto& n : list) out.push_back(Str(Get(n, "String"), "sval"));
  return out;
}

std::string RangeVarKey(const Value& rv, const std::string& default_schema) {
  return LintTableKey(Str(rv, "schemaname"), Str(rv, "relname"), default_schema);
}

std::string ListKey(const std::vector<std::string>& parts, const std::string& default_schema) {
  if (parts.empty()) return "";
  if (parts.size() == 1) return LintTableKey("", parts[0], default_schema);
  return LintTableKey(parts[parts.size() - 2], parts.back(), default_schema);
}

// Calls every FuncCall in `node` (recursively) with its lower-case name.
template <typename F>
void ForEachFuncCall(const Value& node, F&& f) {
  if (node.is_object()) {
    auto it = node.find("FuncCall");
    if (it != node.end()) {
      std::vector<std::string> name = Strings(Get(*it, "funcname"));
      if (!name.empty()) f(name.back());
    }
    for (const auto& [k, v] : node.items()) ForEachFuncCall(v, f);
  } else if (node.is_array()) {
    for (const auto& v : node) ForEachFuncCall(v, f);
  }
}

// Tables and functions each statement names, for the catalog lookup.
void CollectNames(const Value& node, const std::string& default_schema, ParsedMigration* out) {
  if (node.is_object()) {
    for (const auto& [k, v] : node.items()) {
      if ((k == "relation" || k == "pktable" || k == "name") && v.is_object() &&
          v.contains("relname")) {
        std::string schema = Str(v, "schemaname");
        out->tables[RangeVarKey(v, default_schema)] = {schema.empty() ? default_schema : schema,
                                                       Str(v, "relname")};
      } else if (k == "ColumnDef") {
        std::vector<std::string> type = Strings(Get(Get(v, "typeName"), "names"));
        if (!type.empty()) out->types.insert(type.back());
        for (const auto& c : Get(v, "constraints")) {
          ForEachFuncCall(Get(Get(c, "Constraint"), "raw_expr"),
                          [&](const std::string& f) { out->functions.insert(f); });
        }
      }
      CollectNames(v, default_schema, out);
    }
  } else if (node.is_array()) {
    for (const auto& v : node) CollectNames(v, default_schema, out);
  }
}

// One source split into statements, each parsed alone when the whole does
// not parse, so one bad statement hides none of the others.
class SourceParser {
 public:
  SourceParser(const LintSource& src, const std::string& default_schema, ParsedMigration* out)
      : src_(src),
        sql_(src.sql),
        lines_(sql_),
        schema_(default_schema),
        default_schema_(default_schema),
        out_(out) {}

  void Run() {
    size_t first_out = out_->statements.size();
    if (size_t bad = InvalidUtf8(sql_); bad != std::string::npos) {
      char hex[8];
      snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(sql_[bad]));
      Error(bad, std::string("not valid UTF-8 (byte ") + hex +
                     "): the file is not linted; save it as UTF-8");
      return;
    }
    if (size_t nul = sql_.find('\0'); nul != std::string::npos) {
      Error(nul, "a NUL byte: what follows it is not linted, and would not run");
      sql_.resize(nul);
    }
    PgQueryParseResult whole = pg_query_parse(sql_.c_str());
    if (!whole.error) {
      Value tree = Value::parse(whole.parse_tree, nullptr, false);
      pg_query_free_parse_result(whole);
      if (tree.is_discarded()) {
        Error(0, "the parser's output could not be read: the file is not linted");
        return;
      }
      for (const auto& raw : Get(tree, "stmts")) {
        size_t begin =
            Get(raw, "stmt_location").is_number() ? Get(raw, "stmt_location").get<size_t>() : 0;
        size_t len = Get(raw, "stmt_len").is_number() ? Get(raw, "stmt_len").get<size_t>() : 0;
        Add(begin, len == 0 ? sql_.size() : std::min(sql_.size(), begin + len), Get(raw, "stmt"));
      }
    } else {
      pg_query_free_parse_result(whole);
      Fallback();
    }
    AssignIgnores(first_out);
    int n = static_cast<int>(out_->statements.size() - first_out);
    for (size_t i = first_out; i < out_->statements.size(); ++i) out_->statements[i].in_source = n;
  }

 private:
  // The scanner splits; each piece is parsed alone. Text between pieces
  // that is not blank (a statement with no keyword, which the scanner
  // drops) is an error too. A scanner error (an unterminated quote) ends
  // the splitting there: the rest of the file is one error.
  void Fallback() {
    size_t limit = sql_.size();
    std::string scanner_error;
    PgQuerySplitResult split = pg_query_split_with_scanner(sql_.c_str());
    if (split.error) {
      limit = ByteOfChar(sql_, 0, split.error->cursorpos);
      scanner_error = SafeParserMessage(split.error->message);
      pg_query_free_split_result(split);
      std::string prefix = sql_.substr(0, limit);
      split = pg_query_split_with_scanner(prefix.c_str());
    }
    std::vector<std::pair<size_t, size_t>> pieces;
    if (!split.error) {
      for (int i = 0; i < split.n_stmts; ++i) {
        size_t begin = static_cast<size_t>(split.stmts[i]->stmt_location);
        size_t len = static_cast<size_t>(split.stmts[i]->stmt_len);
        pieces.push_back({begin, len == 0 ? limit : std::min(limit, begin + len)});
      }
    }
    pg_query_free_split_result(split);
    // With a scanner error, only the pieces a ';' ends before it are whole.
    size_t done = 0;  // where the text not yet covered begins
    for (const auto& [begin, end] : pieces) {
      size_t stop = end;
      bool terminated = stop < limit && sql_[stop] == ';';
      if (!scanner_error.empty() && !terminated) break;
      if (size_t gap = SkipBlankAndSemicolons(done, begin); gap < begin) {
        Error(gap, "not a statement PostgreSQL knows (no keyword it starts with)", false);
      }
      ParsePiece(begin, terminated ? stop + 1 : stop);
      done = terminated ? stop + 1 : stop;
    }
    if (!scanner_error.empty()) {
      size_t at = SkipBlankAndSemicolons(done, limit);
      Error(limit, scanner_error + ": the statement at " + Where(at) +
                       " and the rest of the file are not linted");
      out_->statements.back().text = sql_.substr(at);
      return;
    }
    if (size_t gap = SkipBlankAndSemicolons(done, sql_.size()); gap < sql_.size()) {
      Error(gap, "not a statement PostgreSQL knows (no keyword it starts with)", false);
    }
  }

  size_t SkipBlankAndSemicolons(size_t i, size_t end) const {
    while (true) {
      i = SkipBlank(sql_, i, end);
      if (i < end && sql_[i] == ';') {
        ++i;
      } else {
        return i;
      }
    }
  }

  std::string Where(size_t at) const {
    int line, col;
    lines_.At(at, &line, &col);
    return std::to_string(line) + ":" + std::to_string(col);
  }

  void ParsePiece(size_t begin, size_t end) {
    std::string piece = sql_.substr(begin, end - begin);
    PgQueryParseResult one = pg_query_parse(piece.c_str());
    if (one.error) {
      Error(ByteOfChar(sql_, begin, one.error->cursorpos), SafeParserMessage(one.error->message),
            false, begin, end);
    } else {
      Value tree = Value::parse(one.parse_tree, nullptr, false);
      for (const auto& raw : Get(tree, "stmts")) Add(begin, end, Get(raw, "stmt"));
    }
    pg_query_free_parse_result(one);
  }

  void Add(size_t begin, size_t end, const Value& stmt) {
    size_t first = SkipBlank(sql_, begin, end);
    if (first >= end) return;
    LintStatement st;
    st.file = src_.name;
    lines_.At(first, &st.line, &st.col);
    st.text = sql_.substr(first, end - first);
    st.tree = stmt.dump();
    TrackSearchPath(stmt);
    st.schema = schema_;
    CollectNames(stmt, schema_, out_);
    Push(std::move(st), first, end);
  }

  // `whole_rest`: the error covers the rest of the file (not ignorable).
  void Error(size_t at, const std::string& message, bool whole_rest = true,
             size_t begin = std::string::npos, size_t end = std::string::npos) {
    LintStatement st;
    st.file = src_.name;
    lines_.At(at, &st.line, &st.col);
    st.syntax_error = message;
    st.whole_rest = whole_rest;
    st.schema = schema_;
    if (begin == std::string::npos) begin = end = at;
    size_t first = SkipBlank(sql_, begin, end);
    st.text = sql_.substr(first, end - first);
    Push(std::move(st), std::min(first, at), std::max(end, at + 1));
  }

  void Push(LintStatement st, size_t first, size_t end) {
    // Where a statement ends: past its ';'.
    size_t semi = SkipBlank(sql_, end, sql_.size());
    spans_.push_back({first, semi < sql_.size() && sql_[semi] == ';' ? semi + 1 : end});
    out_->statements.push_back(std::move(st));
  }

  void TrackSearchPath(const Value& stmt) {
    const Value& set = Get(stmt, "VariableSetStmt");
    if (!set.is_object() || Str(set, "name") != "search_path") return;
    std::string kind = Str(set, "kind");
    if (kind == "VAR_RESET" || kind == "VAR_SET_DEFAULT" || kind == "VAR_RESET_ALL") {
      schema_ = default_schema_;
      return;
    }
    for (const auto& a : Get(set, "args")) {
      std::string name = Str(Get(Get(a, "A_Const"), "sval"), "sval");
      if (!name.empty() && name[0] != '$') {
        schema_ = name;
        return;
      }
    }
  }

  // Each ignore comment goes to the statement it is inside of, at the end of
  // the line of, or else in front of.
  void AssignIgnores(size_t first_out) {
    for (const auto& [at, eol] : LineComments(sql_)) {
      std::optional<LintIgnoreComment> ig = ParseIgnore(sql_, at, eol);
      if (!ig) continue;
      size_t k = spans_.size();  // the last statement that begins before it
      for (size_t i = 0; i < spans_.size() && spans_[i].first <= at; ++i) k = i;
      size_t to = spans_.size();
      if (k < spans_.size() &&
          (at < spans_[k].second || lines_.Line(at) == lines_.Line(spans_[k].second - 1))) {
        to = k;
      } else {
        to = k < spans_.size() ? k + 1 : 0;
      }
      if (to >= spans_.size()) {
        // After the last statement: it ignores nothing; say so if it is
        // also malformed, else leave it.
        continue;
      }
      out_->statements[first_out + to].ignores.push_back(std::move(*ig));
    }
  }

  const LintSource& src_;
  std::string sql_;
  LineIndex lines_;
  std::string schema_;
  const std::string default_schema_;
  ParsedMigration* out_;
  std::vector<std::pair<size_t, size_t>> spans_;  // per statement: first token, end
};

}  // namespace

std::string LintTableKey(const std::string& schema, const std::string& name,
                         const std::string& default_schema) {
  return (schema.empty() ? default_schema : schema) + "." + name;
}

ParsedMigration ParseMigration(const std::vector<LintSource>& sources,
                               const std::string& default_schema) {
  ParsedMigration out;
  for (const auto& src : sources) SourceParser(src, default_schema, &out).Run();
  return out;
}

namespace {

std::string OneLine(const std::string& text, size_t max_chars) {
  std::string out;
  bool space = false;
  for (size_t i = SkipBlank(text, 0, text.size()); i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += static_cast<char>(c);
  }
  while (!out.empty() && (out.back() == ';' || out.back() == ' ')) out.pop_back();
  if (out.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "...";
  }
  return out;
}

std::string HumanBytes(int64_t n) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// (precision, scale) of "numeric(p,s)"; (-1, -1) for unconstrained numeric.
std::pair<int64_t, int64_t> NumericMods(const std::string& type) {
  size_t open = type.find('(');
  if (open == std::string::npos) return {-1, -1};
  size_t comma = type.find(',', open);
  return {std::stoll(type.substr(open + 1)),
          comma == std::string::npos ? 0 : std::stoll(type.substr(comma + 1))};
}

// The type changes PostgreSQL makes without rewriting the table or
// checking its rows: varchar(n) -> varchar(m >= n) / varchar / text,
// text -> varchar, numeric(p,s) -> numeric(q >= p, s) / numeric.
bool WideningWithoutRewrite(const std::string& old_type, const Value& column_def) {
  const Value& type_name = Get(column_def, "typeName");
  std::vector<std::string> names = Strings(Get(type_name, "names"));
  if (names.empty() || !Get(type_name, "arrayBounds").is_null() ||
      !Get(column_def, "collClause").is_null() || !Get(column_def, "raw_default").is_null() ||
      old_type.find('[') != std::string::npos) {
    return false;
  }
  const std::string& to = names.back();
  std::vector<int64_t> mods;
  for (const auto& m : Get(type_name, "typmods")) {
    const Value& ival = Get(Get(Get(m, "A_Const"), "ival"), "ival");
    if (!ival.is_number()) return false;
    mods.push_back(ival.get<int64_t>());
  }
  bool from_varchar = old_type.rfind("character varying", 0) == 0;
  bool from_text = old_type == "text";
  if (to == "text") return (from_varchar || from_text) && mods.empty();
  if (to == "varchar") {
    if (mods.empty()) return from_varchar || from_text;
    if (!from_varchar || mods.size() != 1) return false;
    size_t open = old_type.find('(');
    if (open == std::string::npos) return false;  // unbounded to bounded: checks rows
    return mods[0] >= std::stoll(old_type.substr(open + 1));
  }
  if (to == "numeric" && old_type.rfind("numeric", 0) == 0) {
    if (mods.empty()) return true;
    auto [p, s] = NumericMods(old_type);
    if (p < 0) return false;  // unconstrained to constrained: checks rows
    return (mods.size() == 1 ? 0 : mods[1]) == s && mods[0] >= p;
  }
  return false;
}

class Linter {
 public:
  Linter(const LintFacts& facts, const LintOptions& options) : facts_(facts), opt_(options) {}

  std::vector<LintFinding> Run(const ParsedMigration& m) {
    for (const auto& st : m.statements) {
      st_ = &st;
      size_t first = findings_.size();
      if (!st.syntax_error.empty()) {
        Report("syntax", kError, "", st.syntax_error);
      } else {
        Value tree = Value::parse(st.tree, nullptr, false);
        if (tree.is_object() && !tree.empty()) Statement(tree.begin().key(), tree.begin().value());
      }
      ApplyIgnores(first);
    }
    return std::move(findings_);
  }

 private:
  std::string Key(const Value& rv) const { return RangeVarKey(rv, st_->schema); }

  const LintTableFacts* Facts(const std::string& table) const {
    auto it = facts_.tables.find(table);
    return it == facts_.tables.end() ? nullptr : &it->second;
  }

  void Report(const std::string& rule, const std::string& severity, const std::string& table,
              const std::string& message) {
    LintFinding f;
    f.rule = rule;
    f.severity = severity;
    f.file = st_->file;
    f.line = st_->line;
    f.col = st_->col;
    f.table = table;
    f.message = message;
    // The statement only where a table is at stake: other statements (a DO
    // block, CREATE SUBSCRIPTION's conninfo) may carry a password.
    if (!table.empty()) f.statement = OneLine(st_->text, 160);
    findings_.push_back(std::move(f));
  }

  // A rule about a lock or a rewrite: nothing on a table this migration
  // created, a warning on a small one, an error otherwise.
  void LockHazard(const std::string& rule, const std::string& table, const std::string& what) {
    if (created_.count(table)) return;
    const LintTableFacts* t = Facts(table);
    std::string size;
    std::string severity = kError;
    if (!facts_.connected) {
      size = "its size is unknown (no connection)";
    } else if (!t || !t->exists) {
      size = "it does not exist in the database now";
    } else {
      size = "it is " + HumanBytes(t->bytes);
      if (t->bytes <= opt_.small_table) {
        severity = kWarning;
        size += ", small enough that the lock is short";
      }
    }
    Report(rule, severity, table, what + " on " + table + " (" + size + ")");
  }

  void InUse(const std::string& rule, const std::string& table, const std::string& column,
             const std::string& what) {
    auto it = opt_.uses.find(table);
    // A table listed without columns: the application reads all of them.
    bool used = it != opt_.uses.end() &&
                (column.empty() || it->second.empty() || it->second.count(column) > 0);
    if (used) {
      Report(rule + "-in-use", kError, table,
             what + ": the running application reads " +
                 (column.empty() ? table : table + "." + column));
    } else {
      Report(rule, kWarning, table, what);
    }
  }

  // DROP / RENAME SCHEMA: each table of it the application reads.
  void SchemaInUse(const std::string& rule, const std::string& schema, const std::string& what) {
    bool any = false;
    for (const auto& [table, columns] : opt_.uses) {
      if (table.compare(0, schema.size() + 1, schema + ".") != 0) continue;
      any = true;
      Report(rule + "-in-use", kError, table, what + ": the running application reads " + table);
    }
    if (!any) Report(rule, kWarning, "", what);
  }

  void NotInTransaction(const std::string& what) {
    if (opt_.transaction) {
      Report("not-in-transaction", kError, "",
             what + " cannot run inside a transaction block, and this migration runs in one");
    } else if (st_->in_source > 1) {
      Report("not-in-transaction", kError, "",
             what +
                 " cannot run inside a transaction block, and PostgreSQL runs a script of "
                 "several statements sent at once as one: give it a step of its own");
    }
  }

  void Statement(const std::string& type, const Value& s) {
    // IF NOT EXISTS may find the table there already: not created here.
    if (type == "CreateStmt") {
      if (!Flag(s, "if_not_exists")) created_.insert(Key(Get(s, "relation")));
    } else if (type == "CreateTableAsStmt") {
      if (!Flag(s, "if_not_exists")) created_.insert(Key(Get(Get(s, "into"), "rel")));
    } else if (type == "AlterTableStmt") {
      std::string table = Key(Get(s, "relation"));
      for (const auto& c : Get(s, "cmds")) AlterTable(table, Get(c, "AlterTableCmd"));
    } else if (type == "RenameStmt") {
      Rename(s);
    } else if (type == "AlterObjectSchemaStmt") {
      const std::string kind = Str(s, "objectType");
      if (kind == "OBJECT_TABLE" || kind == "OBJECT_VIEW" || kind == "OBJECT_MATVIEW" ||
          kind == "OBJECT_FOREIGN_TABLE") {
        std::string table = Key(Get(s, "relation"));
        InUse("rename-table", table, "",
              "SET SCHEMA moves " + table + " to schema " + Str(s, "newschema"));
      }
    } else if (type == "DropStmt") {
      Drop(s);
    } else if (type == "IndexStmt") {
      std::string table = Key(Get(s, "relation"));
      if (!Flag(Get(s, "relation"), "inh")) return;  // ON ONLY a partitioned table: builds nothing
      if (Flag(s, "concurrent")) {
        NotInTransaction("CREATE INDEX CONCURRENTLY");
      } else {
        LockHazard("create-index-blocking", table,
                   "CREATE INDEX without CONCURRENTLY blocks writes for the whole build");
      }
    } else if (type == "ReindexStmt") {
      Reindex(s);
    } else if (type == "VacuumStmt") {
      if (!Flag(s, "is_vacuumcmd")) return;  // ANALYZE
      bool full = false;
      for (const auto& o : Get(s, "options")) {
        if (Str(Get(o, "DefElem"), "defname") == "full") full = DefElemTrue(Get(o, "DefElem"));
      }
      NotInTransaction("VACUUM");
      if (full) {
        for (const auto& r : Get(s, "rels")) {
          LockHazard("vacuum-full", Key(Get(Get(r, "VacuumRelation"), "relation")),
                     "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock");
        }
        if (Get(s, "rels").is_null())
          Report("vacuum-full", kError, "", "VACUUM FULL of every table");
      }
    } else if (type == "ClusterStmt") {
      if (Get(s, "relation").is_null()) {
        NotInTransaction("CLUSTER of every clustered table");
        Report("cluster", kError, "", "CLUSTER of every clustered table");
      } else {
        LockHazard("cluster", Key(Get(s, "relation")),
                   "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock");
      }
    } else if (type == "RefreshMatViewStmt") {
      if (!Flag(s, "concurrent")) {
        std::string view = Key(Get(s, "relation"));
        Report("refresh-blocking", kWarning, view,
               "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of " + view +
                   " until it ends");
      }
    } else if (type == "LockStmt") {
      for (const auto& r : Get(s, "relations")) {
        std::string table = Key(Get(r, "RangeVar"));
        Report("lock-table", kWarning, table, "explicit LOCK TABLE " + table);
      }
    } else if (type == "TruncateStmt") {
      for (const auto& r : Get(s, "relations")) {
        std::string table = Key(Get(r, "RangeVar"));
        Report("truncate", kWarning, table, "TRUNCATE removes every row of " + table);
      }
    } else if (type == "TransactionStmt") {
      const std::string kind = Str(s, "kind");
      bool savepoint = kind == "TRANS_STMT_SAVEPOINT" || kind == "TRANS_STMT_RELEASE" ||
                       kind == "TRANS_STMT_ROLLBACK_TO";
      if (opt_.transaction && !savepoint) {
        Report("transaction-control", kError, "",
               "transaction control in a migration that runs in one transaction: the step's "
               "transaction would end half-way");
      }
    } else if (type == "CreatedbStmt" || type == "DropdbStmt") {
      NotInTransaction(type == "CreatedbStmt" ? "CREATE DATABASE" : "DROP DATABASE");
    } else if (type == "CreateTableSpaceStmt" || type == "DropTableSpaceStmt") {
      NotInTransaction("CREATE/DROP TABLESPACE");
    } else if (type == "AlterSystemStmt") {
      NotInTransaction("ALTER SYSTEM");
    } else if (type == "AlterDatabaseStmt") {
      for (const auto& o : Get(s, "options")) {
        if (Str(Get(o, "DefElem"), "defname") == "tablespace") {
          NotInTransaction("ALTER DATABASE ... SET TABLESPACE");
        }
      }
    } else if (type == "CreateSubscriptionStmt" || type == "DropSubscriptionStmt") {
      NotInTransaction(type == "CreateSubscriptionStmt" ? "CREATE SUBSCRIPTION (with its slot)"
                                                        : "DROP SUBSCRIPTION (with its slot)");
    } else if (type == "AlterDomainStmt") {
      const Value& k = Get(Get(s, "def"), "Constraint");
      std::vector<std::string> name = Strings(Get(s, "typeName"));
      if (Str(s, "subtype") == "C" && Str(k, "contype") == "CONSTR_CHECK" &&
          !Flag(k, "skip_validation") && !name.empty()) {
        Report("constraint-without-not-valid", kError, "",
               "ALTER DOMAIN " + name.back() +
                   " ADD CONSTRAINT without NOT VALID checks every column of that type in "
                   "every table, under locks that block writes");
      }
    } else if (type == "DoStmt") {
      Report("do-block", kWarning, "", "the statements inside a DO block are not linted");
    } else if (type == "CallStmt") {
      Report("do-block", kWarning, "", "the statements a procedure runs (CALL) are not linted");
    }
  }

  void AlterTable(const std::string& table, const Value& cmd) {
    const std::string sub = Str(cmd, "subtype");
    const std::string column = Str(cmd, "name");
    const LintTableFacts* facts = Facts(table);
    if (sub == "AT_AddColumn") {
      AddColumn(table, Get(Get(cmd, "def"), "ColumnDef"));
    } else if (sub == "AT_SetNotNull") {
      if (facts && facts->not_null_checked.count(column)) return;
      LockHazard("set-not-null", table,
                 "SET NOT NULL of " + column +
                     " scans every row under an ACCESS EXCLUSIVE lock (no validated CHECK (" +
                     column + " IS NOT NULL) proves it)");
    } else if (sub == "AT_AlterColumnType") {
      const Value& def = Get(Get(cmd, "def"), "ColumnDef");
      if (facts) {
        auto it = facts->column_types.find(column);
        if (it != facts->column_types.end() && WideningWithoutRewrite(it->second, def)) return;
      }
      LockHazard("alter-column-type", table,
                 "ALTER COLUMN " + column +
                     " TYPE rewrites the table and its indexes under an ACCESS EXCLUSIVE lock");
    } else if (sub == "AT_SetLogged" || sub == "AT_SetUnLogged" || sub == "AT_SetTableSpace" ||
               sub == "AT_SetAccessMethod") {
      LockHazard("rewrite-table", table, "this ALTER TABLE rewrites the table");
    } else if (sub == "AT_AddConstraint") {
      AddConstraint(table, Get(Get(cmd, "def"), "Constraint"));
    } else if (sub == "AT_AttachPartition") {
      std::string part = Key(Get(Get(Get(cmd, "def"), "PartitionCmd"), "name"));
      LockHazard("attach-partition", part,
                 "ATTACH PARTITION " + part + " to " + table +
                     " scans it under an ACCESS EXCLUSIVE lock to prove its bound (unless a "
                     "validated CHECK constraint implies it), and scans a default partition");
    } else if (sub == "AT_DetachPartition") {
      if (Flag(Get(Get(cmd, "def"), "PartitionCmd"), "concurrent")) {
        NotInTransaction("DETACH PARTITION CONCURRENTLY");
      } else {
        Report("detach-partition-blocking", kWarning, table,
               "DETACH PARTITION without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on " + table);
      }
    } else if (sub == "AT_DropColumn") {
      InUse("drop-column", table, column,
            "DROP COLUMN " + table + "." + column + " destroys its data");
    }
  }

  void AddColumn(const std::string& table, const Value& def) {
    const std::string column = Str(def, "colname");
    std::vector<std::string> type = Strings(Get(Get(def, "typeName"), "names"));
    bool has_default = false, not_null = false;
    std::string rewrite;
    if (!type.empty() && facts_.constrained_domains.count(type.back())) {
      rewrite = "its type, the domain " + type.back() + ", has a CHECK constraint";
    }
    if (!type.empty() &&
        (type.back() == "serial" || type.back() == "bigserial" || type.back() == "smallserial" ||
         type.back() == "serial2" || type.back() == "serial4" || type.back() == "serial8")) {
      rewrite = "a " + type.back() + " column fills every row from its sequence";
      has_default = true;
    }
    for (const auto& c : Get(def, "constraints")) {
      const Value& k = Get(c, "Constraint");
      const std::string contype = Str(k, "contype");
      if (contype == "CONSTR_DEFAULT") {
        has_default = true;
        ForEachFuncCall(Get(k, "raw_expr"), [&](const std::string& f) {
          if (!rewrite.empty()) return;
          auto it = facts_.volatile_functions.find(f);
          if (it != facts_.volatile_functions.end() ? it->second : IsVolatileOffline(f)) {
            rewrite = "DEFAULT " + f + "() is volatile: each row gets its own value";
          }
        });
      } else if (contype == "CONSTR_GENERATED") {
        rewrite = "GENERATED ... STORED computes every row";
        has_default = true;
      } else if (contype == "CONSTR_IDENTITY") {
        rewrite = "an identity column fills every row from its sequence";
        has_default = true;
      } else if (contype == "CONSTR_NOTNULL") {
        not_null = true;
      } else if (contype == "CONSTR_FOREIGN" || contype == "CONSTR_CHECK") {
        LockHazard("constraint-without-not-valid", table,
                   "ADD COLUMN " + column + " with an inline " +
                       (contype == "CONSTR_FOREIGN" ? "REFERENCES" : "CHECK") +
                       " checks every row while blocking writes (it cannot be NOT VALID)");
      } else if (contype == "CONSTR_PRIMARY" || contype == "CONSTR_UNIQUE") {
        LockHazard("add-unique-without-index", table,
                   "ADD COLUMN " + column +
                       " with PRIMARY KEY/UNIQUE builds an index under an "
                       "ACCESS EXCLUSIVE lock");
      }
    }
    if (!rewrite.empty()) {
      LockHazard("add-column-rewrite", table,
                 "ADD COLUMN " + column +
                     " rewrites the table under an ACCESS EXCLUSIVE lock: " + rewrite);
    }
    if (not_null && !has_default && !created_.count(table)) {
      const LintTableFacts* t = Facts(table);
      if (t && t->exists && t->heap_bytes == 0) return;  // empty table
      Report("add-column-not-null", kError, table,
             "ADD COLUMN " + column + " NOT NULL without a DEFAULT fails on " + table +
                 (t && t->exists ? ", which has rows" : " if it has rows"));
    }
  }

  // Without a connection, the volatile functions a default usually calls.
  static bool IsVolatileOffline(const std::string& f) {
    static const std::set<std::string> known = {
        "random",       "clock_timestamp",  "timeofday",          "gen_random_uuid",
        "nextval",      "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
        "txid_current", "setseed",          "gen_random_bytes",   "random_normal"};
    return known.count(f) > 0;
  }

  void AddConstraint(const std::string& table, const Value& k) {
    const std::string contype = Str(k, "contype");
    const std::string name = Str(k, "conname");
    const std::string label = name.empty() ? "" : " " + name;
    if ((contype == "CONSTR_FOREIGN" || contype == "CONSTR_CHECK") && !Flag(k, "skip_validation")) {
      std::string what = contype == "CONSTR_FOREIGN" ? "FOREIGN KEY" : "CHECK";
      LockHazard("constraint-without-not-valid", table,
                 "ADD CONSTRAINT" + label + " " + what +
                     " without NOT VALID checks every row while blocking writes");
    } else if ((contype == "CONSTR_PRIMARY" || contype == "CONSTR_UNIQUE" ||
                contype == "CONSTR_EXCLUSION") &&
               Str(k, "indexname").empty()) {
      LockHazard("add-unique-without-index", table,
                 "ADD CONSTRAINT" + label +
                     " builds its index under an ACCESS EXCLUSIVE lock (no USING INDEX)");
    }
  }

  void Rename(const Value& s) {
    const std::string type = Str(s, "renameType");
    const std::string table = Key(Get(s, "relation"));
    if (type == "OBJECT_COLUMN") {
      InUse("rename-column", table, Str(s, "subname"),
            "RENAME COLUMN " + table + "." + Str(s, "subname") + " TO " + Str(s, "newname"));
    } else if (type == "OBJECT_TABLE" || type == "OBJECT_VIEW" || type == "OBJECT_MATVIEW" ||
               type == "OBJECT_FOREIGN_TABLE") {
      InUse("rename-table", table, "", "RENAME " + table + " TO " + Str(s, "newname"));
    } else if (type == "OBJECT_SCHEMA") {
      SchemaInUse("rename-table", Str(s, "subname"),
                  "RENAME SCHEMA " + Str(s, "subname") + " TO " + Str(s, "newname") +
                      " renames every table in it");
    }
  }

  void Drop(const Value& s) {
    const std::string type = Str(s, "removeType");
    if (type == "OBJECT_INDEX") {
      if (Flag(s, "concurrent")) {
        NotInTransaction("DROP INDEX CONCURRENTLY");
      } else {
        for (const auto& o : Get(s, "objects")) {
          std::string index = ListKey(Strings(Get(Get(o, "List"), "items")), st_->schema);
          Report("drop-index-blocking", kWarning, "",
                 "DROP INDEX " + index +
                     " without CONCURRENTLY takes an ACCESS EXCLUSIVE lock "
                     "on its table");
        }
      }
      return;
    }
    if ((type == "OBJECT_TYPE" || type == "OBJECT_DOMAIN" || type == "OBJECT_EXTENSION") &&
        Str(s, "behavior") == "DROP_CASCADE") {
      for (const auto& o : Get(s, "objects")) {
        std::vector<std::string> name = Strings(Get(Get(o, "TypeName"), "names"));
        std::string what = name.empty() ? Str(Get(o, "String"), "sval") : name.back();
        Report("drop-column", kWarning, "",
               "DROP " + type.substr(7) + " " + what +
                   " CASCADE drops every column of that type (and what depends on them)");
      }
      return;
    }
    if (type == "OBJECT_SCHEMA") {
      for (const auto& o : Get(s, "objects")) {
        const std::string schema = Str(Get(o, "String"), "sval");
        SchemaInUse("drop-table", schema,
                    "DROP SCHEMA " + schema + " destroys every table in it" +
                        (Str(s, "behavior") == "DROP_CASCADE" ? " (CASCADE)" : ""));
      }
      return;
    }
    if (type != "OBJECT_TABLE" && type != "OBJECT_VIEW" && type != "OBJECT_MATVIEW" &&
        type != "OBJECT_FOREIGN_TABLE") {
      return;
    }
    for (const auto& o : Get(s, "objects")) {
      std::string table = ListKey(Strings(Get(Get(o, "List"), "items")), st_->schema);
      if (created_.count(table)) continue;
      InUse("drop-table", table, "", "DROP " + table + " destroys its data");
    }
  }

  void Reindex(const Value& s) {
    bool concurrently = false;
    for (const auto& p : Get(s, "params")) {
      concurrently |= Str(Get(p, "DefElem"), "defname") == "concurrently";
    }
    const std::string kind = Str(s, "kind");
    bool whole = kind == "REINDEX_OBJECT_SCHEMA" || kind == "REINDEX_OBJECT_DATABASE" ||
                 kind == "REINDEX_OBJECT_SYSTEM";
    if (concurrently || whole)
      NotInTransaction(concurrently ? "REINDEX CONCURRENTLY"
                                    : "REINDEX of a "
                                      "schema or "
                                      "database");
    if (concurrently) return;
    if (whole) {
      Report("reindex-blocking", kError, "", "REINDEX without CONCURRENTLY of every index");
    } else {
      LockHazard("reindex-blocking", Key(Get(s, "relation")),
                 "REINDEX without CONCURRENTLY blocks writes for the build");
    }
  }

  void ApplyIgnores(size_t first) {
    for (size_t i = first; i < findings_.size(); ++i) {
      LintFinding& f = findings_[i];
      // An error that hides the rest of the file cannot be ignored.
      if (f.rule == "syntax" && st_->whole_rest) continue;
      for (const auto& c : st_->ignores) {
        if (!c.problem.empty()) continue;
        if (std::find(c.rules.begin(), c.rules.end(), f.rule) != c.rules.end()) {
          f.ignored = true;
          f.reason = c.reason;
        }
      }
      for (const auto& ig : opt_.ignores) {
        if (!f.ignored && ig.rule == f.rule && (ig.table.empty() || ig.table == f.table)) {
          f.ignored = true;
          f.reason = ig.reason;
        }
      }
    }
    for (const auto& c : st_->ignores) {
      if (!c.problem.empty()) {
        Report("ignore-without-reason", kError, "", "this runbook:ignore comment " + c.problem);
      }
    }
  }

  // VACUUM (FULL), (FULL true), (FULL on), (FULL 1): true; (FULL false): not.
  static bool DefElemTrue(const Value& def) {
    const Value& arg = Get(def, "arg");
    if (arg.is_null()) return true;
    std::string v = Str(Get(arg, "String"), "sval");
    if (Get(arg, "Boolean").is_object()) return Flag(Get(arg, "Boolean"), "boolval");
    if (Get(arg, "Integer").is_object()) return Get(Get(arg, "Integer"), "ival").is_number();
    return !(v == "false" || v == "off" || v == "0" || v == "no");
  }

  const LintFacts& facts_;
  const LintOptions& opt_;
  const LintStatement* st_ = nullptr;
  std::set<std::string> created_;
  std::vector<LintFinding> findings_;
};

}  // namespace

std::vector<LintFinding> LintMigration(const ParsedMigration& migration, const LintFacts& facts,
                                       const LintOptions& options) {
  return Linter(facts, options).Run(migration);
}

std::vector<DatabaseStatement> DatabaseStatements(const std::string& sql, bool* only) {
  std::vector<DatabaseStatement> out;
  *only = false;
  PgQueryParseResult parsed = pg_query_parse(sql.c_str());
  if (parsed.error) {
    pg_query_free_parse_result(parsed);
    return out;
  }
  Value tree = Value::parse(parsed.parse_tree, nullptr, false);
  pg_query_free_parse_result(parsed);
  if (tree.is_discarded()) return out;
  bool others = false;
  for (const auto& raw : Get(tree, "stmts")) {
    const Value& stmt = Get(raw, "stmt");
    if (const Value& c = Get(stmt, "CreatedbStmt"); c.is_object()) {
      DatabaseStatement st{DatabaseStatement::Kind::kCreate, Str(c, "dbname"), "", false};
      for (const auto& o : Get(c, "options")) {
        const Value& def = Get(o, "DefElem");
        const std::string text = OptionText(Get(def, "arg"));
        if (Str(def, "defname") == "template") st.templ = text;
        if (Str(def, "defname") == "owner") st.owner = text;
        const Value& arg = Get(def, "arg");
        st.options.push_back({Str(def, "defname"), text,
                              Get(arg, "Integer").is_object() || Get(arg, "Float").is_object()});
      }
      out.push_back(st);
    } else if (const Value& d = Get(stmt, "DropdbStmt"); d.is_object()) {
      DatabaseStatement st{DatabaseStatement::Kind::kDrop, Str(d, "dbname"), "",
                           Flag(d, "missing_ok")};
      for (const auto& o : Get(d, "options")) {
        if (Str(Get(o, "DefElem"), "defname") == "force") st.force = true;
      }
      out.push_back(st);
    } else if (const Value& r = Get(stmt, "RenameStmt");
               r.is_object() && Str(r, "renameType") == "OBJECT_DATABASE") {
      out.push_back(
          {DatabaseStatement::Kind::kRename, Str(r, "subname"), Str(r, "newname"), false});
    } else {
      others = true;
    }
  }
  *only = !out.empty() && !others;
  return out;
}

}  // namespace runbook
