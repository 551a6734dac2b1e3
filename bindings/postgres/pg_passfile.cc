#include "bindings/postgres/pg_passfile.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <vector>

#include "bindings/postgres/pg_conninfo.h"

namespace runbook {
namespace {

// One field of a line: as written, and with its escapes removed.
struct PassField {
  std::string raw, value;
};

// The fields of one line, split at every colon not escaped by a backslash
// (the password ends at one too, as in libpq).
std::vector<PassField> Fields(const std::string& line) {
  std::vector<PassField> out(1);
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\\' && i + 1 < line.size()) {
      out.back().raw += line.substr(i, 2);
      out.back().value += line[++i];
    } else if (c == ':') {
      out.emplace_back();
    } else {
      out.back().raw += c;
      out.back().value += c;
    }
  }
  return out;
}

// A field that is exactly "*" matches anything ("\*" is a literal star).
bool Matches(const PassField& f, const std::string& value) {
  return f.raw == "*" || f.value == value;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

std::optional<std::string> PasswordFromPassfile(const std::string& path, const PassfileKey& key) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  if (st.st_mode & (S_IRWXG | S_IRWXO)) return std::nullopt;  // as libpq: not a private file
  std::ifstream in(path);
  std::string line;
  const std::string port = std::to_string(key.port);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::vector<PassField> f = Fields(line);
    if (f.size() < 5) continue;
    if (Matches(f[0], key.host) && Matches(f[1], port) && Matches(f[2], key.dbname) &&
        Matches(f[3], key.user)) {
      if (f[4].value.empty()) return std::nullopt;  // an empty password is none
      return f[4].value;
    }
  }
  return std::nullopt;
}

std::optional<std::string> TunnelledPassword(const Value& config, const std::string& host,
                                             int port) {
  const std::string dsn = PgConfigValue(config, "dsn");
  if (!PgConfigValue(config, "password").empty() || !DsnValue(dsn, "password").empty() ||
      !Env("PGPASSWORD").empty()) {
    return std::nullopt;  // libpq uses that one, never the file
  }
  // A service file may give the user, the database or the password: libpq
  // reads it, and a password set here would override the one it holds.
  if (!DsnValue(dsn, "service").empty() || !Env("PGSERVICE").empty()) return std::nullopt;
  PassfileKey key;
  key.host = host;
  key.port = port;
  key.user = PgConfigValue(config, "user");
  if (key.user.empty()) key.user = DsnValue(dsn, "user");
  if (key.user.empty()) key.user = Env("PGUSER");
  if (key.user.empty()) {
    const passwd* pw = getpwuid(geteuid());
    if (pw) key.user = pw->pw_name;
  }
  key.dbname = PgConfigValue(config, "dbname");
  if (key.dbname.empty()) key.dbname = DsnValue(dsn, "dbname");
  if (key.dbname.empty()) key.dbname = Env("PGDATABASE");
  if (key.dbname.empty()) key.dbname = key.user;
  std::string file = DsnValue(dsn, "passfile");
  if (file.empty()) file = Env("PGPASSFILE");
  if (file.empty()) {
    std::string home = Env("HOME");
    if (home.empty()) {
      const passwd* pw = getpwuid(geteuid());
      if (pw) home = pw->pw_dir;
    }
    if (home.empty()) return std::nullopt;
    file = home + "/.pgpass";
  }
  return PasswordFromPassfile(file, key);
}

}  // namespace runbook
