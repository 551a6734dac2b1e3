#include "bindings/postgres/pg_sql.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace runbook {
namespace {

bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
         (static_cast<unsigned char>(c) >= 0x80);
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool NeedsQuotes(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return true;
  return !std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Scans a statement script; `on_word` gets each word (upper case), "(" and
// ";"; `on_body` each dollar-quoted body.
template <typename Word, typename Body>
void Scan(const std::string& s, Word on_word, Body on_body) {
  size_t i = 0, n = s.size();
  while (i < n) {
    char c = s[i];
    if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      int depth = 0;  // block comments nest in PostgreSQL
      do {
        if (s.compare(i, 2, "/*") == 0) { ++depth; i += 2; }
        else if (s.compare(i, 2, "*/") == 0) { --depth; i += 2; }
        else { ++i; }
      } while (i < n && depth > 0);
    } else if (c == '\'') {
      bool backslash = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e');
      for (++i; i < n; ++i) {
        if (backslash && s[i] == '\\') { ++i; continue; }
        if (s[i] == '\'') {
          if (i + 1 < n && s[i + 1] == '\'') { ++i; continue; }
          break;
        }
      }
      ++i;
      on_word("'");
    } else if (c == '"') {
      std::string ident;
      for (++i; i < n; ++i) {
        if (s[i] == '"') {
          if (i + 1 < n && s[i + 1] == '"') { ident += '"'; ++i; continue; }
          break;
        }
        ident += s[i];
      }
      ++i;
      on_word(Upper(ident));
    } else if (c == '$' && (i == 0 || !IsWordChar(s[i - 1]))) {
      size_t close = s.find('$', i + 1);
      std::string tag = close == std::string::npos ? "" : s.substr(i, close - i + 1);
      bool valid = !tag.empty() && std::all_of(tag.begin() + 1, tag.end() - 1, [](char t) {
        return std::isalnum(static_cast<unsigned char>(t)) || t == '_';
      }) && !(tag.size() > 2 && std::isdigit(static_cast<unsigned char>(tag[1])));
      if (!valid) { ++i; continue; }  // $1 and friends
      size_t end = s.find(tag, close + 1);
      if (end == std::string::npos) end = n;
      on_body(s.substr(close + 1, end - close - 1));
      on_word("'");
      i = std::min(n, end + tag.size());
    } else if (IsWordChar(c)) {
      size_t start = i;
      while (i < n && IsWordChar(s[i])) ++i;
      on_word(Upper(s.substr(start, i - start)));
    } else {
      if (c == '(' || c == ';') on_word(std::string(1, c));
      ++i;
    }
  }
}

bool StartsWith(const std::vector<std::string>& w, std::initializer_list<const char*> prefix) {
  size_t i = 0;
  for (const char* p : prefix) {
    if (i >= w.size() || w[i] != p) return false;
    ++i;
  }
  return true;
}

bool Has(const std::vector<std::string>& w, const char* word) {
  return std::find(w.begin(), w.end(), word) != w.end();
}

std::string Head(const std::vector<std::string>& w, size_t n) {
  std::string out;
  for (size_t i = 0; i < std::min(n, w.size()); ++i) out += (i ? " " : "") + w[i];
  return out;
}

std::string NonTransactional(const std::vector<std::string>& w) {
  auto no = [&](const std::string& what) {
    return what + " cannot run inside a transaction block";
  };
  if (StartsWith(w, {"VACUUM"})) return no("VACUUM");
  for (const char* obj : {"DATABASE", "TABLESPACE", "SUBSCRIPTION"}) {
    if (StartsWith(w, {"CREATE", obj})) return no(std::string("CREATE ") + obj);
    if (StartsWith(w, {"DROP", obj})) return no(std::string("DROP ") + obj);
  }
  if (StartsWith(w, {"ALTER", "SUBSCRIPTION"})) return no("ALTER SUBSCRIPTION");
  if (StartsWith(w, {"ALTER", "SYSTEM"})) return no("ALTER SYSTEM");
  if ((StartsWith(w, {"CREATE", "INDEX"}) || StartsWith(w, {"CREATE", "UNIQUE", "INDEX"}) ||
       StartsWith(w, {"DROP", "INDEX"})) && Has(w, "CONCURRENTLY")) {
    return no(w[0] + " INDEX CONCURRENTLY");
  }
  if (StartsWith(w, {"REINDEX"})) {
    if (Has(w, "CONCURRENTLY")) return no("REINDEX CONCURRENTLY");
    for (const char* kind : {"SCHEMA", "DATABASE", "SYSTEM"}) {
      if (Has(w, kind)) return no(std::string("REINDEX ") + kind);
    }
  }
  if (StartsWith(w, {"ALTER", "DATABASE"}) && Has(w, "TABLESPACE")) {
    return no("ALTER DATABASE ... SET TABLESPACE");
  }
  if (StartsWith(w, {"CLUSTER"}) && (w.size() == 1 || (w.size() == 2 && w[1] == "VERBOSE"))) {
    return no("CLUSTER without a table");
  }
  if (StartsWith(w, {"DISCARD", "ALL"})) return no("DISCARD ALL");
  return "";
}

// Functions whose effect a ROLLBACK does not undo.
const std::set<std::string>& EscapingFunctions() {
  static const std::set<std::string> kNames = {
      "NEXTVAL", "SETVAL", "PG_TERMINATE_BACKEND", "PG_CANCEL_BACKEND", "PG_RELOAD_CONF",
      "PG_ROTATE_LOGFILE", "PG_SWITCH_WAL", "PG_CREATE_RESTORE_POINT", "PG_PROMOTE",
      "PG_ADVISORY_LOCK", "PG_ADVISORY_LOCK_SHARED", "PG_TRY_ADVISORY_LOCK",
      "PG_TRY_ADVISORY_LOCK_SHARED", "PG_CREATE_PHYSICAL_REPLICATION_SLOT",
      "PG_CREATE_LOGICAL_REPLICATION_SLOT", "PG_DROP_REPLICATION_SLOT",
      "PG_COPY_PHYSICAL_REPLICATION_SLOT", "PG_COPY_LOGICAL_REPLICATION_SLOT",
      "PG_REPLICATION_SLOT_ADVANCE", "PG_REPLICATION_ORIGIN_CREATE",
      "PG_REPLICATION_ORIGIN_DROP", "PG_LOGICAL_EMIT_MESSAGE", "DBLINK", "DBLINK_EXEC",
      "DBLINK_CONNECT", "DBLINK_SEND_QUERY", "LO_EXPORT", "PG_FILE_WRITE", "PG_FILE_UNLINK",
      "PG_FILE_RENAME", "PG_STAT_RESET", "PG_STAT_RESET_SHARED", "PG_STAT_STATEMENTS_RESET",
      "PG_STAT_RESET_SINGLE_TABLE_COUNTERS", "PG_STAT_RESET_SLRU",
      "PG_STAT_RESET_REPLICATION_SLOT", "PG_STAT_RESET_SUBSCRIPTION_STATS"};
  return kNames;
}

std::string EscapingCall(const std::vector<std::string>& w) {
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    if (w[i + 1] == "(" && EscapingFunctions().count(w[i])) {
      std::string fn = w[i];
      std::transform(fn.begin(), fn.end(), fn.begin(), ::tolower);
      return fn + "() takes effect even when the transaction rolls back";
    }
  }
  return "";
}

