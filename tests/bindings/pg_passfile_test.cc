// The password file as libpq reads it (bindings/postgres/pg_passfile.h);
// its use through a real ssh tunnel is in ssh_tunnel_test.cc.
#include "bindings/postgres/pg_passfile.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

namespace runbook {
namespace {

std::string PassFile(const std::string& name, const std::string& text, mode_t mode = 0600) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("runbook-pgpass-" + std::to_string(getpid()) + "-" + name))
                         .string();
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
  return path;
}

}  // namespace

TEST_CASE("the password file is read as libpq reads it", "[pgpass]") {
  const std::string path = PassFile("basic",
                                    "# a comment:*:*:*:no\n"
                                    "db.internal:5433:*:app:wrong-port\n"
                                    "db.internal:5432:app:app:first\n"
                                    "db.internal:5432:app:app:second\n"
                                    "db\\:x:5432:*:*:esc\\:aped\\\\pw:ignored field\r\n"
                                    "\\*:5432:*:*:literal-star\n"
                                    "*:*:*:admin:\n"
                                    "*:*:*:four-fields\n"
                                    "*:*:*:*:anything\n");
  auto get = [&](const std::string& host, int port, const std::string& db,
                 const std::string& user) {
    return PasswordFromPassfile(path, {host, port, db, user}).value_or("(none)");
  };
  CHECK(get("db.internal", 5432, "app", "app") == "first");  // the first match wins
  CHECK(get("db.internal", 5433, "app", "app") == "wrong-port");
  CHECK(get("db:x", 5432, "app", "app") == "esc:aped\\pw");
  CHECK(get("*", 5432, "app", "app") == "literal-star");
  CHECK(get("other", 5432, "app", "app") == "anything");
  CHECK(get("other", 5432, "app", "admin") == "(none)");  // an empty password is none
  CHECK(get("# a comment", 1, "x", "y") == "anything");

  // A file others may read is ignored, as libpq ignores it; so is a directory.
  const std::string open = PassFile("open", "*:*:*:*:secret\n", 0644);
  CHECK_FALSE(PasswordFromPassfile(open, {"h", 5432, "d", "u"}).has_value());
  CHECK_FALSE(PasswordFromPassfile(std::filesystem::temp_directory_path(), {"h", 5432, "d", "u"})
                  .has_value());
  CHECK_FALSE(PasswordFromPassfile("/nonexistent/pgpass", {"h", 5432, "d", "u"}).has_value());
  std::filesystem::remove(path);
  std::filesystem::remove(open);
}

TEST_CASE(
    "a tunnelled connection takes the file's entry for the real server, unless it has a "
    "password",
    "[pgpass]") {
  const std::string path = PassFile("tunnel",
                                    "db.internal:6432:orders:app:from-file\n"
                                    "db.internal:6432:app:app:default-db\n");
  const Value config{{"dsn", "passfile=" + path}, {"user", "app"}, {"dbname", "orders"}};
  CHECK(TunnelledPassword(config, "db.internal", 6432).value_or("") == "from-file");
  CHECK_FALSE(TunnelledPassword(config, "db.internal", 5432).has_value());
  CHECK_FALSE(TunnelledPassword(config, "127.0.0.1", 6432).has_value());
  // The database defaults to the user's name, as in libpq; the dsn's user and dbname count.
  CHECK(TunnelledPassword(Value{{"dsn", "passfile=" + path + " user=app"}}, "db.internal", 6432)
            .value_or("") == "default-db");
  CHECK(TunnelledPassword(Value{{"dsn", "postgresql://app@x/orders?passfile=" + path}},
                          "db.internal", 6432)
            .value_or("") == "from-file");
  // A password of its own wins, as in libpq.
  Value own = config;
  own["password"] = "given";
  CHECK_FALSE(TunnelledPassword(own, "db.internal", 6432).has_value());
  CHECK_FALSE(TunnelledPassword(Value{{"dsn", "passfile=" + path + " password=x user=app"}},
                                "db.internal", 6432)
                  .has_value());
  // A service file is libpq's to read, its password included.
  CHECK_FALSE(TunnelledPassword(Value{{"dsn", "service=orders passfile=" + path + " user=app"}},
                                "db.internal", 6432)
                  .has_value());
  std::filesystem::remove(path);
}

}  // namespace runbook