std::string Escapes(const SqlStatement& st) {
  const auto& w = st.words;
  for (const char* ctl : {"BEGIN", "START", "COMMIT", "END", "ABORT", "PREPARE"}) {
    if (StartsWith(w, {ctl}) && !(StartsWith(w, {"PREPARE"}) && !Has(w, "TRANSACTION"))) {
      return "transaction control (" + Head(w, 2) + ") would end the rehearsal's transaction";
    }
  }
  if (StartsWith(w, {"ROLLBACK"}) && !Has(w, "TO")) {
    return "transaction control (ROLLBACK) would end the rehearsal's transaction";
  }
  if (StartsWith(w, {"COPY"}) && !Has(w, "STDIN") && !Has(w, "STDOUT")) {
    return "COPY to or from a server file or program acts outside the transaction";
  }
  std::string why = EscapingCall(w);
  if (!why.empty()) return why;
  if (StartsWith(w, {"DO"})) {
    // A DO block's body runs now; COMMIT inside it fails in our transaction
    // block, so only calls matter there.
    for (const auto& body : st.bodies) {
      std::vector<std::string> words;
      Scan(body, [&](const std::string& word) { words.push_back(word); },
           [](const std::string&) {});
      why = EscapingCall(words);
      if (!why.empty()) return "DO block: " + why;
    }
  }
  return "";
}

}  // namespace

std::string QuoteIdentPlain(const std::string& name) {
  std::string out = "\"";
  for (char ch : name) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string QuoteLiteralPlain(const std::string& text) {
  std::string out = "'";
  for (char ch : text) out += ch == '\'' ? std::string("''") : std::string(1, ch);
  return out + "'";
}

std::string TableName::Display() const {
  auto part = [](const std::string& p) { return NeedsQuotes(p) ? QuoteIdentPlain(p) : p; };
  return part(schema) + "." + part(name);
}

Result<TableName> ParseTableName(const std::string& text, const std::string& default_schema) {
  std::vector<std::string> parts;
  std::string cur;
  bool quoted = false, was_quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') { cur += '"'; ++i; }
      else if (c == '"') { quoted = false; }
      else { cur += c; }
    } else if (c == '"') {
      quoted = was_quoted = true;
    } else if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else if (c == ' ' || c == '\t') {
      return Status::Invalid("invalid table name '" + text + "'");
    } else {
      cur += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (quoted) return Status::Invalid("unterminated quote in table name '" + text + "'");
  parts.push_back(cur);
  (void)was_quoted;
  if (parts.size() > 2 || std::any_of(parts.begin(), parts.end(),
                                      [](const std::string& p) { return p.empty(); })) {
    return Status::Invalid("invalid table name '" + text + "' (expected table or schema.table)");
  }
  if (parts.size() == 1) return TableName{default_schema, parts[0]};
  return TableName{parts[0], parts[1]};
}

std::string FoldIdent(const std::string& text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    std::string out;
    for (size_t i = 1; i + 1 < text.size(); ++i) {
      out += text[i];
      if (text[i] == '"' && text[i + 1] == '"') ++i;
    }
    return out;
  }
  std::string out = text;
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<SqlStatement> SplitSql(const std::string& sql) {
  std::vector<SqlStatement> out(1);
  Scan(
      sql,
      [&](const std::string& word) {
        if (word == ";") {
          if (!out.back().words.empty()) out.emplace_back();
        } else {
          out.back().words.push_back(word);
        }
      },
      [&](const std::string& body) { out.back().bodies.push_back(body); });
  if (out.back().words.empty()) out.pop_back();
  return out;
}

std::string NonTransactionalReason(const std::string& sql) {
  for (const auto& st : SplitSql(sql)) {
    std::string why = NonTransactional(st.words);
    if (!why.empty()) return why;
  }
  return "";
}

std::string EscapesRollbackReason(const std::string& sql) {
  for (const auto& st : SplitSql(sql)) {
    std::string why = Escapes(st);
    if (!why.empty()) return why;
  }
  return "";
}

}  // namespace runbook
